"""The time per step kind of a request is the union of its spans' intervals: parallel calls count once."""

from __future__ import annotations

import pandas as pd

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
