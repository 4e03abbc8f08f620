"""The cause on every alert: contributors ranked by their share of the group's change against its baseline,
scoped to the group, for every rule family. Small cases whose answer can be checked by hand (the rationale
next to each), on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest

from obs_pipelines.alerts import contributors, source
from obs_pipelines.alerts.payload import summary_line
from obs_pipelines.store import db
from obs_pipelines_tests.alerts.cause_cases import (
    BREACH,
    Traffic,
    breach,
    cost_case,
    days_before,
    llm,
    retrieval,
    rule,
    spread,
    write_paths,
    write_scores,
)

COST_RULE = rule(kind="anomaly", table="usage_rollup_hourly", group_by="route", metric="cost_usd / call_count")
ERROR_RULE = rule(kind="threshold", table="error_rollup_hourly", group_by="provider", metric="error_rate",
                  threshold=0.25)
LATENCY_RULE = rule(kind="anomaly", table="request_rollup_hourly", group_by="route", metric="latency_p95_ms")
STEP_RULE = rule(kind="threshold", table="step_rollup_hourly", group_by="span_kind", metric="latency_p95_ms",
                 threshold=1.0)


def top(found: list[dict]) -> tuple[str, str]:
    return found[0]["dimension"], found[0]["value"]


# ---- the arithmetic, without a store --------------------------------------------------------------------
def _values(rows):
    return pd.DataFrame(rows, columns=contributors.COLUMNS)


def test_a_value_that_replaced_another_carries_the_unit_change_and_the_one_replaced_none():
    # baseline: 10 calls of v1 at $1; now 5 of v1 at $1 and 5 of v2 at $3: +$10, all from v2's dearer calls
    # (5 x ($3 - $1)); the one model carries all of it only because it carries every call: it ranks after v2
    now = _values([("prompt_version", "v1", 5.0, 5.0), ("prompt_version", "v2", 15.0, 5.0), ("model", "m", 20.0, 10.0)])
    base = _values([("prompt_version", "v1", 10.0, 10.0), ("model", "m", 10.0, 10.0)])
    found = contributors.additive(now, base, (20.0, 10.0), (10.0, 10.0))
    assert top(found) == ("prompt_version", "v2") and found[0]["share"] == pytest.approx(1.0)
    assert found[0]["driver"] == "unit" and found[0]["baseline_share"] == 0
    assert [f["value"] for f in found] == ["v2", "m"]  # v1 did not move the group: not a contributor


def test_more_calls_from_one_value_is_a_volume_change_named_by_that_value():
    # 10 users x 1 call at $1 in the baseline; now user u0 makes 10 more: +$10, all volume, all from u0
    base = _values([("user", f"u{i}", 1.0, 1.0) for i in range(10)])
    now = _values([("user", "u0", 11.0, 11.0)] + [("user", f"u{i}", 1.0, 1.0) for i in range(1, 10)])
    found = contributors.additive(now, base, (20.0, 20.0), (10.0, 10.0))
    assert top(found) == ("user", "u0") and found[0]["driver"] == "volume"
    assert found[0]["share"] == pytest.approx(1.0)


def test_a_uniform_change_ranks_no_value_above_its_part_of_the_baseline():
    # every value doubled its cost per call: each carries its baseline share of the change (excess 0)
    base = _values([("model", "a", 3.0, 3.0), ("model", "b", 1.0, 1.0)])
    now = _values([("model", "a", 6.0, 3.0), ("model", "b", 2.0, 1.0)])
    found = contributors.additive(now, base, (8.0, 4.0), (4.0, 4.0))
    assert {f["value"]: f["share"] for f in found} == {"a": pytest.approx(0.75), "b": pytest.approx(0.25)}
    assert all(f["share"] == pytest.approx(f["baseline_share"]) for f in found)


def test_a_step_that_slowed_carries_the_shift_of_the_percentile():
    # the group's p95 went 1100 -> 1800 ms; retrieve 100 -> 800 (+700 = all of it), generate unchanged
    now = pd.DataFrame({"dimension": "span", "value": ["retrieve", "generate"], "stat": [800.0, 1000.0]})
    base = pd.DataFrame({"dimension": "span", "value": ["retrieve", "generate"], "stat": [100.0, 1000.0]})
    found = contributors.shifts(now, base, 1800.0, 1100.0)
    assert [(f["value"], f["share"]) for f in found] == [("retrieve", 1.0)]


# ---- cost ------------------------------------------------------------------------------------------------
def test_a_route_whose_new_prompt_version_triples_the_tokens_names_that_version_first(store):
    cost_case(store)
    found = source.attribution(store.engine, COST_RULE, breach({"route": "support"}))
    # v2 brought the whole change: 5 calls x ($0.003 - $0.001 baseline per call) = $0.01 = the route's change
    assert top(found) == ("prompt_version", "v2")
    assert found[0]["share"] == pytest.approx(1.0, abs=0.01) and found[0]["driver"] == "unit"
    assert "v9" not in {f["value"] for f in found}  # scoped to the route
    line = summary_line("case_rule", "firing", "cost_usd / call_count", 0.002, 0.0015, {"route": "support"}, BREACH,
                        found)
    assert "top contributor prompt_version=v2 (100% of the change" in line


def test_more_calls_from_one_user_is_named_as_a_volume_change(store):
    t = Traffic()
    # 10 users, one $0.001 call each an hour; in the breached hour user bot-7 adds 20 calls at the same price
    for hour in [*days_before(BREACH, 3), BREACH]:
        for i, at in enumerate(spread(hour, 10)):
            t.request("support", at, [llm(cost_usd=0.001)], user=f"user-{i}")
    for at in spread(BREACH, 20):
        t.request("support", at, [llm(cost_usd=0.001)], user="bot-7")
    db.insert_spans(store.engine, t.rows)
    total_rule = rule(kind="threshold", table="usage_rollup_hourly", group_by="route", metric="cost_usd",
                      threshold=0.015)
    found = source.attribution(store.engine, total_rule, breach({"route": "support"}))
    assert top(found) == ("user", "bot-7") and found[0]["driver"] == "volume"
    assert found[0]["share"] == pytest.approx(1.0, abs=0.01)


# ---- errors ----------------------------------------------------------------------------------------------
def test_a_provider_outage_names_the_outage_class_with_its_share_of_the_new_errors(store):
    t = Traffic()
    # 20 openai calls an hour, 1 timeout each baseline hour; in the breached hour 8 calls answer 503 and the
    # one timeout stays: the change is +8 errors, all of them provider_5xx (the timeout did not move)
    for hour in [*days_before(BREACH, 3), BREACH]:
        for i, at in enumerate(spread(hour, 20)):
            failed = {}
            if i == 0:
                failed = {"status": "error", "error_type": "APITimeoutError", "error_message": "Request timed out."}
            elif hour == BREACH and i <= 8:
                failed = {"status": "error", "error_type": "InternalServerError",
                          "error_message": "Error code: 503 - Service Unavailable"}
            t.request("support", at, [llm(**failed)], status=failed.get("status", "ok"))
        for at in spread(hour, 5):  # anthropic fails every hour the same way: not openai's cause
            t.request("support", at, [llm(model="claude-3-5-haiku", provider="anthropic", status="error",
                                          error_type="RateLimitError", error_message="Error code: 429")])
    db.insert_spans(store.engine, t.rows)
    found = source.attribution(store.engine, ERROR_RULE, breach({"provider": "openai"}))
    assert top(found) == ("error_class", "provider_5xx") and found[0]["share"] == pytest.approx(1.0)
    assert "rate_limit" not in {f["value"] for f in found}


# ---- latency ---------------------------------------------------------------------------------------------
def test_a_route_whose_retriever_slowed_names_that_step(store):
    t = Traffic()
    # rag: retrieve (100 ms) then generate (1000 ms); in the breached hour retrieve takes 800 ms: the route's
    # p95 grows by ~700 ms, all of it retrieve's
    for hour in [*days_before(BREACH, 3), BREACH]:
        for i, at in enumerate(spread(hour, 20)):
            slow = hour == BREACH
            t.request("rag", at, [retrieval(ms=(800 if slow else 100) + i), llm(ms=1000 + i)])
    db.insert_spans(store.engine, t.rows)
    found = source.attribution(store.engine, LATENCY_RULE, breach({"route": "rag"}))
    assert top(found) == ("span", "search_kb") and found[0]["share"] == pytest.approx(1.0, abs=0.02)
    assert found[0]["now"] - found[0]["baseline"] == pytest.approx(700)  # 818 vs 118 ms (p95 of 100 + i)


def test_a_step_kind_alert_names_the_retriever_and_route_that_slowed(store):
    t = Traffic()
    # two retrievers: search_kb (route rag) slows 100 -> 900 ms, search_tickets (route triage) stays at 100 ms
    for hour in [*days_before(BREACH, 2), BREACH]:
        for i, at in enumerate(spread(hour, 20)):
            t.request("rag", at, [retrieval(ms=(900 if hour == BREACH else 100) + i)])
            t.request("triage", at, [retrieval("search_tickets", ms=100 + i)])
    db.insert_spans(store.engine, t.rows)
    found = source.attribution(store.engine, STEP_RULE, breach({"span_kind": "retrieval"}))
    assert {top(found), tuple(found[1].values())[:2]} == {("span_name", "search_kb"), ("route", "rag")}


# ---- retrieval -------------------------------------------------------------------------------------------
def test_a_retrieval_quality_alert_names_the_retriever_and_its_score_shift(store):
    t = Traffic()
    # route kb has two retrievers; search_kb's top score falls from 0.85 to 0.53, search_faq stays at 0.8
    for hour in [*days_before(BREACH, 3), BREACH]:
        for at in spread(hour, 10):
            top_score = 0.53 if hour == BREACH else 0.85
            t.request("kb", at, [retrieval(scores=[top_score, 0.2]), retrieval("search_faq", scores=[0.8])])
    db.insert_spans(store.engine, t.rows)
    retrieval_rule = rule(kind="threshold", table="retrieval_rollup_hourly", group_by=["route"],
                          metric="mean_top_score", comparison="<", threshold=0.7)
    found = source.attribution(store.engine, retrieval_rule, breach({"route": "kb"}))
    assert top(found) == ("span_name", "search_kb") and found[0]["share"] == pytest.approx(1.0)
    assert (found[0]["top_score_baseline"], found[0]["top_score_now"]) == (0.85, 0.53)


# ---- quality ---------------------------------------------------------------------------------------------
GROUNDEDNESS = rule(kind="eval_score", scorer="groundedness", group_by=["route"], threshold=0.6)


def test_a_quality_drop_names_the_new_prompt_version_scoring_low_in_the_same_hour(store):
    # baseline: v7 answers score 0.9; in the breached hour half the answers come from v8 at 0.3 (v7 still 0.9):
    # the mean falls 0.9 -> 0.6, all of it v8's (v7 did not move); the model is the same for both
    rows = [(h, f"{h:%d%H}{i:04d}", "kb", "command-r", "v7", 0.9) for h in days_before(BREACH, 3) for i in range(10)]
    rows += [(BREACH, f"now{i:04d}", "kb", "command-r", "v8" if i % 2 else "v7", 0.3 if i % 2 else 0.9)
             for i in range(10)]
    rows += [(h, f"o{h:%d%H}{i:03d}", "other", "command-r", "v8", 0.95) for h in [BREACH] for i in range(10)]
    write_scores(store, rows)
    found = source.attribution(store.engine, GROUNDEDNESS, breach({"route": "kb"}))
    assert top(found) == ("prompt_version", "v8") and found[0]["share"] == pytest.approx(1.0)
    assert (found[0]["now"], found[0]["baseline"]) == (0.3, None)  # v8 is new: no baseline figure


def test_a_quality_drop_from_empty_retrievals_names_the_retrieval(store):
    t = Traffic()
    rows = []
    # answers whose request retrieved nothing score 0.2, the others 0.9; in the breached hour 6 of 10 requests
    # retrieve nothing (none did before): the drop is the empty retrievals'
    for hour in [*days_before(BREACH, 3), BREACH]:
        for i, at in enumerate(spread(hour, 10)):
            empty = hour == BREACH and i < 6
            trace = t.request("kb", at, [retrieval(scores=[] if empty else [0.8]), llm()])
            rows.append((hour, trace, "kb", "gpt-4o-mini", "v1", 0.2 if empty else 0.9))
    db.insert_spans(store.engine, t.rows)
    write_scores(store, rows)
    found = source.attribution(store.engine, GROUNDEDNESS, breach({"route": "kb"}))
    assert top(found) == ("retrieval", "no documents") and found[0]["share"] == pytest.approx(1.0)


# ---- agents ----------------------------------------------------------------------------------------------
def test_an_agent_loop_alert_names_the_tool_and_the_repeated_path(store):
    lookup = {"repeated_call": {"tool": "lookup_order", "args_hash": "ab12", "count": 6}}
    cycle = {"repeated_cycle": {"cycle": ["search", "read"], "repeats": 3, "start_step": 1}}
    # baseline: 1 of 10 paths loops (a search > read cycle); now 6 of 10 loop on lookup_order with the same
    # arguments and the one cycle stays: the +5 loops are all lookup_order's
    rows = [(h, f"{h:%d%H}{i:02d}", "triage", 3, cycle if i == 0 else None) for h in days_before(BREACH, 3)
            for i in range(10)]
    rows += [(BREACH, f"now{i:02d}", "triage", 8 if 0 < i <= 6 else 3, lookup if 0 < i <= 6 else (cycle if i == 0
                                                                                                else None))
             for i in range(10)]
    write_paths(store, rows)
    loop_rule = rule(kind="threshold", table="agent_paths", group_by=["route"], metric="loop_detected",
                     aggregate="mean", threshold=0.2)
    found = source.attribution(store.engine, loop_rule, breach({"route": "triage"}))
    assert {(f["dimension"], f["value"]) for f in found[:2]} == {
        ("tool", "lookup_order"), ("loop", "lookup_order (same arguments) repeated")}
    assert found[0]["share"] == pytest.approx(1.0)


# ---- burn rate -------------------------------------------------------------------------------------------
def test_a_burn_rate_alert_takes_the_cause_of_its_slos_metric_over_the_slos_group(store):
    from obs_pipelines.monitoring.tables import slo_status_hourly

    t = Traffic()
    # the SLO is route support's error rate: its calls answer 503 in the breached hour (none before), while
    # route search fails with timeouts every hour (not the SLO's route: never its cause)
    for hour in [*days_before(BREACH, 2), BREACH]:
        for i, at in enumerate(spread(hour, 10)):
            outage = {"status": "error", "error_type": "InternalServerError", "error_message": "Error code: 503"}
            t.request("support", at, [llm(**(outage if hour == BREACH and i < 6 else {}))])
            t.request("search", at, [llm(status="error", error_type="APITimeoutError",
                                         error_message="Request timed out.")])
    db.insert_spans(store.engine, t.rows)
    with store.engine.begin() as conn:
        conn.execute(slo_status_hourly.insert(), [{
            "window_start": BREACH, "window_end": BREACH + pd.Timedelta(hours=1), "slo_name": "support_errors",
            "metric": "error_rate", "dimension": "route", "dimension_value": "support", "objective": "< 0.05",
            "target": 0.99, "value": 0.6, "met": False}])
    burn = rule(kind="burn_rate", slo="support_errors")
    found = source.attribution(store.engine, burn, breach({"slo": "support_errors"}))
    assert top(found) == ("error_class", "provider_5xx") and found[0]["share"] == pytest.approx(1.0)
    assert "timeout" not in {f["value"] for f in found}
