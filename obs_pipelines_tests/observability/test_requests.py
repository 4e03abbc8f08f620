"""The time per step kind of a request is the union of its spans' intervals: parallel calls count once."""

from __future__ import annotations

import pandas as pd

from obs_pipelines.observability.requests import kind_times

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
