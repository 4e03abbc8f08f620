"""The real framework traces (../shared/data/real-traces: 20 exports from 20 agent frameworks, two of them the
same trace, so 19 traces and 135 distinct spans) assemble into requests with their roots, trees with their
parents, and agent paths for the ones that called tools. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.hourly import hourly_tables
from obs_pipelines.observability.tree import read_trace, tree
from obs_pipelines.pricing import load_prices
from obs_pipelines_tests.real_trace_counts import real_counts

TRACES_FILE = "framework-traces.otlp.jsonl"
HOUR = timedelta(hours=1)


def _spans(store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(sa.text(
            "SELECT trace_id, span_id, parent_span_id, kind, start_time FROM spans")).mappings().all())
    frame["start_time"] = pd.to_datetime(frame["start_time"])
    return frame


def _all_hours(store, spans: pd.DataFrame) -> dict[str, pd.DataFrame]:
    settings, prices = ObservabilitySettings(baseline_days=1), load_prices()
    out: dict[str, list] = {}
    for hour in sorted(set(spans["start_time"].dt.floor("h"))):
        frames, _ = hourly_tables(store.engine, hour.to_pydatetime(), (hour + HOUR).to_pydatetime(), settings, prices)
        for name, frame in frames.items():
            out.setdefault(name, []).append(frame)
    return {name: pd.concat(parts, ignore_index=True) for name, parts in out.items()}


def test_real_traces_become_one_request_each_with_its_root_and_every_span(store, real_traces_dir):
    assert ingest_paths(store.engine, [real_traces_dir / TRACES_FILE]).rejected == 0
    spans = _spans(store)
    traces = _all_hours(store, spans)["traces"].set_index("trace_id")
    assert sorted(traces.index) == sorted(spans["trace_id"].unique()) and len(traces) == real_counts().traces
    roots = spans[spans["parent_span_id"].isna()].set_index("trace_id")["start_time"]
    firsts = spans.groupby("trace_id")["start_time"].min()
    expected_start = firsts.copy()
    expected_start[roots.index] = roots  # the root's start; a rootless trace (the C# agent) starts at its first span
    assert (pd.to_datetime(traces["start_time"]) == expected_start[traces.index]).all()
    assert traces["span_count"].sum() == len(spans) == real_counts().stored
    assert (traces["tool_spans"] == spans[spans["kind"] == "tool"].groupby("trace_id").size()
            .reindex(traces.index, fill_value=0)).all()


def test_real_traces_that_called_tools_get_their_agent_paths(store, real_traces_dir):
    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    spans = _spans(store)
    paths = _all_hours(store, spans)["agent_paths"].set_index("trace_id")
    tools = spans[spans["kind"] == "tool"].groupby("trace_id").size()
    assert sorted(paths.index) == sorted(tools.index) and len(paths) == 10
    assert (paths["tool_calls"] == tools[paths.index]).all()
    assert (paths["path"].str.len() > 0).all()
    assert not paths["loop_detected"].any()  # none of these agents looped


def test_the_tree_of_each_real_trace_holds_every_span_under_its_parent(store, real_traces_dir):
    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE])
    spans = _spans(store)
    for trace_id, own in spans.groupby("trace_id"):
        nodes = tree(read_trace(store.engine, trace_id))
        assert sorted(n.span["span_id"] for n in nodes) == sorted(own["span_id"])
        depth = {}
        for node in nodes:  # parents come before their children, one level up
            parent = node.span["parent_span_id"]
            assert node.depth == (depth[parent] + 1 if parent in depth else 0), trace_id
            depth[node.span["span_id"]] = node.depth
