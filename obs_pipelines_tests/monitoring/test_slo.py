"""SLO math on a hand-made hourly rollup frame."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from obs_pipelines.monitoring.slo import SLO, parse_objective, slo_status

T0 = datetime(2026, 11, 2, 0, 0)
P95 = [1000, 3000, 1000, 1000, 3000, 1000, 1000, 1000, 1000, 3000]  # windows 1, 4, 9 miss "< 2500"


def rollup(p95=P95, skip=(), idle=()) -> pd.DataFrame:
    rows = []
    for i, v in enumerate(p95):
        if i in skip:
            continue
        start = T0 + timedelta(hours=i)
        n = 0 if i in idle else 100
        rows.append({"window_start": start, "window_end": start + timedelta(hours=1), "dimension": "route",
                     "dimension_value": "rag_qa", "request_count": n, "latency_p95_ms": float(v),
                     "error_rate": 0.0})
        rows.append({"window_start": start, "window_end": start + timedelta(hours=1), "dimension": "overall",
                     "dimension_value": None, "request_count": 200, "latency_p95_ms": 500.0,
                     "error_rate": 0.02 if i == 5 else 0.001})
    return pd.DataFrame(rows)


LATENCY = {"name": "rag_p95", "route": "rag_qa", "metric": "p95_latency_ms", "objective": "< 2500", "target": 0.9}


def test_measured_value_and_met_per_window():
    out = slo_status(rollup(), [LATENCY])
    assert out["value"].tolist() == [float(v) for v in P95]
    assert out["met"].tolist() == [v < 2500 for v in P95]
    assert out["metric"].iloc[0] == "latency_p95_ms" and out["dimension_value"].iloc[0] == "rag_qa"


def test_attainment_budget_and_burn_rates():
    out = slo_status(rollup(), [LATENCY]).set_index("window_start")
    last = out.loc[T0 + timedelta(hours=9)]
    assert last["attainment"] == pytest.approx(0.7)  # 3 bad of 10
    assert last["error_budget_remaining"] == pytest.approx(1 - 3 / (0.1 * 10))  # overspent: -2
    assert last["burn_rate_1h"] == pytest.approx(1.0 / 0.1)  # the last window is bad
    assert last["burn_rate_6h"] == pytest.approx((2 / 6) / 0.1)  # windows 4..9: 2 bad
    w3 = out.loc[T0 + timedelta(hours=3)]
    assert w3["attainment"] == pytest.approx(0.75)
    assert w3["error_budget_remaining"] == pytest.approx(1 - 1 / 0.4)
    assert w3["burn_rate_1h"] == 0.0
    assert w3["burn_rate_6h"] == pytest.approx((1 / 4) / 0.1)
    assert out.loc[T0, "error_budget_remaining"] == 1.0  # nothing spent yet


def test_budget_is_computed_over_the_trailing_compliance_period():
    out = slo_status(rollup(), [LATENCY], compliance_windows=4).set_index("window_start")
    last = out.loc[T0 + timedelta(hours=9)]  # windows 6..9: 1 bad
    assert last["windows_judged"] == 4
    assert last["attainment"] == pytest.approx(0.75)
    assert last["error_budget_remaining"] == pytest.approx(1 - 1 / 0.4)


def test_idle_and_missing_windows_are_not_judged():
    out = slo_status(rollup(skip=(2,), idle=(3,)), [LATENCY]).set_index("window_start")
    assert len(out) == 10  # the missing hour is on the grid
    for hour in (2, 3):
        row = out.loc[T0 + timedelta(hours=hour)]
        assert pd.isna(row["value"]) and pd.isna(row["met"])
    last = out.loc[T0 + timedelta(hours=9)]
    assert last["windows_judged"] == 8
    assert last["attainment"] == pytest.approx(5 / 8)
    assert np.isnan(out.loc[T0 + timedelta(hours=3), "burn_rate_1h"])


def test_overall_error_rate_slo():
    slo = {"name": "errors", "metric": "error_rate", "objective": "<= 0.01", "target": 0.99}
    out = slo_status(rollup(), [slo])
    assert out["dimension"].unique().tolist() == ["overall"]
    assert out["met"].tolist() == [i != 5 for i in range(10)]
    assert out["burn_rate_6h"].iloc[-1] == pytest.approx((1 / 6) / 0.01)


def test_objectives_parse_and_bad_ones_are_rejected():
    assert parse_objective("< 2500") == ("<", 2500.0)
    assert parse_objective(">=0.9") == (">=", 0.9)
    with pytest.raises(ValueError):
        parse_objective("about 3")
    with pytest.raises(ValueError):
        SLO(name="x", metric="error_rate", objective="< 1", target=1.5)
    with pytest.raises(ValueError, match="unknown metric"):
        slo_status(rollup(), [{"name": "x", "metric": "nope", "objective": "< 1"}])


def test_settings_slo_specs_are_accepted():
    from obs_pipelines.settings import SLOSpec

    spec = SLOSpec(name="rag", route="rag_qa", metric="latency_p95_ms", objective="< 2500", target=0.9)
    out = slo_status(rollup(), [spec])
    assert out["slo_name"].unique().tolist() == ["rag"] and len(out) == 10
