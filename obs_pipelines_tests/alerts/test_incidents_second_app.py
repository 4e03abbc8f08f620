"""The shipped rule pack on an app the project has never seen (obs_pipelines_tests/second_app: a support bot
with its own routes, providers, vocabulary and attribute styles), as a new user would run it: the example
settings with only the store, the phases and the webhook set; OTLP files through ingest; monitoring,
observability and online_evals over every hour; the rules; the alert sensor's processing delivering to a real
webhook on 127.0.0.1.

Each variant: 66 clean hours, then each failure mode of the rollout guide for one hour, two clean hours apart.
Variants, all in every run: ~50 requests an hour at 0.1x the project generator's magnitudes (SQLite), ~50 an
hour at 10x on PostgreSQL (~3 min on a shared 2-core machine, load average 6-17, 2026-12-07) and ~1,000 an hour
at 10x on SQLite (84,000 requests: ~7.5 min). One store per variant (module-scoped): the runs are the expensive
part."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from obs_pipelines.alerts.defs import RULES_JOB, process_rule_results
from obs_pipelines.definitions import build_definitions
from obs_pipelines.online_evals.defs import DAILY_JOB
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines_tests.alerts.conftest import Webhook
from obs_pipelines_tests.pg_schemas import private_schema
from obs_pipelines_tests.second_app import FAILURE_MODES, Profile, SupportBot, ingest_hours

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
START = datetime(2026, 11, 2, 0, 0)
CLEAN_HOURS = 66  # the first 6 build history (not judged): 60 judged clean hours
GAP = 3  # a failure mode's hour, then two clean hours
MODES = list(FAILURE_MODES)
INCIDENT_AT = {mode: START + timedelta(hours=CLEAN_HOURS + GAP * i) for i, mode in enumerate(MODES)}
HOURS = CLEAN_HOURS + GAP * len(MODES)
PHASE_JOBS = ("monitoring_hourly_job", "observability_hourly_job", "online_evals_hourly_job")

# failure mode -> the rule that must fire in its hour and (part of) the group it must fire for: where the
# cause lives (second_app.FAILURE_MODES says what each mode breaks)
EXPECTED = {
    "latency_spike": ("step_p50_latency", {"span_kind": "retrieval", "span_name": "article_search"}),
    "provider_outage": ("provider_error_rate", {"provider": "cohere"}),
    "rate_limits": ("error_class_rate", {"error_class": "rate_limit"}),
    "cost_overrun": ("route_cost_per_call", {"route": "reply_draft"}),
    "tool_loop": ("agent_loop_share", {"route": "/triage"}),
    "wrong_retrieval": ("retrieval_top_score", {"route": "kb_answer", "span_name": "article_search"}),
    "prompt_regression": ("eval_score_by_route", {"route": "kb_answer"}),
    "hallucination": ("eval_score_by_route", {"route": "kb_answer", "scorer": "groundedness"}),
}
# failure mode -> the root cause its alert must name first (dimension, value): what the mode changed. The
# hallucination changes no dimension (same prompt, model and retrieval): its alert names no single cause here.
CAUSES = {
    "latency_spike": ("route", "kb_answer"),  # the group is the slow step itself: the cause says where it serves
    "provider_outage": ("error_class", "provider_5xx"),
    "rate_limits": ("provider", "mistral_ai"),
    "cost_overrun": ("prompt_version", "reply@reply-v4"),
    "tool_loop": ("tool", "lookup_order"),
    "wrong_retrieval": ("span_name", "article_search"),
    "prompt_regression": ("prompt_version", "kb-answer-v8"),
}
VARIANTS = {
    "50_per_hour_0.1x_sqlite": (Profile(requests_per_hour=50, scale=0.1, seed=11), "sqlite"),
    "1000_per_hour_10x_sqlite": (Profile(requests_per_hour=1000, scale=10.0, seed=12), "sqlite"),
    "50_per_hour_10x_postgresql": (Profile(requests_per_hour=50, scale=10.0, seed=13), "postgresql"),
}


def key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


def new_user_settings(url: str) -> Settings:
    """config/example.yaml as shipped, with what a new user sets: the store, the first partition, the phases."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(db_url=url, partitions_start="2026-11-01-00:00",
                phases=["monitoring", "observability", "online_evals"])
    return Settings(**data)


def _run(url: str, directory: Path, profile: Profile) -> dict:
    store = TraceStore(db_url=url)
    store.create_tables()
    summary = ingest_hours(store.engine, directory, SupportBot(profile), START, HOURS,
                           {at: mode for mode, at in INCIDENT_AT.items()})
    assert summary.rejected == 0 and summary.stored == summary.read
    settings = new_user_settings(url)
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    tags = {"dagster/asset_partition_range_start": key(START),
            "dagster/asset_partition_range_end": key(START + timedelta(hours=HOURS - 1))}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    # `run` of each phase: the hourly jobs, then online_evals' daily one (score rollups, clusters of failing inputs)
    days = {"dagster/asset_partition_range_start": f"{START:%Y-%m-%d}",
            "dagster/asset_partition_range_end": f"{START + timedelta(hours=HOURS - 1):%Y-%m-%d}"}
    for job, job_tags in ((PHASE_JOBS[0], tags), (PHASE_JOBS[1], tags), (PHASE_JOBS[2], tags), (DAILY_JOB, days),
                          (RULES_JOB, tags)):
        result = defs.resolve_job_def(job).execute_in_process(tags=job_tags, instance=instance, raise_on_error=False,
                                                              run_config=quiet)
        assert result.success, job
    evaluations = [e for e in result.get_asset_check_evaluations() if e.partition]
    hook = Webhook()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("OBS_PIPELINES_ALERT_WEBHOOK_URL", hook.url)
            # the alert sensor's processing; these hours are weeks old, so notify about them too
            process_rule_results(store.engine, settings, deliver_history=True)
    finally:
        hook.close()
    store.engine.dispose()
    return {"evaluations": evaluations, "posts": hook.received}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def app_run(request, tmp_path_factory) -> dict:
    profile, database = VARIANTS[request.param]
    directory = tmp_path_factory.mktemp("second_app")
    if database == "sqlite":
        return _run(f"sqlite:///{directory / 'traces.db'}", directory, profile)
    with private_schema(request.getfixturevalue("pg_base_url")) as url:
        try:
            return _run(url, directory, profile)
        finally:
            db.make_engine.cache_clear()


def breached(evaluations: list, rule: str, hour: datetime) -> list[dict]:
    return [r for e in evaluations if e.check_name == rule and e.partition == key(hour)
            for r in e.metadata["results"].value if not r["passed"]]


def delivered(posts: list[dict]) -> list[dict]:
    return [a for p in posts if p["status"] < 300 for a in p["body"].get("alerts", [p["body"]])]


@pytest.mark.parametrize("mode", MODES)
def test_each_failure_mode_fires_its_rule_for_the_group_where_its_cause_lives(app_run, mode):
    rule, group = EXPECTED[mode]
    groups = [r["group"] for r in breached(app_run["evaluations"], rule, INCIDENT_AT[mode])]
    assert any(group.items() <= g.items() for g in groups), (mode, rule, groups)


@pytest.mark.parametrize("mode", MODES)
def test_each_failure_mode_reaches_the_webhook_as_a_firing_alert_of_its_hour(app_run, mode):
    rule, group = EXPECTED[mode]
    firing = [a for a in delivered(app_run["posts"]) if a["status"] == "firing" and a["rule"] == rule
              and a["window_start"] == INCIDENT_AT[mode].isoformat()]
    assert any(group.items() <= a["group"].items() for a in firing), (mode, rule)


@pytest.mark.parametrize("mode", sorted(CAUSES))
def test_each_failure_mode_names_its_root_cause_first(app_run, mode):
    rule, group = EXPECTED[mode]
    [result] = [r for r in breached(app_run["evaluations"], rule, INCIDENT_AT[mode])
                if group.items() <= r["group"].items()][:1]
    dimension, value = CAUSES[mode]
    top = result["attribution"][0] if result["attribution"] else {}
    # a prompt version is labelled prompt_name@version, and kb_answer's instrumentation names no template
    assert (top.get("dimension"), str(top.get("value")).split("@")[-1]) == (dimension, value.split("@")[-1]), \
        result["attribution"]


@pytest.mark.parametrize("mode", ["prompt_regression", "hallucination"])
def test_a_quality_drop_of_every_kind_of_question_names_no_cluster_of_failing_inputs(app_run, mode):
    # every kb_answer question failed alike in the hour: no cluster of inputs explains it (the day's clusters
    # exist: online_evals' daily job ran)
    rule, group = EXPECTED[mode]
    found = [r for r in breached(app_run["evaluations"], rule, INCIDENT_AT[mode]) if group.items() <= r["group"].items()]
    assert found and all(a["dimension"] != "input_cluster" for r in found for a in r["attribution"])


def test_the_clean_hours_fire_nothing(app_run):
    clean = {key(START + timedelta(hours=h)) for h in range(CLEAN_HOURS)}
    assert sorted((e.check_name, e.partition) for e in app_run["evaluations"]
                  if not e.passed and e.partition in clean) == []


def test_nothing_is_delivered_for_the_clean_hours(app_run):
    first_incident = min(INCIDENT_AT.values()).isoformat()
    assert [a["summary"] for a in delivered(app_run["posts"]) if a["window_start"] < first_incident] == []


def test_the_first_hours_are_judged_not_enough_history_not_passed_silently(app_run):
    # the pack's history rules need 6 history windows: in the first hour none judges, and each says why in its
    # check metadata (the SLO burn rate judges from its first hour: it is relative to the SLO's own target)
    history_rules = {r.name for r in new_user_settings("sqlite://").alerts.parsed_rules() if r.kind == "anomaly"}
    first = [e for e in app_run["evaluations"] if e.partition == key(START) and e.check_name in history_rules]
    assert first and all(e.metadata["groups_judged"].value == 0 for e in first)
    assert sum(e.metadata["groups_not_enough_history"].value for e in first) > 0
