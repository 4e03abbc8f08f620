import re
from datetime import datetime

from obs_pipelines.store.schema import SPAN_COLUMNS, SPAN_KINDS
from obs_pipelines.synth.catalog import COST_REPORTING_ROUTE, ROUTES

from .helpers import grounding

CONTRACT_KEYS = [c for c in SPAN_COLUMNS if c != "ingested_at"]
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_rows_have_exactly_the_contract_columns_with_valid_values(day_traces):
    for trace in day_traces[:500]:
        for r in trace:
            assert list(r) == CONTRACT_KEYS
            assert HEX32.match(r["trace_id"]) and HEX16.match(r["span_id"])
            assert r["parent_span_id"] is None or HEX16.match(r["parent_span_id"])
            assert r["kind"] in SPAN_KINDS and r["status"] in ("ok", "error")
            assert isinstance(r["start_time"], datetime) and r["start_time"].tzinfo is None
            assert isinstance(r["attributes"], dict)
            assert r["service_name"] == "support-assistant"
            assert (r["error_type"] is not None) == (r["status"] == "error")
            assert r["provider"] is None or r["provider"] == r["provider"].lower()


def test_every_parent_exists_in_its_trace_and_there_is_one_root(day_traces):
    for trace in day_traces:
        ids = {r["span_id"] for r in trace}
        assert len(ids) == len(trace)
        assert len({r["trace_id"] for r in trace}) == 1
        assert [r["parent_span_id"] for r in trace].count(None) == 1
        assert trace[0]["parent_span_id"] is None
        assert all(r["parent_span_id"] in ids for r in trace[1:])


def test_children_lie_within_their_parent_and_end_after_start(day_traces):
    for trace in day_traces:
        by_id = {r["span_id"]: r for r in trace}
        for r in trace:
            assert r["end_time"] >= r["start_time"]
            if r["parent_span_id"]:
                p = by_id[r["parent_span_id"]]
                assert p["start_time"] <= r["start_time"] and r["end_time"] <= p["end_time"]


def test_traces_come_in_start_time_order(day_traces):
    starts = [t[0]["start_time"] for t in day_traces]
    assert starts == sorted(starts)


def test_route_user_and_session_are_set_on_every_span_of_a_trace(day_traces):
    for trace in day_traces:
        root = trace[0]
        assert root["route"] in ROUTES and root["user_id"] and root["session_id"]
        assert all((r["route"], r["user_id"], r["session_id"]) == (root["route"], root["user_id"], root["session_id"]) for r in trace)


def test_every_route_model_and_provider_appears(day_traces):
    rows = [r for t in day_traces for r in t]
    assert {r["route"] for r in rows} == set(ROUTES)
    assert {r["provider"] for r in rows if r["kind"] == "llm"} == {"openai", "anthropic", "google"}
    assert {r["model"] for r in rows if r["kind"] == "llm" and r["status"] == "ok"} == {
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-2024-08-06",
        "claude-3-5-sonnet-20241022",
        "gemini-1.5-flash-002",
    }
    assert {r["kind"] for r in rows} >= {"llm", "retrieval", "reranker", "embedding", "tool", "agent", "chain", "guardrail"}


def test_rag_trace_runs_the_documented_steps_in_order(day_traces):
    trace = next(t for t in day_traces if t[0]["route"] == "rag_qa" and all(r["status"] == "ok" for r in t))
    names = [r["name"] for r in trace]
    assert names[:5] + names[6:] == [
        "POST /chat/answer",
        "validate_input",
        "embeddings text-embedding-3-small",
        "retrieve_docs",
        "rerank",
        "postprocess_answer",
        "output_guardrail",
    ]
    assert names[5] in ("chat gpt-4o-mini", "chat gpt-4o")
    docs = trace[3]["attributes"].get("retrieval.documents", [])
    assert 5 <= len(docs) <= 8 and all(set(d) == {"id", "content", "score"} for d in docs)
    assert [d["score"] for d in docs] == sorted((d["score"] for d in docs), reverse=True)


def test_cost_is_reported_only_on_one_routes_llm_calls(day_traces):
    costed = [r for t in day_traces for r in t if r["cost_usd"] is not None]
    assert costed and {r["route"] for r in costed} == {COST_REPORTING_ROUTE}
    assert all(r["kind"] == "llm" and r["cost_usd"] > 0 for r in costed)


def test_input_tokens_include_cached_tokens(day_traces):
    llm = [r for t in day_traces for r in t if r["kind"] == "llm" and r["status"] == "ok"]
    assert all(0 <= r["cached_input_tokens"] <= r["input_tokens"] for r in llm)
    assert 0.2 < sum(r["cached_input_tokens"] > 0 for r in llm) / len(llm) < 0.9


def test_background_errors_are_rare_and_varied(day_traces):
    rows = [r for t in day_traces for r in t]
    roots = [t[0] for t in day_traces]
    assert 0.001 < sum(r["status"] == "error" for r in roots) / len(roots) < 0.03
    types = {r["error_type"] for r in rows if r["status"] == "error"}
    assert {"openai.RateLimitError", "ToolExecutionError", "GuardrailBlocked"} <= types


def test_a_failed_request_marks_its_ancestors_with_the_error(day_traces):
    failed = [t for t in day_traces if t[0]["status"] == "error"]
    assert failed
    for trace in failed:
        by_id = {r["span_id"]: r for r in trace}
        leaf = next(r for r in reversed(trace) if r["status"] == "error")
        assert trace[0]["error_type"] == leaf["error_type"]
        p = leaf
        while p["parent_span_id"]:
            p = by_id[p["parent_span_id"]]
            assert p["status"] == "error" and p["error_type"] == leaf["error_type"]
        assert trace[0]["attributes"]["http.response.status_code"] >= 400


def test_a_tool_error_does_not_fail_the_agent(day_traces):
    traces = [t for t in day_traces if any(r["error_type"] == "ToolExecutionError" for r in t)]
    assert traces
    assert all(t[0]["status"] == "ok" for t in traces if sum(r["status"] == "error" for r in t) == 1)


def test_few_heavy_users_dominate_traffic(day_traces):
    counts: dict[str, int] = {}
    for t in day_traces:
        counts[t[0]["user_id"]] = counts.get(t[0]["user_id"], 0) + 1
    ranked = sorted(counts.values(), reverse=True)
    assert sum(ranked[:50]) > 0.2 * len(day_traces)
    assert len(ranked) > 500


def test_normal_answers_are_grounded_in_the_retrieved_documents(day_traces):
    scores = []
    for t in day_traces:
        if t[0]["route"] == "rag_qa" and t[0]["status"] == "ok":
            docs = next(r for r in t if r["kind"] == "retrieval")["attributes"].get("retrieval.documents", [])
            llm = next(r for r in t if r["kind"] == "llm" and r["status"] == "ok")
            scores.append(grounding(llm["output"], docs))
    assert sum(scores) / len(scores) > 0.6
