"""Rule evaluation on frames (pure pandas): one result per window and group."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from obs_pipelines.alerts.evaluate import evaluate
from obs_pipelines.alerts.rules import parse_rule

H = datetime(2026, 11, 2, 12, 0)
HOUR = timedelta(hours=1)


def rollup(rows: list[tuple]) -> pd.DataFrame:
    """(hour offset, dimension, value, metric, count) -> rows shaped like a monitoring rollup."""
    return pd.DataFrame([{"window_start": H + h * HOUR, "dimension": d, "dimension_value": v, "error_rate": m,
                          "request_count": n} for h, d, v, m, n in rows])


def threshold(**extra):
    return parse_rule({"name": "errors", "kind": "threshold", "table": "t", "metric": "error_rate",
                       "group_by": "route", "threshold": 0.2, "sample_column": "request_count", **extra})


def test_threshold_breaks_only_the_group_above_it():
    frame = rollup([(0, "route", "a", 0.5, 100), (0, "route", "b", 0.1, 100), (0, "overall", None, 0.3, 200)])
    results = evaluate(threshold(), frame, H, H + HOUR)
    assert {r.group["route"]: r.passed for r in results} == {"a": False, "b": True}


def test_groups_under_the_minimum_sample_size_are_not_judged():
    frame = rollup([(0, "route", "a", 0.9, 5)])
    [result] = evaluate(threshold(min_samples=20), frame, H, H + HOUR)
    assert (result.judged, result.passed) == (False, True)


def test_overall_groups_by_nothing():
    frame = rollup([(0, "overall", None, 0.3, 200), (0, "route", "a", 0.9, 100)])
    [result] = evaluate(threshold(group_by="overall"), frame, H, H + HOUR)
    assert result.group == {} and not result.passed


def test_where_keeps_only_the_matching_rows():
    frame = rollup([(0, "error_class", "rate_limit", 0.3, 100), (0, "error_class", "timeout", 0.5, 100)])
    [result] = evaluate(threshold(group_by="error_class", where={"dimension_value": "rate_limit"}), frame, H, H + HOUR)
    assert result.group == {"error_class": "rate_limit"} and not result.passed


def test_a_ratio_metric_divides_two_columns():
    frame = pd.DataFrame([{"window_start": H, "dimension": "route", "dimension_value": "a", "cost_usd": 3.0,
                           "call_count": 10}])
    rule = parse_rule({"name": "cpc", "kind": "threshold", "table": "t", "metric": "cost_usd / call_count",
                       "group_by": "route", "threshold": 0.2})
    [result] = evaluate(rule, frame, H, H + HOUR)
    assert result.value == 0.3 and not result.passed


def test_aggregate_mean_turns_item_rows_into_a_rate_per_group():
    frame = pd.DataFrame([{"window_start": H, "route": "agent", "loop_detected": i < 3} for i in range(10)])
    rule = parse_rule({"name": "loops", "kind": "threshold", "table": "agent_paths", "metric": "loop_detected",
                       "group_by": ["route"], "aggregate": "mean", "threshold": 0.2, "min_samples": 10})
    [result] = evaluate(rule, frame, H, H + HOUR)
    assert (result.value, result.samples, result.passed) == (0.3, 10.0, False)


def anomaly(**extra):
    return parse_rule({"name": "slow", "kind": "anomaly", "table": "t", "metric": "error_rate", "group_by": "route",
                       "baseline": "trailing_hours", "baseline_windows": 6, **extra})


def history(last: float, previous=(0.10, 0.11, 0.09, 0.10, 0.12, 0.10)) -> pd.DataFrame:
    rows = [(-(i + 1), "route", "a", v, 100) for i, v in enumerate(previous)] + [(0, "route", "a", last, 100)]
    return rollup(rows)


def test_anomaly_fires_far_outside_the_median_and_mad_of_the_trailing_hours():
    [result] = evaluate(anomaly(), history(0.40), H, H + HOUR)
    assert not result.passed and result.baseline == 0.10


def test_anomaly_stays_quiet_within_the_band():
    [result] = evaluate(anomaly(), history(0.12), H, H + HOUR)
    assert result.passed and result.judged


def test_anomaly_needs_the_minimum_absolute_change():
    [result] = evaluate(anomaly(min_abs_change=0.5), history(0.40), H, H + HOUR)
    assert result.passed


def test_anomaly_against_the_same_hour_of_previous_days_ignores_other_hours():
    rows = [(-24 * d, "route", "a", 0.10 + 0.01 * d, 100) for d in range(1, 8)]
    rows += [(-1, "route", "a", 0.90, 100), (0, "route", "a", 0.50, 100)]  # the hour before is no baseline
    rule = anomaly(baseline="same_hour_previous_days", baseline_windows=7)
    [result] = evaluate(rule, rollup(rows), H, H + HOUR)
    assert not result.passed and result.detail["baseline_windows"] == 7


def test_anomaly_without_enough_baseline_is_not_judged():
    [result] = evaluate(anomaly(), history(0.40, previous=(0.1, 0.1)), H, H + HOUR)
    assert not result.judged and result.passed


def slo_status(met: list[bool | None]) -> pd.DataFrame:
    return pd.DataFrame([{"window_start": H - (len(met) - 1 - i) * HOUR, "slo_name": "errors", "met": m,
                          "target": 0.9} for i, m in enumerate(met)])


def burn_rule():
    return parse_rule({"name": "burn", "kind": "burn_rate", "slo": "errors",
                       "windows": [{"long_hours": 6, "short_hours": 1, "factor": 3}]})


def test_burn_rate_fires_when_the_long_and_the_short_window_both_burn():
    # 2 bad of 6 hours = 0.33 / 0.1 = 3.3x; the last hour bad = 10x
    [result] = evaluate(burn_rule(), slo_status([True, True, True, True, False, False]), H, H + HOUR)
    assert not result.passed and result.group == {"slo": "errors"}


def test_burn_rate_is_quiet_once_the_short_window_recovers():
    [result] = evaluate(burn_rule(), slo_status([True, True, True, False, False, True]), H, H + HOUR)
    assert result.passed and result.detail["burn_6h"] > 3


def test_burn_rate_is_quiet_on_a_single_bad_hour_under_the_long_factor():
    # the last hour burns 10x, but 1 bad of 6 hours is 1.7x: under 3x
    [result] = evaluate(burn_rule(), slo_status([True] * 5 + [False]), H, H + HOUR)
    assert result.passed and result.detail["burn_1h"] > 3


def test_eval_score_share_below_a_cut_per_group():
    scores = pd.DataFrame([{"window_start": H, "scored_at": H + timedelta(minutes=i), "scorer": "groundedness", "route": "rag",
                            "score": 0.2 if i < 6 else 0.9} for i in range(10)])
    rule = parse_rule({"name": "ungrounded", "kind": "eval_score", "scorer": "groundedness", "group_by": ["route"],
                       "statistic": "share_below", "cut": 0.5, "comparison": ">", "threshold": 0.5})
    [result] = evaluate(rule, scores, H, H + HOUR)
    assert (result.value, result.group, result.passed) == (0.6, {"route": "rag"}, False)


# ---- history-relative rules: unit-free bars --------------------------------------------------------------
def relative(**extra):
    return parse_rule({"name": "rel", "kind": "anomaly", "table": "t", "metric": "error_rate", "group_by": "route",
                       "baseline": "trailing_hours", "baseline_windows": 6, "mad_factor": 4, "min_ratio": 1.5,
                       "min_baseline_windows": 4, "sample_column": "request_count", **extra})


def rate_rule(**extra):
    return relative(test="binomial", min_abs_change=0.05, **extra)


def test_a_rate_near_zero_that_jumps_to_sixty_percent_fires():
    # 1 % of 500 requests each hour (MAD 0), then 60 %: plainly an outage
    [result] = evaluate(rate_rule(), history(0.60, previous=(0.01,) * 6), H, H + HOUR)
    assert not result.passed and result.detail["p_value"] < 1e-6


def test_a_rate_near_zero_that_doubles_to_two_percent_stays_quiet():
    # 1 % -> 2 % of 100 requests is one more failure: under the 5-point practical bar
    [result] = evaluate(rate_rule(), history(0.02, previous=(0.01,) * 6), H, H + HOUR)
    assert result.passed and result.judged


def test_a_first_failure_in_a_small_group_is_not_significant():
    # 1 of 12 calls fails in a group that never failed: 8 % is over the practical bar, but one event in 12 is
    # not surprising (binomial tail ~ 1 %)
    rows = [(-(i + 1), "route", "a", 0.0, 12) for i in range(6)] + [(0, "route", "a", 1 / 12, 12)]
    [result] = evaluate(rate_rule(), rollup(rows), H, H + HOUR)
    assert result.passed and result.detail["p_value"] > 1e-3


def latency_history(last: float, scale: float) -> pd.DataFrame:
    previous = [v * scale for v in (100, 110, 95, 105, 120, 98)]
    rows = [{"window_start": H - (i + 1) * HOUR, "dimension": "route", "dimension_value": "a",
             "error_rate": v, "request_count": 50} for i, v in enumerate(previous)]
    rows.append({"window_start": H, "dimension": "route", "dimension_value": "a", "error_rate": last * scale,
                 "request_count": 50})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0, 1000.0])
def test_the_same_rule_fires_on_an_eightfold_spike_at_any_scale(scale):
    # history ~100 (x scale), spike 800 (x scale): same verdict whatever the unit or magnitude
    [result] = evaluate(relative(), latency_history(800, scale), H, H + HOUR)
    assert not result.passed


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0, 1000.0])
def test_the_same_rule_ignores_a_forty_percent_rise_at_any_scale(scale):
    # 145 vs a median of 102.5 (MAD 6): robust z ~4.8, over the statistical bar, but x1.41 is under x1.5
    [result] = evaluate(relative(), latency_history(145, scale), H, H + HOUR)
    assert result.passed and result.judged and result.detail["robust_z"] > 4


def test_a_history_without_spread_fires_only_past_the_practical_bar():
    # MAD 0: z is infinite for any change; x1.2 stays quiet, x2 fires
    flat = (0.2,) * 6
    [small] = evaluate(relative(), history(0.24, previous=flat), H, H + HOUR)
    [large] = evaluate(relative(), history(0.40, previous=flat), H, H + HOUR)
    assert small.passed and not large.passed


def test_a_score_falling_fires_a_down_rule_and_rising_does_not():
    previous = (0.90, 0.91, 0.89, 0.92, 0.90, 0.88)
    [drop] = evaluate(relative(direction="down"), history(0.30, previous=previous), H, H + HOUR)
    [rise] = evaluate(relative(direction="down"), history(0.99, previous=previous), H, H + HOUR)
    assert not drop.passed and rise.passed and drop.threshold < 0.9


def test_a_group_without_enough_history_is_judged_not_enough_history():
    # 2 hours of history where the rule asks for 4: neither fires nor passes as a good window, and says why
    [result] = evaluate(relative(), history(5.0, previous=(0.1, 0.1)), H, H + HOUR)
    assert not result.judged and result.passed
    assert result.detail["not_judged"] == "not enough history: 2 of 4 baseline windows"


def test_history_windows_under_the_minimum_sample_size_do_not_count():
    rows = [(-(i + 1), "route", "a", 0.1, 3) for i in range(6)] + [(0, "route", "a", 0.9, 100)]
    [result] = evaluate(relative(min_samples=10), rollup(rows), H, H + HOUR)
    assert not result.judged and result.detail["baseline_windows"] == 0


def test_baseline_both_pools_the_trailing_hours_and_the_same_hour_of_previous_days():
    # 2 previous days + 3 trailing hours = 5 windows (the 10 h old row is in neither)
    rows = [(-24, "route", "a", 0.1, 100), (-48, "route", "a", 0.1, 100), (-10, "route", "a", 0.1, 100)]
    rows += [(-h, "route", "a", 0.1, 100) for h in (1, 2, 3)] + [(0, "route", "a", 0.5, 100)]
    rule = relative(baseline="both", baseline_windows=2, trailing_hours=3)
    [result] = evaluate(rule, rollup(rows), H, H + HOUR)
    assert result.detail["baseline_windows"] == 5 and not result.passed


def test_a_dimension_groups_its_rows_by_plain_columns():
    # step rollup rows of dimension span_name, grouped by kind and name; the per-kind rows are left out
    frame = pd.DataFrame([
        {"window_start": H, "dimension": "span_name", "dimension_value": "search", "span_kind": "retrieval",
         "span_name": "search", "latency_p95_ms": 900.0},
        {"window_start": H, "dimension": "span_kind", "dimension_value": "retrieval", "span_kind": "retrieval",
         "span_name": None, "latency_p95_ms": 500.0}])
    rule = parse_rule({"name": "steps", "kind": "threshold", "table": "step_rollup_hourly", "metric": "latency_p95_ms",
                       "dimension": "span_name", "group_by": ["span_kind", "span_name"], "threshold": 800})
    [result] = evaluate(rule, frame, H, H + HOUR)
    assert result.group == {"span_kind": "retrieval", "span_name": "search"} and not result.passed


def test_a_dimension_named_in_group_by_reads_its_dimension_value():
    frame = pd.DataFrame([{"window_start": H, "dimension": "route", "dimension_value": "kb", "scorer": "s",
                           "mean_score": 0.2}])
    rule = parse_rule({"name": "q", "kind": "threshold", "table": "score_rollup_hourly", "metric": "mean_score",
                       "dimension": "route", "group_by": ["scorer", "route"], "comparison": "<", "threshold": 0.5})
    [result] = evaluate(rule, frame, H, H + HOUR)
    assert result.group == {"scorer": "s", "route": "kb"} and not result.passed


@pytest.mark.parametrize("bad,good", [(0.0, 1.0), ("false", "true"), ("0", "1"), (False, True), (0, 1)])
def test_burn_rate_reads_met_however_the_database_spells_it(bad, good):
    # SQLite returns a bool column holding a null as float: 0.0 is a missed window like False
    [result] = evaluate(burn_rule(), slo_status([good] * 4 + [bad, bad]), H, H + HOUR)
    assert not result.passed


def test_burn_rate_fires_on_both_databases_when_another_slo_has_an_hour_without_traffic(store):
    # the outage SLO misses its last 2 of 6 hours (10x burn at 90 %); a quiet route's SLO had no traffic in one
    # hour (met null), which made SQLite return the column as float and the rule read 0.0 as "met"
    from obs_pipelines.alerts.source import read_rule_frame
    from obs_pipelines.monitoring.tables import slo_status_hourly

    rows = []
    for i in range(6):
        t = H - (5 - i) * HOUR
        rows.append({"window_start": t, "window_end": t + HOUR, "slo_name": "errors", "target": 0.9, "met": i < 4})
        rows.append({"window_start": t, "window_end": t + HOUR, "slo_name": "quiet_route", "target": 0.9,
                     "met": None if i == 2 else True})
    with store.engine.begin() as conn:
        conn.execute(slo_status_hourly.insert(), rows)
    rule = burn_rule()
    [result] = evaluate(rule, read_rule_frame(store.engine, rule, H, H + HOUR), H, H + HOUR)
    assert not result.passed and result.detail == {"burn_6h": pytest.approx(10 / 3), "burn_1h": pytest.approx(10)}


def test_an_hour_with_fewer_samples_than_its_history_gets_a_wider_band():
    # history medians of 100-sample hours spread by MAD 5; a 4-sample hour 30 above the median is z ~4 at
    # 100 samples but z ~0.8 once the spread is widened by sqrt(100 / 4) = 5
    previous = (100.0, 105.0, 95.0, 100.0, 110.0, 90.0)
    rows = [(-(i + 1), "route", "a", v, 100) for i, v in enumerate(previous)]
    full = evaluate(relative(min_ratio=1.0), rollup(rows + [(0, "route", "a", 130.0, 100)]), H, H + HOUR)[0]
    few = evaluate(relative(min_ratio=1.0), rollup(rows + [(0, "route", "a", 130.0, 4)]), H, H + HOUR)[0]
    assert not full.passed and few.passed and few.detail["robust_z"] == pytest.approx(full.detail["robust_z"] / 5)
