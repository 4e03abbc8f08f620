"""Daily rollups: sums from the hourly tables, exact percentiles from the day's spans."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta

import pandas as pd
import pytest

from obs_pipelines.monitoring import rollups
from obs_pipelines.monitoring.tables import DAILY_TABLES
from obs_pipelines.pricing import load_prices
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces
from obs_pipelines_tests.monitoring import reference as ref
from obs_pipelines_tests.monitoring.conftest import insert

DAY = datetime(2026, 11, 2)
DAY_END = DAY + timedelta(days=1)
PCTS = ["latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"]


@pytest.fixture(scope="module")
def day_rows() -> list[dict]:
    gc.disable()
    try:  # 09:00-12:00 of traffic, plus a trace at 23:59 whose spans run into the next day
        rows = [r for t in generate_traces(DAY + timedelta(hours=9), 3, 0.08, 21) for r in t]
        rows += [r for t in generate_traces(DAY_END - timedelta(seconds=20), 20 / 3600, 0.2, 22) for r in t]
    finally:
        gc.enable()
    return rows


@pytest.fixture
def day(store, day_rows):
    insert(store, day_rows)
    prices = load_prices()
    hourly = {}
    for h in (8, 9, 10, 11, 12, 23):  # the other hours have no spans: their rollups add nothing
        start = DAY + timedelta(hours=h)
        frames = rollups.hourly_rollups(store.engine, start, start + timedelta(hours=1), prices, top_n_users=5)
        for name, frame in frames.items():
            db.replace_window(store.engine, rollups.HOURLY_TABLES[name], start, start + timedelta(hours=1), frame)
            hourly.setdefault(name, []).append(frame)
    return store, {k: pd.concat(v, ignore_index=True) for k, v in hourly.items()}, ref.spans_frame(day_rows)


def _sum_by(frame, keys, cols):
    f = frame.copy()
    for k in keys:
        f[k] = f[k].astype(object).where(f[k].notna(), "<null>")
    return f.groupby(keys)[cols].sum().sort_index()


def test_daily_request_counts_equal_the_sum_of_hourly(day):
    store, hourly, _ = day
    daily = rollups.daily_request_rollup(store.engine, DAY)
    keys = ["dimension", "dimension_value"]
    cols = ["request_count", "error_count", "latency_count"]
    pd.testing.assert_frame_equal(_sum_by(daily, keys, cols), _sum_by(hourly["request"], keys, cols),
                                  check_dtype=False)
    overall = daily[daily["dimension"] == "overall"].iloc[0]
    assert overall["throughput_per_min"] == pytest.approx(overall["request_count"] / 1440)


def test_daily_request_percentiles_equal_pandas_over_the_days_spans(day):
    store, _, spans = day
    daily = rollups.daily_request_rollup(store.engine, DAY)
    expected = ref.request_rollup(spans, DAY, DAY_END)
    ref.compare(daily, expected, ["dimension", "dimension_value"], exact=["request_count", "latency_count"],
                approx=[*PCTS, "latency_max_ms", "latency_mean_ms"], rel=1e-9)


def test_daily_step_percentiles_equal_pandas_and_counts_equal_hourly(day):
    store, hourly, spans = day
    daily = rollups.daily_step_rollup(store.engine, DAY)
    keys = ["dimension", "span_kind", "span_name"]
    pd.testing.assert_frame_equal(_sum_by(daily, keys, ["span_count", "error_count"]),
                                  _sum_by(hourly["step"], keys, ["span_count", "error_count"]), check_dtype=False)
    ref.compare(daily, ref.step_rollup(spans, DAY, DAY_END), keys, exact=["span_count", "latency_count"],
                approx=[*PCTS, "latency_max_ms", "latency_mean_ms"])


def test_daily_cost_and_tokens_equal_the_sum_of_hourly(day):
    store, hourly, _ = day
    daily = rollups.daily_usage_rollup(store.engine, DAY)
    keys = ["dimension", "dimension_value"]
    ints = ["call_count", "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_call_count"]
    pd.testing.assert_frame_equal(_sum_by(daily, keys, ints), _sum_by(hourly["usage"], keys, ints), check_dtype=False)
    money = ["cost_usd", "reported_cost_usd", "computed_cost_usd"]
    pd.testing.assert_frame_equal(_sum_by(daily, keys, money), _sum_by(hourly["usage"], keys, money),
                                  check_dtype=False, rtol=1e-12)
    total = daily[daily["dimension"] == "overall"].iloc[0]
    assert total["cost_usd"] == pytest.approx(hourly["usage"].query("dimension == 'overall'")["cost_usd"].sum())
    assert total["price_version"] == load_prices().version


def test_daily_errors_equal_the_sum_of_hourly(day):
    store, hourly, _ = day
    daily = rollups.daily_error_rollup(store.engine, DAY)
    keys = ["dimension", "dimension_value"]
    pd.testing.assert_frame_equal(_sum_by(daily, keys, ["error_count", "span_count"]),
                                  _sum_by(hourly["error"], keys, ["error_count", "span_count"]), check_dtype=False)


def test_daily_rollups_write_and_rewrite_their_day(day):
    store, _, _ = day
    first = rollups.write_daily_rollups(store.engine, DAY)
    second = rollups.write_daily_rollups(store.engine, DAY)
    assert first == second and all(n > 0 for n in first.values())
    for name, table in DAILY_TABLES.items():
        frame = db.read_window(store.engine, table, DAY, DAY_END, time_column="window_start")
        assert len(frame) == first[name]
        assert set(frame["window_end"]) == {DAY_END}


def test_daily_rollups_of_a_day_without_hourly_rows_are_empty_not_an_error(store):
    # a day nobody sent traffic on: no hourly rows, so every daily table gets no rows (issue 23's KeyError)
    quiet_day = datetime(2026, 11, 20)
    frames = rollups.daily_rollups(store.engine, quiet_day)
    assert set(frames) == set(DAILY_TABLES)
    for kind, frame in frames.items():
        assert frame.empty
        written = db.replace_window(store.engine, DAILY_TABLES[kind], quiet_day, quiet_day + timedelta(days=1), frame)
        assert written == 0
