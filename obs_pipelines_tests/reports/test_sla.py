"""SLA report figures: periods, SLO attainment and error budget, availability, incidents from `alerts`; the
figures equal SQL over the rollup tables and the incidents equal the alerts table, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.reports import sla
from obs_pipelines.reports.pages import build_sla
from obs_pipelines_tests.reports.rollup_rows import rollup_rows, write_alert, write_rollups

SLOS = [{"name": "avail", "metric": "error_rate", "objective": "< 0.05", "target": 0.95}]


# ---- periods ------------------------------------------------------------------------------------------------------
def test_an_iso_week_starts_on_its_monday_and_a_month_on_its_first_day():
    # 2026-W45 is Mon 2 Nov .. Sun 8 Nov 2026; February 2026 has 28 days (not a leap year)
    week = sla.parse_period("2026-W45")
    assert (week.start, week.end, week.label) == (datetime(2026, 11, 2), datetime(2026, 11, 9), "2026-W45")
    month = sla.parse_period("2026-02")
    assert (month.hours, month.previous().label, month.previous().hours) == (28 * 24, "2026-01", 31 * 24)
    assert sla.parse_period("2026-01-01").previous().label == "2025-12-31"


def test_an_unreadable_period_is_a_clear_error():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        sla.parse_period("last month")


# ---- SLO figures: small cases checked by eye ----------------------------------------------------------------------
def _slo_rows(met: list, target: float) -> pd.DataFrame:
    return pd.DataFrame([{"window_start": pd.Timestamp("2026-01-01") + pd.Timedelta(hours=i), "slo_name": "s",
                          "metric": "error_rate", "objective": "< 0.1", "dimension": "overall", "dimension_value": None,
                          "target": target, "met": m, "burn_rate_1h": float(i), "burn_rate_6h": i / 2}
                         for i, m in enumerate(met)])


def test_budget_of_twenty_hours_at_ninety_percent_with_three_bad_is_one_and_a_half_budgets():
    # 20 judged hours x (1 - 0.9) = 2 allowed bad hours; 3 bad: 150 % used, -50 % left; 2 unjudged hours ignored
    [figure] = sla.slo_figures(_slo_rows([True] * 17 + [False] * 3 + [None, None], 0.9))
    assert (figure["hours_judged"], figure["bad_hours"], figure["attainment"]) == (20, 3, 0.85)
    assert figure["allowed_bad_hours"] == pytest.approx(2.0)
    assert (figure["budget_used"], figure["budget_left"]) == (pytest.approx(1.5), pytest.approx(-0.5))
    assert (figure["burn_rate_1h_peak"], figure["burn_rate_6h_peak"]) == (21.0, 10.5)


def test_a_day_at_ninety_nine_percent_is_too_little_data_for_a_budget():
    # 24 h x 1 % = 0.24 allowed bad hours: one bad hour would read "417 % used"; the report says why instead
    [figure] = sla.slo_figures(_slo_rows([True] * 23 + [False], 0.99))
    assert figure["budget_used"] is None and figure["budget_left"] is None
    assert "too little data" in figure["budget_note"] and "0.24" in figure["budget_note"]
    assert figure["attainment"] == pytest.approx(23 / 24)


def test_a_period_without_judged_hours_has_no_attainment():
    [figure] = sla.slo_figures(_slo_rows([None] * 5, 0.99))
    assert figure["attainment"] is None and "no judged hours" in figure["budget_note"]


def test_availability_counts_hours_meeting_the_sli_and_weights_success_by_requests():
    # hours: 100 req / 2 err (2 % < 5 %: met), 10 / 1 (10 %: not met), 0 requests (not judged)
    # hours meeting: 1 of 2; request-weighted success: 1 - 3 / 110
    frame = pd.DataFrame([{"window_start": pd.Timestamp("2026-01-01") + pd.Timedelta(hours=i), "dimension": "route",
                           "dimension_value": "a", "request_count": n, "error_count": e}
                          for i, (n, e) in enumerate([(100, 2), (10, 1), (0, 0)])])
    [row] = sla._availability(frame, "request_count", sla.availability_sli(SLOS)).to_dict("records")
    assert (row["hours"], row["hours_met"], row["hours_met_share"]) == (2, 1, 0.5)
    assert row["success_rate"] == pytest.approx(1 - 3 / 110)


# ---- the report on the databases --------------------------------------------------------------------------------
START = datetime(2026, 3, 1)


@pytest.fixture
def month(store):
    # March 2026 (9 days rolled up) and the last 3 days of February, of an app unlike the generator's
    write_rollups(store.engine, rollup_rows(START - timedelta(days=3), 12 * 24, routes=["pay", "ship"],
                                            models=["big", "small"], seed=11))
    ids = {
        # in March, resolved: breach 10:00-12:00 (2 good windows seen up to 13:00), resolved at 14:00
        write_alert(store.engine, rule="slow", start=datetime(2026, 3, 2, 10), last=datetime(2026, 3, 2, 13),
                    good=2, status="resolved", group={"route": "pay"},
                    attribution=[{"dimension": "span", "value": "db", "share": 0.8}]),
        # started in February, still firing in March: part of both months
        write_alert(store.engine, rule="errors", start=datetime(2026, 2, 27, 5), last=datetime(2026, 3, 4, 0),
                    good=0, status="firing", severity="warning"),
    }
    # resolved in February: not an incident of March
    write_alert(store.engine, rule="old", start=datetime(2026, 2, 26, 1), last=datetime(2026, 2, 26, 4), good=2,
                status="resolved")
    return store.engine, build_sla(store.engine, sla.parse_period("2026-03"), SLOS), ids


def test_incidents_equal_the_alerts_table_rows_open_in_the_period(month):
    engine, report, ids = month
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, rule, severity, status FROM alerts WHERE window_start < :e AND "
                                    "(last_window_start >= :s OR status = 'firing') ORDER BY window_start"),
                            {"s": START, "e": datetime(2026, 4, 1)}).fetchall()
    got = [(i["id"], i["rule"], i["severity"], i["status"]) for i in report.figures["incidents"]]
    assert got == [tuple(r) for r in rows] and {g[0] for g in got} == ids


def test_an_incident_has_its_breach_duration_and_time_to_resolve(month):
    _, report, _ = month
    slow, errors = (next(i for i in report.figures["incidents"] if i["rule"] == r) for r in ("slow", "errors"))
    # breach 10:00 -> 12:00 (the first of the 2 good windows): 120 min; resolved at the end of 13:00: 240 min
    assert (slow["end"], slow["duration_minutes"], slow["time_to_resolve_minutes"]) == (
        "2026-03-02T12:00:00", 120.0, 240.0)
    assert slow["cause"] == "span=db (80%)" and slow["exemplar_trace_ids"] == ["ab" * 16]
    assert errors["end"] is None and errors["duration_minutes"] is None  # still open
    assert "ongoing" in report.html


def test_slo_attainment_and_availability_equal_sql_over_the_period(month):
    engine, report, _ = month
    params = {"s": START, "e": datetime(2026, 4, 1)}
    with engine.connect() as conn:
        slo = conn.execute(sa.text(
            "SELECT slo_name, SUM(CASE WHEN met THEN 1 ELSE 0 END), COUNT(met), MAX(burn_rate_1h) FROM "
            "slo_status_hourly WHERE window_start >= :s AND window_start < :e GROUP BY slo_name"), params).fetchall()
        routes = conn.execute(sa.text(
            "SELECT dimension_value, COUNT(*), SUM(CASE WHEN error_count * 1.0 / request_count < 0.05 THEN 1 ELSE 0 "
            "END), 1 - SUM(error_count) * 1.0 / SUM(request_count) FROM request_rollup_hourly WHERE dimension = "
            "'route' AND request_count > 0 AND window_start >= :s AND window_start < :e GROUP BY dimension_value"),
            params).fetchall()
        overall = conn.execute(sa.text(
            "SELECT SUM(request_count), SUM(error_count) FROM request_rollup_hourly WHERE dimension = 'overall' "
            "AND window_start >= :s AND window_start < :e"), params).one()
    figures = {s["slo"]: s for s in report.figures["slos"]}
    for name, met, judged, burn in slo:
        assert (figures[name]["hours_met"], figures[name]["hours_judged"]) == (met, judged)
        assert figures[name]["burn_rate_1h_peak"] == pytest.approx(burn)
    got = {r["value"]: r for r in report.figures["availability"]["routes"]}
    for route, hours, met, success in routes:
        assert (got[route]["hours"], got[route]["hours_met"]) == (hours, met)
        assert got[route]["success_rate"] == pytest.approx(float(success))
    head = report.figures["headline"]
    assert (head["requests"], head["errors"]) == (overall[0], overall[1])
    assert head["hours_with_data"] == 9 * 24 and report.figures["previous_period"]["hours_with_data"] == 3 * 24
    assert "only 216 of the period's 744 hours" in report.figures["notes"][0]


def test_a_month_with_nothing_rolled_up_says_so_and_shows_no_figure(store):
    report = build_sla(store.engine, sla.parse_period("2026-05"), SLOS)
    assert report.figures["headline"]["requests"] is None
    assert report.figures["notes"] == ["no rolled-up hours in this period: nothing to report"]
    assert "nothing to report" in report.html
    assert not {"requests", "success_rate", "cost_usd"} & set(report.headline)  # unknown, not 0
