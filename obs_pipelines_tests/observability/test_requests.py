"""The time per step kind of a request is the union of its spans' intervals: parallel calls count once."""

from __future__ import annotations

import pandas as pd
import pytest

from obs_pipelines.observability.span_stats import kind_times

T0 = pd.Timestamp("2026-11-02 10:00:00")


def _at(ms: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(milliseconds=ms)


def test_parallel_and_overlapping_steps_of_a_kind_count_once():
    spans = pd.DataFrame({
        "trace_id": ["a", "a", "a", "a", "b", "a"],
        "kind": ["llm", "llm", "llm", "tool", "llm", "agent"],  # agent: a wrapper, not a timed step
        "start_time": [_at(0), _at(50), _at(200), _at(0), _at(10), _at(0)],
        "end_time": [_at(100), _at(120), _at(300), _at(40), _at(20), _at(300)],
    })
    times = kind_times(spans).set_index(["trace_id", "kind"])["ms"].to_dict()
    assert times == {("a", "llm"): 220.0, ("a", "tool"): 40.0, ("b", "llm"): 10.0}


def test_per_trace_aggregates_of_the_store_equal_the_pandas_definition(store):
    # PostgreSQL computes spans per kind, tokens and step times in SQL; they must equal span_stats over the
    # same spans (the SQLite path), overlapping and parallel steps of a kind included
    from obs_pipelines.observability import reading
    from obs_pipelines.observability.span_stats import span_aggregates
    from obs_pipelines_tests.observability.conftest import INCIDENT_HOUR, load_traffic

    load_traffic(store, "tool_loop")
    end = INCIDENT_HOUR + pd.Timedelta(hours=1)
    got = reading.trace_aggregates(store.engine, INCIDENT_HOUR, end).set_index("trace_id").sort_index()
    spans = reading.spans(store.engine, INCIDENT_HOUR, end)
    expected = span_aggregates(spans).set_index("trace_id").sort_index()
    assert len(got) == spans["trace_id"].nunique() > 100
    assert (got["tool_spans"] > 1).any()  # looping traces: several tool calls per request
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, check_exact=False, rtol=1e-9)


def test_one_light_read_gives_the_statistics_the_window_reads_in_sql(store):
    # SQLite's hour reads its spans once and computes in pandas what PostgreSQL reads in four queries: the
    # per-trace aggregates, the step and route percentiles of the hour and the steps that wrap others
    from obs_pipelines.observability import reading
    from obs_pipelines_tests.observability.conftest import INCIDENT_HOUR, load_traffic

    load_traffic(store, "latency_spike")
    end = INCIDENT_HOUR + pd.Timedelta(hours=1)
    requests = reading.requests(store.engine, INCIDENT_HOUR, end)
    got = reading.window_statistics(reading.light_spans(store.engine, INCIDENT_HOUR, end), requests)
    keys = ["route", "span_name", "span_kind"]
    steps = reading.step_percentiles(store.engine, [(INCIDENT_HOUR, end)])
    pd.testing.assert_frame_equal(got["steps_now"].sort_values(keys).reset_index(drop=True),
                                  steps.sort_values(keys).reset_index(drop=True), check_exact=False, rtol=1e-9)
    routes = reading.route_percentiles(store.engine, [(INCIDENT_HOUR, end)])
    pd.testing.assert_frame_equal(got["routes_now"].sort_values("route").reset_index(drop=True),
                                  routes.sort_values("route").reset_index(drop=True), check_exact=False, rtol=1e-9)
    assert got["wrapping"] == reading.wrapping_steps(store.engine, INCIDENT_HOUR, end) != set()
    pd.testing.assert_frame_equal(
        got["aggregates"].set_index("trace_id").sort_index(),
        reading.trace_aggregates(store.engine, INCIDENT_HOUR, end).set_index("trace_id").sort_index(),
        check_dtype=False, check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_calls_priced_and_summed_in_the_database_equal_the_calls_priced_in_pandas(store):
    # PostgreSQL prices and sums the calls in SQL (per trace for `traces`, per cost group for the cost
    # attribution); the figures must be those of the calls read one by one and priced by the price table
    from obs_pipelines.observability import attribution, reading, requests
    from obs_pipelines.pricing import load_prices
    from obs_pipelines_tests.observability.conftest import INCIDENT_HOUR, load_traffic

    load_traffic(store, "cost_overrun")
    end = INCIDENT_HOUR + pd.Timedelta(hours=1)
    prices = load_prices()
    calls = reading.spans(store.engine, INCIDENT_HOUR, end, kinds=("llm", "embedding"))
    window_requests = reading.requests(store.engine, INCIDENT_HOUR, end)
    costs = requests.span_costs(calls, prices)
    aggregates = reading.trace_aggregates(store.engine, INCIDENT_HOUR, end)
    in_pandas = requests.traces_frame(window_requests, aggregates, calls, prices, costs=costs)
    in_sql = requests.traces_frame(window_requests, aggregates, calls[calls["status"] == "error"], prices,
                                   calls=reading.trace_calls(store.engine, INCIDENT_HOUR, end, prices))
    columns = ["trace_id", "cost_usd", "models", "prompt_versions"]
    pd.testing.assert_frame_equal(in_sql[columns].sort_values("trace_id").reset_index(drop=True),
                                  in_pandas[columns].sort_values("trace_id").reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)
    assert in_sql["prompt_versions"].str.contains(",").any() or in_sql["models"].str.contains(",").any()

    keys = ["route", "model", "prompt_version", "user"]
    one_by_one = (attribution.calls_of(calls, window_requests, costs)
                  .groupby(keys, as_index=False)[["input_tokens", "output_tokens", "cost", "calls"]].sum())
    [groups] = reading.call_groups(store.engine, [(INCIDENT_HOUR, end)], prices)
    summed = attribution.calls_of_groups(groups)
    pd.testing.assert_frame_equal(summed.sort_values(keys).reset_index(drop=True),
                                  one_by_one.sort_values(keys).reset_index(drop=True),
                                  check_dtype=False, check_exact=False, rtol=1e-9)
