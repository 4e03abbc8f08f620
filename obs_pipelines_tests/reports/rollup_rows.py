"""Hourly rollup rows of an app that is not the generator's (its own routes, models, providers, steps and
scales), drawn from a seeded RNG and written to the real tables: the report tests compare the reports' figures
with SQL over these tables, so no figure here is chosen to suit a formula."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import sqlalchemy as sa

from obs_pipelines.alerts.tables import alerts
from obs_pipelines.monitoring.tables import (
    error_rollup_hourly,
    request_rollup_hourly,
    slo_status_hourly,
    step_rollup_hourly,
    usage_rollup_hourly,
)
from obs_pipelines.online_evals.tables import score_rollup_hourly
from obs_pipelines.store import db

HOUR = timedelta(hours=1)


def _latency(rng: random.Random, count: int, scale: float) -> dict:
    if count == 0:  # an hour without traffic has no latency
        return {"latency_p50_ms": None, "latency_p95_ms": None, "latency_count": 0}
    p50 = rng.uniform(0.3, 1.0) * scale
    return {"latency_p50_ms": p50, "latency_p95_ms": p50 * rng.uniform(1.5, 4.0), "latency_count": count}


def rollup_rows(start: datetime, hours: int, *, routes: list[str], models: list[str], seed: int = 3,
                providers: tuple[str, ...] = ("acme", "zeta")) -> dict[sa.Table, list[dict]]:
    rng = random.Random(seed)
    out: dict[sa.Table, list[dict]] = {t: [] for t in (request_rollup_hourly, error_rollup_hourly, step_rollup_hourly,
                                                      usage_rollup_hourly, slo_status_hourly, score_rollup_hourly)}
    for h in range(hours):
        ws = start + h * HOUR
        win = {"window_start": ws, "window_end": ws + HOUR}
        total = errors = 0
        for route in routes:
            n = 0 if rng.random() < 0.05 else rng.randint(1, 900)
            e = rng.randint(0, n // 5) if n else 0
            total, errors = total + n, errors + e
            out[request_rollup_hourly].append({**win, "dimension": "route", "dimension_value": route,
                                               "request_count": n, "error_count": e, **_latency(rng, n, 4000)})
        out[request_rollup_hourly].append({**win, "dimension": "overall", "dimension_value": None,
                                           "request_count": total, "error_count": errors,
                                           **_latency(rng, total, 5000)})
        for model in models:
            n = rng.randint(0, 2000)
            out[request_rollup_hourly].append({**win, "dimension": "model", "dimension_value": model,
                                               "request_count": n, "error_count": rng.randint(0, n // 10),
                                               **_latency(rng, n, 2000)})
            out[usage_rollup_hourly].append({**win, "dimension": "model", "dimension_value": model, "call_count": n,
                                             "input_tokens": n * rng.randint(50, 4000),
                                             "output_tokens": n * rng.randint(5, 400),
                                             "cost_usd": n * rng.uniform(1e-5, 1e-2)})
        for route in routes:
            n = rng.randint(0, 3000)
            out[usage_rollup_hourly].append({**win, "dimension": "route", "dimension_value": route, "call_count": n,
                                             "input_tokens": n * 700, "output_tokens": n * 90,
                                             "cost_usd": n * rng.uniform(1e-4, 5e-3)})
        for provider in providers:
            n = rng.randint(0, 5000)
            out[error_rollup_hourly].append({**win, "dimension": "provider", "dimension_value": provider,
                                             "provider": provider, "span_count": n,
                                             "error_count": rng.randint(0, n // 8)})
        for kind, name in (("llm", "chat"), ("retrieval", "vector_search"), ("tool", "lookup_order"),
                           ("chain", "checkout_flow")):
            n = rng.randint(1, 1500)
            out[step_rollup_hourly].append({**win, "dimension": "span_name", "span_kind": kind, "span_name": name,
                                            "span_count": n, "error_count": rng.randint(0, n // 20),
                                            **_latency(rng, n, {"llm": 3000, "tool": 200}.get(kind, 800))})
        for slo, target in (("avail", 0.95), ("latency", 0.9)):
            met = None if rng.random() < 0.1 else rng.random() < 0.9
            out[slo_status_hourly].append({**win, "slo_name": slo, "metric": "error_rate", "dimension": "overall",
                                           "dimension_value": None, "objective": "< 0.05", "target": target,
                                           "value": rng.random() / 10, "met": met,
                                           "burn_rate_1h": rng.uniform(0, 20), "burn_rate_6h": rng.uniform(0, 8)})
        for scorer in ("faithfulness", "toxicity"):
            for dim, value in [("overall", None)] + [("route", r) for r in routes]:
                n = rng.randint(0, 80)
                out[score_rollup_hourly].append({**win, "scorer": scorer, "dimension": dim, "dimension_value": value,
                                                 "scored_count": n, "mean_score": rng.random() if n else None})
    return out


def write_rollups(engine, rows: dict[sa.Table, list[dict]]) -> None:
    for table, records in rows.items():
        db.insert_rows(engine, table, records)


def write_alert(engine, *, rule: str, start: datetime, last: datetime, good: int, status: str,
                severity: str = "critical", group: dict | None = None, attribution: list | None = None) -> str:
    """One row of ``alerts`` as the alerts sensor stores it (payload with group, attribution, exemplars)."""
    group = group or {}
    alert_id = f"{rule}-{start:%Y%m%d%H}-{len(json.dumps(group))}"
    payload = {"id": alert_id, "rule": rule, "severity": severity, "status": status, "metric": "error_rate",
               "value": 0.5, "threshold": 0.1, "group": group, "attribution": attribution or [],
               "exemplar_trace_ids": ["ab" * 16], "summary": f"[{status.upper()}] {rule}"}
    db.insert_rows(engine, alerts, [{
        "id": alert_id, "rule": rule, "group_key": json.dumps(group, sort_keys=True), "severity": severity,
        "status": status, "window_start": start, "window_end": start + HOUR, "last_window_start": last,
        "good_windows": good, "payload": json.dumps(payload), "created_at": start, "updated_at": last}])
    return alert_id
