"""The cause and the exemplars on an app the project never generated (obs_pipelines_tests/second_app: its own
routes, providers, vocabulary, tools and retrievers, ingested through the real ingest), at a tenth and at ten
times the project generator's magnitudes: each failure mode's alert names the failure's root cause first and
shows traces of its group and window. Clean hours around every incident; no number here comes from the app."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from obs_pipelines.alerts import source
from obs_pipelines.alerts.scope import traces_in_group
from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.hourly import hourly_tables
from obs_pipelines.observability.tables import agent_paths
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.pricing import load_prices
from obs_pipelines.store import db
from obs_pipelines_tests.alerts.cause_cases import breach, rule
from obs_pipelines_tests.second_app import HOUR, Profile, SupportBot, ingest_hours

START = datetime(2026, 5, 4, 0, 0)
HOURS = 19
# hour offset -> failure mode (a clean hour between two incidents; 8 clean hours before the first)
INCIDENTS = {8: "latency_spike", 10: "provider_outage", 12: "rate_limits", 14: "cost_overrun", 16: "tool_loop",
             18: "wrong_retrieval"}
# failure mode -> (the rule it breaks, the alert's group, the root cause the alert must name first)
CASES = {
    "latency_spike": (rule(kind="anomaly", table="request_rollup_hourly", group_by="route", metric="latency_p95_ms"),
                      {"route": "kb_answer"}, ("span", "article_search")),
    "provider_outage": (rule(kind="anomaly", table="error_rollup_hourly", group_by="provider", metric="error_rate"),
                        {"provider": "cohere"}, ("error_class", "provider_5xx")),
    "rate_limits": (rule(kind="anomaly", table="error_rollup_hourly", group_by="error_class", metric="error_rate"),
                    {"error_class": "rate_limit"}, ("provider", "mistral_ai")),
    "cost_overrun": (rule(kind="anomaly", table="usage_rollup_hourly", group_by="route",
                          metric="cost_usd / call_count"), {"route": "reply_draft"},
                     ("prompt_version", "reply@reply-v4")),
    "tool_loop": (rule(kind="anomaly", table="agent_paths", group_by=["route"], aggregate="mean",
                       metric="loop_detected"), {"route": "/triage"}, ("tool", "lookup_order")),
    "wrong_retrieval": (rule(kind="anomaly", table="retrieval_log", group_by=["route"], aggregate="mean",
                             metric="top_score", direction="down"), {"route": "kb_answer"},
                        ("span_name", "article_search")),
}


@pytest.fixture(scope="module", params=[0.1, 10.0], ids=["scale_0.1", "scale_10"])
def app(request, tmp_path_factory):
    """The support bot's hours ingested into a SQLite store, with the observability phase's agent paths of
    every hour written (the agent family reads them)."""
    directory = tmp_path_factory.mktemp(f"second_app_{request.param}")
    store = TraceStore(db_url=f"sqlite:///{directory / 'traces.db'}")
    store.create_tables()
    bot = SupportBot(Profile(requests_per_hour=50, scale=request.param, seed=11))
    incidents = {START + h * HOUR: mode for h, mode in INCIDENTS.items()}
    summary = ingest_hours(store.engine, directory, bot, START, HOURS, incidents)
    assert summary.rejected == 0
    settings, prices = ObservabilitySettings(), load_prices()
    for h in range(HOURS):
        start = START + h * HOUR
        tables, _ = hourly_tables(store.engine, start, start + HOUR, settings, prices)
        db.replace_window(store.engine, agent_paths, start, start + HOUR, tables["agent_paths"])
    yield store
    store.engine.dispose()


@pytest.mark.parametrize("offset", sorted(INCIDENTS), ids=[INCIDENTS[h] for h in sorted(INCIDENTS)])
def test_each_failure_mode_names_its_root_cause_first_with_exemplars_of_its_group(app, offset):
    mode = INCIDENTS[offset]
    breached_rule, group, cause = CASES[mode]
    result = breach(group, START + offset * HOUR)
    found = source.attribution(app.engine, breached_rule, result)
    assert found, mode
    assert (found[0]["dimension"], found[0]["value"]) == cause, found
    ids = source.exemplar_trace_ids(app.engine, breached_rule, result)
    assert ids and traces_in_group(app.engine, ids, group if "error_class" not in group else {},
                                   result.window_start, result.window_end) == set(ids)


def test_the_tool_loop_alert_of_the_looping_tool_names_its_repeated_path_and_shows_its_looping_traces(app):
    # the route x tool loop rule (explode tool_loops) for /triage x lookup_order in the tool-loop hour: the cause
    # names the repeated path (the tool is the group), each exemplar is a request whose loop repeats lookup_order
    tool_rule = rule(kind="anomaly", table="agent_paths", explode={"tool": "tool_loops"}, group_by=["route", "tool"],
                     aggregate="mean", metric="tool_loops")
    group = {"route": "/triage", "tool": "lookup_order"}
    result = breach(group, START + 16 * HOUR)
    found = source.attribution(app.engine, tool_rule, result)
    assert (found[0]["dimension"], found[0]["value"], found[0]["tool"]) == (
        "loop", "lookup_order (same arguments) repeated", "lookup_order"), found
    ids = source.exemplar_trace_ids(app.engine, tool_rule, result)
    paths = source.observability_rows(app.engine, "agent_paths", result.window_start, result.window_end)
    loops = dict(zip(paths["trace_id"], paths["tool_loops"]))
    assert ids and all(json.loads(loops[t])["lookup_order"] == 1 for t in ids)
