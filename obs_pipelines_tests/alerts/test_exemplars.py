"""Exemplars that show the breach: the slowest traces with the slow step, the failing traces of the breached
provider, the costliest calls, the lowest-scoring responses, the looping traces; each one of the alert's
group and window. Small cases on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd

from obs_pipelines.alerts import source
from obs_pipelines.alerts.scope import traces_in_group
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame
from obs_pipelines_tests.alerts import cause_cases as cases
from obs_pipelines_tests.alerts.cause_cases import BREACH, HOUR, Traffic, breach, llm, retrieval, rule, spread

MAX = source.MAX_EXEMPLARS


def spans_of(store, trace_ids) -> pd.DataFrame:
    ids = ", ".join(f"'{t}'" for t in trace_ids)
    frame = fetch_frame(store.engine, f"SELECT * FROM spans WHERE trace_id IN ({ids})", {})
    frame["ms"] = (pd.to_datetime(frame["end_time"]) - pd.to_datetime(frame["start_time"])).dt.total_seconds() * 1000
    return frame


def assert_in_group_and_window(store, ids, group) -> None:
    assert ids and traces_in_group(store.engine, ids, group, BREACH, BREACH + HOUR) == set(ids)


def test_latency_exemplars_are_the_slowest_traces_with_the_slow_step(store):
    t = Traffic()
    # rag's retriever slows to 800 + i ms in the breached hour (100 + i before); generate is slow in a few
    # requests of another route (triage), which must not be shown
    for hour in [*cases.days_before(BREACH, 2), BREACH]:
        for i, at in enumerate(spread(hour, 20)):
            t.request("rag", at, [retrieval(ms=(800 if hour == BREACH else 100) + i), llm(ms=300)])
            t.request("triage", at, [llm(ms=5000 if hour == BREACH else 300)])
    db.insert_spans(store.engine, t.rows)
    latency = rule(kind="anomaly", table="request_rollup_hourly", group_by="route", metric="latency_p95_ms")
    ids = source.exemplar_trace_ids(store.engine, latency, breach({"route": "rag"}))
    assert len(ids) == MAX
    assert_in_group_and_window(store, ids, {"route": "rag"})
    steps = spans_of(store, ids)
    slow = steps[steps["name"] == "search_kb"].set_index("trace_id")["ms"]
    # every exemplar contains the slow step, slowest first: 819, 818, ... ms
    assert [round(slow[t]) for t in ids] == [819, 818, 817, 816, 815]


def test_error_exemplars_are_failing_traces_of_the_breached_provider(store):
    t = Traffic()
    # openai answers 503 to 6 calls of the breached hour; anthropic fails 10 times in that hour too
    for i, at in enumerate(spread(BREACH, 20)):
        failed = {"status": "error", "error_type": "InternalServerError", "error_message": "Error code: 503"} \
            if i < 6 else {}
        t.request("support", at, [llm(**failed)])
        if i < 10:
            t.request("support", at, [llm(model="claude-3-5-haiku", provider="anthropic", status="error",
                                          error_type="RateLimitError", error_message="Error code: 429")])
    db.insert_spans(store.engine, t.rows)
    errors = rule(kind="threshold", table="error_rollup_hourly", group_by="provider", metric="error_rate",
                  threshold=0.25)
    ids = source.exemplar_trace_ids(store.engine, errors, breach({"provider": "openai"}))
    assert len(ids) == MAX
    failed = spans_of(store, ids)
    failed = failed[failed["status"] == "error"]
    # each exemplar failed on an openai call with the outage's 503
    assert set(failed["trace_id"]) == set(ids) and set(failed["provider"]) == {"openai"}
    assert set(failed["error_message"]) == {"Error code: 503"}


def test_cost_exemplars_are_the_costliest_calls_of_the_route(store):
    cases.cost_case(store)  # support: half its calls of the hour are prompt v2 at $0.003; route search: $0.01 calls
    cost = rule(kind="anomaly", table="usage_rollup_hourly", group_by="route", metric="cost_usd / call_count")
    ids = source.exemplar_trace_ids(store.engine, cost, breach({"route": "support"}))
    assert len(ids) == MAX
    assert_in_group_and_window(store, ids, {"route": "support"})
    calls = spans_of(store, ids)
    calls = calls[calls["kind"] == "llm"]
    assert set(calls["prompt_version"]) == {"v2"} and set(calls["cost_usd"].astype(float)) == {0.003}


def test_quality_exemplars_are_the_lowest_scoring_responses(store):
    t, rows = Traffic(), []
    # scores 0.1, 0.2, ... 1.0 in the breached hour, on route kb; route other scores 0.0 (never shown)
    for i, at in enumerate(spread(BREACH, 10)):
        rows.append((BREACH, t.request("kb", at, [llm()]), "kb", "gpt-4o-mini", "v1", round(0.1 * (i + 1), 1)))
        rows.append((BREACH, t.request("other", at, [llm()]), "other", "gpt-4o-mini", "v1", 0.0))
    for hour in cases.days_before(BREACH, 2):
        rows += [(hour, f"{hour:%d%H}{i:04d}", "kb", "gpt-4o-mini", "v1", 0.9) for i in range(10)]
    db.insert_spans(store.engine, t.rows)
    cases.write_scores(store, rows)
    quality = rule(kind="eval_score", scorer="groundedness", group_by=["route"], threshold=0.6)
    ids = source.exemplar_trace_ids(store.engine, quality, breach({"route": "kb"}))
    score_of = {r[1]: r[5] for r in rows}
    assert [score_of[t] for t in ids] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert_in_group_and_window(store, ids, {"route": "kb"})


def test_agent_exemplars_are_the_looping_traces(store):
    t, rows = Traffic(), []
    lookup = {"repeated_call": {"tool": "lookup_order", "args_hash": "ab12", "count": 6}}
    # 10 triage requests of the breached hour, the odd ones loop on lookup_order (paths of 5 + i tool calls)
    for i, at in enumerate(spread(BREACH, 10)):
        trace = t.request("triage", at, [{"name": "lookup_order", "kind": "tool"}])
        rows.append((BREACH, trace, "triage", 5 + i, lookup if i % 2 else None))
    db.insert_spans(store.engine, t.rows)
    cases.write_paths(store, rows)
    loops = rule(kind="threshold", table="agent_paths", group_by=["route"], metric="loop_detected", aggregate="mean",
                 threshold=0.2)
    ids = source.exemplar_trace_ids(store.engine, loops, breach({"route": "triage"}))
    looping = {r[1]: r[3] for r in rows if r[4] is not None}
    # only looping traces, the longest paths first
    assert [looping[t] for t in ids] == [14, 12, 10, 8, 6]


def test_a_candidate_outside_the_group_or_the_window_is_never_shown(store):
    cases.cost_case(store)
    cost = rule(kind="anomaly", table="usage_rollup_hourly", group_by="route", metric="cost_usd / call_count")
    other_route = fetch_frame(store.engine, "SELECT trace_id FROM spans WHERE route = 'search' LIMIT 1", {})
    earlier = fetch_frame(store.engine, "SELECT trace_id FROM spans WHERE route = 'support' AND start_time < :t "
                                        "LIMIT 1", {"t": BREACH})
    # the rollup's example trace is only a candidate: one of another route and one of an earlier hour are dropped
    rollup = pd.DataFrame({"example_trace_id": [other_route["trace_id"][0], earlier["trace_id"][0]]})
    ids = source.exemplar_trace_ids(store.engine, cost, breach({"route": "support", "x": 1}), rollup_rows=rollup)
    assert ids and not {other_route["trace_id"][0], earlier["trace_id"][0]} & set(ids)
    assert_in_group_and_window(store, ids, {"route": "support"})
