"""Numbers for people (obs_pipelines/formatting.py): each case is checkable by eye."""

from __future__ import annotations

import pytest

from obs_pipelines import formatting as f


@pytest.mark.parametrize("value, text", [
    (33450.0, "33,450"),  # the 3.345e+04: thousands separated, no exponent
    (99.99999999999991, "100"),  # float noise of a percentage: 100
    (0.733275412684622, "0.733"),  # three significant digits
    (0.000123456, "0.000123"),  # small, still no exponent
    (12.345, "12.3"),
    (1563, "1,563"),
    (float("nan"), "n/a"),
    (None, "n/a"),
])
def test_numbers_have_no_exponent_and_no_float_noise(value, text):
    assert f.number(value) == text


@pytest.mark.parametrize("share, text", [
    (35 / 1563, "2.2%"),  # the error_causes share printed as "0.0"
    (1 / 20000, "0.005%"),  # rare, but not zero
    (0.84, "84%"),
    (0.999, "99.9%"),
    (0.0, "0%"),
    (-5.25, "-525%"),
])
def test_shares_are_percentages_and_a_small_share_is_not_zero(share, text):
    assert f.percent(share) == text


@pytest.mark.parametrize("ms, text", [
    (845, "845 ms"), (33450, "33.5 s"), (125000, "2 min 5 s"), (5_400_000, "1 h 30 min"), (999.6, "1 s"),
])
def test_durations_take_the_unit_a_person_would(ms, text):
    assert f.duration_ms(ms) == text


@pytest.mark.parametrize("metric, value, text", [
    ("latency_p95_ms", 33450.0, "33.5 s"),
    ("error_rate", 0.84, "84%"),
    ("cost_usd / call_count", 0.0026, "$0.0026"),
    ("request_count", 1563.0, "1,563"),
    ("empty_rate", 0.3, "30%"),
    ("burn_rate(overall_error_rate)", 14.4, "14.4x"),  # a pace, not a share
])
def test_a_metric_value_reads_its_unit_from_the_metric_name(metric, value, text):
    assert f.metric_value(metric, value) == text


def test_rounded_keeps_four_significant_digits_for_the_plots_and_integers_whole():
    assert f.rounded(0.733275412684622) == 0.7333
    assert f.rounded(2.0) == 2 and isinstance(f.rounded(2.0), int)
    assert f.rounded("text") == "text" and f.rounded(True) is True
