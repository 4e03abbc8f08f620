"""Rollups over the trace generator's realistic traffic, and the incidents they must make visible."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta

import pytest

from obs_pipelines.monitoring import rollups
from obs_pipelines.pricing import load_prices
from obs_pipelines.synth.generator import generate_traces, parse_incident
from obs_pipelines_tests.monitoring import reference as ref
from obs_pipelines_tests.monitoring.conftest import insert

START = datetime(2026, 11, 2, 9, 0)
CONTROL = START  # quiet hour
INCIDENT_HOURS = {
    "latency_spike": START + timedelta(hours=1),
    "provider_outage": START + timedelta(hours=2),
    "rate_limit_storm": START + timedelta(hours=3),
    "cost_overrun": START + timedelta(hours=4),
}
HOUR = timedelta(hours=1)
STAT_APPROX = ["latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
               "latency_mean_ms"]


@pytest.fixture(scope="module")
def traces() -> list[list[dict]]:
    incidents = [parse_incident(f"{name}@{hour:%Y-%m-%dT%H:%M}+1h") for name, hour in INCIDENT_HOURS.items()]
    gc.disable()
    try:
        return list(generate_traces(START, 5, 0.15, 5, incidents))
    finally:
        gc.enable()


def hours_of(traces, *starts: datetime) -> list[dict]:
    """Every span of the traces whose first span starts in one of the hours."""
    return [row for t in traces for row in t if any(s <= t[0]["start_time"] < s + HOUR for s in starts)]


def load(store, traces, *starts):
    rows = hours_of(traces, *starts)
    insert(store, rows)
    return ref.spans_frame(rows)


def by_key(frame, dimension, key="dimension_value"):
    return frame[frame["dimension"] == dimension].set_index(key)


def test_rollups_equal_pandas_over_generated_traffic(store, traces):
    spans = load(store, traces, CONTROL)
    end = CONTROL + HOUR
    ref.compare(rollups.request_rollup(store.engine, CONTROL, end), ref.request_rollup(spans, CONTROL, end),
                ["dimension", "dimension_value"], exact=["request_count", "error_count", "latency_count"],
                approx=STAT_APPROX)
    ref.compare(rollups.step_rollup(store.engine, CONTROL, end), ref.step_rollup(spans, CONTROL, end),
                ["dimension", "span_kind", "span_name"], exact=["span_count", "error_count", "latency_count"],
                approx=STAT_APPROX)
    usage = rollups.usage_rollup(store.engine, CONTROL, end, load_prices(), top_n_users=10)
    ref.compare(usage, ref.usage_rollup(spans, CONTROL, end, 10),
                ["dimension", "dimension_value"],
                exact=["call_count", "input_tokens", "output_tokens", "cached_input_tokens", "unpriced_call_count"],
                approx=["cost_usd", "reported_cost_usd", "computed_cost_usd"], abs_tol=0.005)
    assert by_key(usage, "overall").iloc[0]["unpriced_call_count"] == 0  # every generated model has a price
    errors = rollups.error_rollup(store.engine, CONTROL, end)
    assert by_key(errors, "overall").iloc[0]["error_count"] == len(ref.origin_errors(spans, CONTROL, end))


def test_latency_spike_raises_the_slow_steps_p95_and_not_the_others(store, traces):
    hour = INCIDENT_HOURS["latency_spike"]  # default target: retrieval
    load(store, traces, CONTROL, hour)
    before = by_key(rollups.step_rollup(store.engine, CONTROL, CONTROL + HOUR), "span_kind")["latency_p95_ms"]
    during = by_key(rollups.step_rollup(store.engine, hour, hour + HOUR), "span_kind")["latency_p95_ms"]
    ratio = during / before
    assert ratio["retrieval"] > 3
    for kind in ("embedding", "reranker", "llm", "guardrail", "tool"):
        assert 0.67 < ratio[kind] < 1.5, (kind, ratio[kind])


def test_provider_outage_raises_provider_5xx_and_timeouts_of_that_provider(store, traces):
    hour = INCIDENT_HOURS["provider_outage"]  # default target: openai
    load(store, traces, CONTROL, hour)
    before = rollups.error_rollup(store.engine, CONTROL, CONTROL + HOUR)
    during = rollups.error_rollup(store.engine, hour, hour + HOUR)
    cls_before, cls_during = by_key(before, "error_class")["error_count"], by_key(during, "error_class")["error_count"]
    assert cls_during["provider_5xx"] >= max(20, 5 * cls_before["provider_5xx"])
    assert cls_during["timeout"] >= max(5, 3 * cls_before["timeout"])
    assert cls_during["rate_limit"] <= 2 * cls_before["rate_limit"] + 5
    prov = by_key(during, "provider")
    assert prov.loc["openai", "error_rate"] > 5 * by_key(before, "provider").loc["openai", "error_rate"]
    pairs = by_key(during, "provider_error_class")
    assert pairs.loc["openai/provider_5xx", "error_count"] == cls_during["provider_5xx"]


def test_rate_limit_storm_raises_rate_limit_errors(store, traces):
    hour = INCIDENT_HOURS["rate_limit_storm"]
    load(store, traces, CONTROL, hour)
    before = by_key(rollups.error_rollup(store.engine, CONTROL, CONTROL + HOUR), "error_class")["error_count"]
    during = by_key(rollups.error_rollup(store.engine, hour, hour + HOUR), "error_class")["error_count"]
    assert during["rate_limit"] >= max(20, 5 * before["rate_limit"])
    assert during["provider_5xx"] <= 2 * before["provider_5xx"] + 5


def test_cost_overrun_raises_the_cost_of_the_right_route(store, traces):
    hour = INCIDENT_HOURS["cost_overrun"]  # default target: rag_qa
    load(store, traces, CONTROL, hour)
    prices = load_prices()

    def cost_per_call(start):
        routes = by_key(rollups.usage_rollup(store.engine, start, start + HOUR, prices), "route")
        return routes["cost_usd"] / routes["call_count"]

    ratio = cost_per_call(hour) / cost_per_call(CONTROL)
    assert ratio["rag_qa"] > 2
    for route in ratio.index.drop("rag_qa"):
        assert ratio[route] < 1.5, (route, ratio[route])
