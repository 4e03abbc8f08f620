"""The one percentile engine per dialect (store/percentiles.py): linear interpolation between the closest ranks on
both dialects, and monitoring's rollups and observability's route percentiles, which both compute through it,
give the same numbers for the same requests. SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from obs_pipelines.monitoring import rollups
from obs_pipelines.observability import reading
from obs_pipelines.store import db
from obs_pipelines.store.percentiles import grouped_percentiles, percentiles, pg_percentiles, unpack_pg_percentiles
from obs_pipelines.store.query import fetch_frame

H = datetime(2026, 11, 2, 10, 0)
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _requests(seed: int = 5) -> tuple[list[dict], dict[str, list[float]]]:
    """Root spans (one request each, with a child span) on three routes, of 1 to 40 requests; their latencies."""
    rng = random.Random(seed)
    rows, latencies = [], {}
    for route, n in (("a", 1), ("b", 2), ("c", 40)):
        for _ in range(n):
            trace, root = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64) | 1:016x}"
            start = H + timedelta(microseconds=rng.randrange(3_000_000_000))
            us = rng.randrange(1_000, 9_000_000)
            end = start + timedelta(microseconds=us)
            rows.append({"trace_id": trace, "span_id": root, "parent_span_id": None, "name": "POST", "kind": "chain",
                         "start_time": start, "end_time": end, "status": "ok", "route": route})
            rows.append({"trace_id": trace, "span_id": f"{rng.getrandbits(64) | 1:016x}", "parent_span_id": root,
                         "name": "chat", "kind": "llm", "start_time": start, "end_time": end, "status": "ok"})
            latencies.setdefault(route, []).append(us / 1000.0)
    return rows, latencies


def test_pandas_percentiles_interpolate_linearly_overall_and_per_group():
    values = pd.Series([5.0, 1.0, np.nan, 3.0, 10.0])
    assert percentiles(values, QUANTILES) == pytest.approx(np.percentile([1, 3, 5, 10], [50, 90, 95, 99]))
    assert all(np.isnan(percentiles(pd.Series([np.nan]), QUANTILES)))
    frame = pd.DataFrame({"k": ["x", "y", "x", "x"], "v": [1.0, 7.0, 2.0, 4.0]})
    by = grouped_percentiles(frame.groupby("k")["v"], (0.5, 0.95), ("p50", "p95"))
    assert by.loc["x"].tolist() == pytest.approx(np.percentile([1, 2, 4], [50, 95]).tolist())
    assert by.loc["y"].tolist() == [7.0, 7.0]


def test_postgresql_percentiles_are_pandas_percentiles(store):
    if not db.is_postgres(store.engine):
        pytest.skip("percentile_cont is PostgreSQL's")
    values = [3.5, 1.0, 8.25, 2.0, 100.0, 7.0]
    rows = " UNION ALL ".join(f"SELECT CAST({v} AS float8) AS v" for v in values)
    frame = fetch_frame(store.engine, f"SELECT {pg_percentiles('v', QUANTILES)} AS pct FROM ({rows}) x", {})
    got = unpack_pg_percentiles(frame, "pct", ["p50", "p90", "p95", "p99"]).iloc[0].tolist()
    assert got == percentiles(pd.Series(values), QUANTILES)


def test_monitoring_and_observability_give_the_same_route_percentiles(store):
    rows, latencies = _requests()
    db.insert_spans(store.engine, rows)
    end = H + timedelta(hours=1)
    monitoring = rollups.request_stats(store.engine, H, end)
    monitoring = monitoring[monitoring["dimension"] == "route"].set_index("dimension_value")
    observability = reading.route_percentiles(store.engine, [(H, end)]).set_index("route")
    assert sorted(observability.index) == sorted(monitoring.index) == sorted(latencies)
    for route, values in latencies.items():
        same = observability.loc[route, ["p50_ms", "p95_ms"]].tolist()
        assert monitoring.loc[route, ["latency_p50_ms", "latency_p95_ms"]].tolist() == same, route
        assert same == pytest.approx(np.percentile(values, [50, 95]).tolist(), rel=1e-12), route
