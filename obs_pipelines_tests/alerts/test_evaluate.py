"""Rule evaluation on frames (pure pandas): one result per window and group."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

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
