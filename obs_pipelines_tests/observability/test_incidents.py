"""Generated traffic with one injected incident in the middle hour (obs_pipelines.synth), a clean day before
it as the baseline: each table must point at the incident in its hour only. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd

from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.hourly import hourly_tables
from obs_pipelines.pricing import load_prices
from obs_pipelines_tests.observability.conftest import BASELINE_DAYS, INCIDENT_HOUR, hours, load_traffic

HOUR = timedelta(hours=1)


def tables_by_hour(store, **observability) -> dict:
    settings = ObservabilitySettings(baseline_days=BASELINE_DAYS, **observability)
    prices = load_prices()
    return {h: hourly_tables(store.engine, h, h + HOUR, settings, prices)[0] for h in hours()}


def test_latency_spike_ranks_the_injected_step_first_for_its_route_in_its_hours_only(store):
    # latency_spike's default target is the retrieval step: rag_qa's retrieve_docs, 5-10x slower
    load_traffic(store, "latency_spike")
    for hour, frames in tables_by_hour(store).items():
        attribution = frames["latency_attribution_hourly"]
        top = attribution[attribution["rank"] == 1].iloc[0]
        step = attribution[(attribution["route"] == "rag_qa") & (attribution["span_name"] == "retrieve_docs")].iloc[0]
        if hour == INCIDENT_HOUR:
            assert (top["route"], top["span_name"], top["span_kind"]) == ("rag_qa", "retrieve_docs", "retrieval")
            assert top["delta_p95_ms"] > 500 and top["baseline_p95_ms"] > 0
            assert 0 < top["share_of_route_change"]
        else:
            assert step["rank"] != 1 and abs(step["delta_p95_ms"]) < 150, hour


def test_cost_overrun_ranks_the_injected_route_and_prompt_version_first_as_unit_cost(store):
    load_traffic(store, "cost_overrun")  # rag_qa prompts grow 3-5x
    for hour, frames in tables_by_hour(store).items():
        cost = frames["cost_attribution_hourly"]
        cost = cost[cost["route"] == "(all)"]  # the hour's rows over every route
        top = cost[cost["rank"] == 1].set_index("dimension")
        if hour == INCIDENT_HOUR:
            assert top.loc["route", "dimension_value"] == "rag_qa"
            assert top.loc["route", "driver"] == "unit_cost"
            assert top.loc["prompt_version", "dimension_value"].startswith("rag_answer@")
            assert top.loc["prompt_version", "driver"] == "unit_cost"
            assert top.loc["route", "share_of_change"] > 0.5
        else:
            rag = cost[(cost["dimension"] == "route") & (cost["dimension_value"] == "rag_qa")].iloc[0]
            assert abs(rag["delta_cost_usd"]) < 0.5 * rag["baseline_cost_usd"], hour
        rows = cost[cost["dimension"] == "route"]
        assert ((rows["volume_effect_usd"] + rows["unit_cost_effect_usd"] - rows["delta_cost_usd"]).abs() < 1e-9).all()


def _errors_by_class(frames) -> pd.Series:
    causes = frames["error_causes_hourly"]
    return causes.groupby("error_class")["error_count"].sum()


def test_provider_outage_is_an_outage_class_and_never_rate_limit(store):
    load_traffic(store, "provider_outage")  # openai 5xx / 503 and timeouts
    by_hour = tables_by_hour(store)
    causes = by_hour[INCIDENT_HOUR]["error_causes_hourly"]
    top = causes.iloc[0]
    assert (top["error_class"], top["provider"]) == ("provider_5xx", "openai")
    openai = causes[causes["provider"] == "openai"].groupby("error_class")["error_count"].sum()
    assert openai["provider_5xx"] > 10 * openai.get("rate_limit", 0)
    assert len(json.loads(top["example_trace_ids"])) == 3 and "503" in top["message"]
    for hour in hours():
        if hour != INCIDENT_HOUR:
            assert _errors_by_class(by_hour[hour]).get("provider_5xx", 0) < 0.1 * openai["provider_5xx"]


def test_rate_limit_storm_is_rate_limit(store):
    load_traffic(store, "rate_limit_storm")
    classes = _errors_by_class(tables_by_hour(store)[INCIDENT_HOUR])
    assert classes.idxmax() == "rate_limit"
    assert classes["rate_limit"] > 10 * classes.get("provider_5xx", 0)


def test_an_error_rule_from_the_settings_is_tried_before_the_built_in_classes(store):
    load_traffic(store, "provider_outage")
    rules = [{"error_class": "openai_overloaded", "pattern": r"server is overloaded"}]
    classes = _errors_by_class(tables_by_hour(store, error_rules=rules)[INCIDENT_HOUR])
    assert classes.idxmax() == "openai_overloaded"


def test_retrieval_miss_raises_the_empty_rate_in_its_hours_only(store):
    load_traffic(store, "retrieval_miss")
    for hour, frames in tables_by_hour(store).items():
        rollup = frames["retrieval_rollup_hourly"].set_index("route")
        log = frames["retrieval_log"]
        if hour == INCIDENT_HOUR:
            assert rollup.loc["rag_qa", "empty_rate"] > 0.25
            assert rollup.loc["rag_qa", "low_score_rate"] > 0.25  # the rest: only distractors, low scores
            # an empty vector store is fast and in status ok: only this table shows it
            assert (log.loc[log["no_documents"], "status"] == "ok").all()
        else:
            assert rollup.loc["rag_qa", "empty_rate"] == 0 and rollup.loc["rag_qa", "low_score_rate"] == 0
            assert rollup.loc["rag_qa", "mean_top_score"] > 0.8
        assert rollup.loc["(all)", "retrievals"] == len(log) > 0
        full = log[~log["no_documents"]].iloc[0]
        assert len(json.loads(full["document_ids"])) == len(json.loads(full["scores"])) == full["document_count"]


def test_tool_loop_flags_exactly_the_looping_traces_and_no_clean_agent_trace(store):
    rows = load_traffic(store, "tool_loop")
    # the generator tags every tool call of a looping agent; a loop cut short by a failed model call after one
    # or two calls never repeated (the default threshold is 3 same calls): not a loop yet
    calls = pd.Series([r["trace_id"] for r in rows if r["kind"] == "tool"
                       and "tool_loop" in (r["attributes"].get("synth.incident") or "")]).value_counts()
    looping = set(calls[calls >= 3].index)
    assert looping and len(calls[calls < 3]) < len(looping)
    flagged, clean = set(), set()
    for frames in tables_by_hour(store).values():
        paths = frames["agent_paths"]
        flagged |= set(paths.loc[paths["loop_detected"], "trace_id"])
        clean |= set(paths.loc[~paths["loop_detected"], "trace_id"])
        evidence = paths.loc[paths["loop_detected"], "loop_evidence"].map(json.loads)
        assert all(e["repeated_call"]["count"] >= 3 for e in evidence)
    assert flagged == looping
    assert clean and not clean & looping


def test_cost_overrun_within_its_route_splits_the_route_change_among_the_routes_own_values(store):
    load_traffic(store, "cost_overrun")  # rag_qa prompts grow 3-5x
    cost = tables_by_hour(store)[INCIDENT_HOUR]["cost_attribution_hourly"]
    rag = cost[cost["route"] == "rag_qa"]
    # rag_qa's rows name only rag_qa's calls: its prompt versions' deltas add up to the route's own change
    assert set(rag["dimension"]) == {"model", "prompt_version", "user_segment"}
    whole = cost[(cost["route"] == "(all)") & (cost["dimension"] == "route") & (cost["dimension_value"] == "rag_qa")]
    prompts = rag[rag["dimension"] == "prompt_version"]
    assert abs(prompts["delta_cost_usd"].sum() - whole["delta_cost_usd"].iloc[0]) < 1e-9
    top = prompts[prompts["rank"] == 1].iloc[0]
    assert top["dimension_value"].startswith("rag_answer@") and top["driver"] == "unit_cost"
