"""The dashboard's figures equal an independent recompute in SQL over the rollup tables, on SQLite and
PostgreSQL, for rollups of an app unlike the generator's; plus cases small enough to check by eye."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.reports import figures
from obs_pipelines.reports.pages import build_dashboard
from obs_pipelines.reports.reading import Rollups, read_rollups
from obs_pipelines_tests.reports.rollup_rows import rollup_rows, write_rollups

END = datetime(2026, 3, 10, 0, 0)
ROUTES = ["checkout", "search", "onboarding", "refunds"]
MODELS = ["m-large", "m-small", "m-embed"]


def _sql(engine, query: str, start: datetime, end: datetime) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(query), {"s": start, "e": end}).fetchall()
    frame = pd.DataFrame(rows, columns=rows[0]._fields if rows else None)
    for column in frame:  # PostgreSQL's numeric results arrive as Decimal
        if frame[column].map(lambda v: isinstance(v, Decimal)).any():
            frame[column] = frame[column].astype(float)
    return frame


def _close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == pytest.approx(float(b), rel=1e-9))


@pytest.fixture
def dashboard(store):
    # 9 days of hours: the 24 h and 7 d windows are strict parts of what the 30 d window reads
    write_rollups(store.engine, rollup_rows(END - timedelta(days=9), 9 * 24, routes=ROUTES, models=MODELS))
    return store.engine, build_dashboard(store.engine, END).figures


@pytest.mark.parametrize("window", ["24h", "7d", "30d"])
def test_route_traffic_and_latency_equal_sql_over_the_request_rollup(dashboard, window):
    engine, figs = dashboard
    start = END - figures.WINDOWS[window]
    expected = _sql(engine, """
        SELECT dimension_value AS route, SUM(request_count) AS requests, SUM(error_count) AS errors,
               SUM(latency_p95_ms * latency_count) / SUM(CASE WHEN latency_p95_ms IS NOT NULL THEN latency_count END)
                 AS p95, MAX(latency_p95_ms) AS worst
        FROM request_rollup_hourly WHERE dimension = 'route' AND window_start >= :s AND window_start < :e
        GROUP BY dimension_value""", start, END).set_index("route")
    got = {r["value"]: r for r in figs["windows"][window]["routes"]}
    assert set(got) == set(ROUTES) == set(expected.index)
    for route, row in expected.iterrows():
        assert got[route]["requests"] == row["requests"]
        assert _close(got[route]["error_rate"], row["errors"] / row["requests"])
        assert _close(got[route]["p95_ms"], row["p95"])
        assert _close(got[route]["p95_worst_hour_ms"], row["worst"])


@pytest.mark.parametrize("window", ["24h", "7d"])
def test_cost_tokens_providers_steps_and_scores_equal_sql(dashboard, window):
    engine, figs = dashboard
    w = figs["windows"][window]
    start = END - figures.WINDOWS[window]
    cost = _sql(engine, "SELECT dimension_value AS m, SUM(cost_usd) AS c, SUM(input_tokens) AS i FROM "
                        "usage_rollup_hourly WHERE dimension = 'model' AND window_start >= :s AND window_start < :e "
                        "GROUP BY dimension_value", start, END).set_index("m")
    models = {r["value"]: r for r in w["models"]}
    for model, row in cost.iterrows():
        assert _close(models[model]["cost_usd"], row["c"]) and models[model]["input_tokens"] == row["i"]
    assert _close(w["cost_usd"], cost["c"].sum())
    prov = _sql(engine, "SELECT dimension_value AS p, SUM(error_count) * 1.0 / SUM(span_count) AS r FROM "
                        "error_rollup_hourly WHERE dimension = 'provider' AND window_start >= :s AND window_start < :e "
                        "GROUP BY dimension_value", start, END).set_index("p")
    assert {p["value"]: pytest.approx(p["error_rate"]) for p in w["providers"]} == prov["r"].to_dict()
    steps = _sql(engine, "SELECT span_name, SUM(latency_p95_ms * latency_count) / SUM(latency_count) AS p95 FROM "
                         "step_rollup_hourly WHERE window_start >= :s AND window_start < :e GROUP BY span_name "
                         "ORDER BY p95 DESC", start, END)
    assert [s["span_name"] for s in w["slowest_steps"]] == list(steps["span_name"])
    scores = _sql(engine, "SELECT scorer, dimension_value AS route, SUM(mean_score * scored_count) / "
                          "SUM(CASE WHEN mean_score IS NOT NULL THEN scored_count END) AS mean "
                          "FROM score_rollup_hourly "
                          "WHERE dimension = 'route' AND window_start >= :s AND window_start < :e "
                          "GROUP BY scorer, dimension_value", start, END)
    got = {(s["scorer"], s["route"]): s["mean_score"] for s in w["scores"]}
    for _, row in scores.iterrows():
        assert _close(got[(row["scorer"], row["route"])], row["mean"])


def test_overall_requests_count_each_window_once(dashboard):
    engine, figs = dashboard
    for window, length in figures.WINDOWS.items():
        total = _sql(engine, "SELECT SUM(request_count) AS n, COUNT(DISTINCT window_start) AS h FROM "
                             "request_rollup_hourly WHERE dimension = 'overall' AND window_start >= :s AND "
                             "window_start < :e", END - length, END).iloc[0]
        assert figs["windows"][window]["requests"] == total["n"]
        assert figs["windows"][window]["hours_with_data"] == total["h"]


def _request_rows(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"window_start": pd.Timestamp(t), "dimension": "route", "dimension_value": route,
                          "request_count": n, "error_count": e, "latency_p50_ms": p95 / 2 if p95 else None,
                          "latency_p95_ms": p95, "latency_count": n} for t, route, n, e, p95 in rows])


def test_a_window_error_rate_is_errors_over_requests_not_a_mean_of_hourly_rates():
    # hours of 10 requests / 1 error and 30 / 3 give 4 / 40 = 10 %; latency weighted by requests: (100x10 +
    # 300x30) / 40 = 250 ms; an hour without traffic (no latency) changes neither
    frame = _request_rows([("2026-01-01 00:00", "a", 10, 1, 100.0), ("2026-01-01 01:00", "a", 30, 3, 300.0),
                           ("2026-01-01 02:00", "a", 0, 0, None)])
    [row] = figures.traffic(frame, "route").to_dict("records")
    assert (row["requests"], row["error_rate"], row["p95_ms"], row["p95_worst_hour_ms"]) == (40, 0.1, 250.0, 300.0)


def test_a_route_without_requests_has_an_unknown_error_rate_not_zero():
    # 0 requests: the rate is unknown (None in the JSON), never 0 %
    frame = _request_rows([("2026-01-01 00:00", "idle", 0, 0, None)])
    assert figures.json_ready(figures.traffic(frame, "route")["error_rate"].tolist()) == [None]


def test_an_empty_store_gives_a_dashboard_that_says_no_data(store):
    report = build_dashboard(store.engine, END)
    day = report.figures["windows"]["24h"]
    assert (day["requests"], day["error_rate"], day["hours_with_data"]) == (0, None, 0)
    assert report.charts == [] and "no data in this window" in report.html


def test_window_figures_read_only_the_window(store):
    # rows an hour after the end, and 30 days + 1 hour before it, are outside every window
    write_rollups(store.engine, rollup_rows(END, 2, routes=["late"], models=["m"]))
    write_rollups(store.engine, rollup_rows(END - timedelta(days=30, hours=1), 1, routes=["old"], models=["m"]))
    rollups: Rollups = read_rollups(store.engine, END - timedelta(days=31), END + timedelta(days=1))
    assert figures.window_figures(rollups, END)["30d"]["routes"] == []
