"""`obs-pipelines trace TRACE_ID` reads one request back from the store: its tree equals its spans (JSON), and
the printed tree shows the timing bars, retrieved documents and tool calls. SQLite and PostgreSQL."""

from __future__ import annotations

import json

from click.testing import CliRunner

from obs_pipelines.cli_trace import trace_command
from obs_pipelines_tests.observability.conftest import load_traffic


def _trace(rows: list[dict], route: str) -> list[dict]:
    trace_id = next(r["trace_id"] for r in rows if r["route"] == route and r["status"] == "ok"
                    and r["parent_span_id"] is None and r["kind"] == "chain")
    return [r for r in rows if r["trace_id"] == trace_id]


def test_the_json_tree_of_a_known_trace_equals_its_spans(store):
    rows = load_traffic(store)
    spans = _trace(rows, "rag_qa")
    result = CliRunner().invoke(trace_command, [spans[0]["trace_id"], "--json", "--db-url", store.db_url])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)["spans"]
    assert {(s["span_id"], s["parent_span_id"], s["name"]) for s in printed} == {
        (s["span_id"], s["parent_span_id"], s["name"]) for s in spans}
    assert printed[0]["parent_span_id"] is None and printed[0]["depth"] == 0
    assert all(s["depth"] == 1 for s in printed[1:])  # rag_qa: every step under the root
    retrieval = next(s for s in printed if s["kind"] == "retrieval")
    assert retrieval["attributes"]["retrieval.documents"] == next(
        s for s in spans if s["kind"] == "retrieval")["attributes"]["retrieval.documents"]


def test_the_printed_tree_shows_bars_documents_and_tool_calls(store):
    rows = load_traffic(store)
    runner = CliRunner()
    rag = _trace(rows, "rag_qa")
    out = runner.invoke(trace_command, [rag[0]["trace_id"], "--db-url", store.db_url]).output
    doc = next(s for s in rag if s["kind"] == "retrieval")["attributes"]["retrieval.documents"][0]
    assert "retrieve_docs" in out and "█" in out and str(doc["id"]) in out
    agent = _trace(rows, "agent_tools")
    out = runner.invoke(trace_command, [agent[0]["trace_id"], "--db-url", store.db_url]).output
    tool = next(s for s in agent if s["kind"] == "tool")
    assert tool["name"] in out and "args: " in out


def test_an_unknown_trace_is_one_line_not_a_traceback(store):
    result = CliRunner().invoke(trace_command, ["ab" * 16, "--db-url", store.db_url])
    assert result.exit_code == 1 and "no spans for trace" in result.output
