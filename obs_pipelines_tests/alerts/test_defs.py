"""The alerts as Dagster runs them: the rules as asset checks per partition, the sensors, end to end on the
generator's incidents with absolute rules (absolute_rules.py; the shipped pack needs hours of history, see
test_incidents*.py), against a real webhook on 127.0.0.1."""

from __future__ import annotations

import copy
import gc
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from obs_pipelines.alerts import results
from obs_pipelines.alerts.defs import RULES_JOB, freshness_deadline, schedule_minutes
from obs_pipelines.alerts.tables import alerts
from obs_pipelines.definitions import build_definitions
from obs_pipelines.settings import Settings, load_settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces, parse_incident
from obs_pipelines_tests.alerts.absolute_rules import ABSOLUTE_RULES

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
START = datetime(2026, 11, 2, 9, 0)  # afternoon traffic: ~200-300 requests an hour at rate 0.05
HOURS = 6
OUTAGE = START + timedelta(hours=4)  # 13:00, provider_outage of openai over the whole hour
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def key(t: datetime) -> str:
    return t.strftime("%Y-%m-%d-%H:%M")


@pytest.fixture(scope="module")
def outage_spans() -> list[dict]:
    incident = parse_incident(f"provider_outage@{OUTAGE:%Y-%m-%dT%H:%M}+1h")
    gc.disable()
    try:
        return [row for trace in generate_traces(START, HOURS, 0.05, 7, [incident]) for row in trace]
    finally:
        gc.enable()


def shipped_settings(store) -> Settings:
    """The example file as shipped (its history-relative rule pack)."""
    return load_settings(EXAMPLE).model_copy(update={"db_url": store.db_url, "phases": ["monitoring"],
                                                     "partitions_start": "2026-11-01-00:00"})


def example_settings(store) -> Settings:
    """The example file with absolute rules (absolute_rules.py): they fire on an incident's first hours,
    without the history the shipped pack needs, which is what these tests of the wiring need."""
    base = shipped_settings(store)
    # November's hours replayed as if live: every change is delivered whatever its age (test_history.py: not)
    return base.model_copy(update={"alerts": base.alerts.model_copy(update={"rules": copy.deepcopy(ABSOLUTE_RULES),
                                                                            "deliver_max_age_hours": None})})


def run_range(defs: dg.Definitions, job: str, instance, first: datetime, last: datetime):
    result = defs.resolve_job_def(job).execute_in_process(
        tags=dict(zip(RANGE, (key(first), key(last)))), instance=instance, raise_on_error=False)
    assert result.success
    return result


@pytest.fixture
def checked(store, outage_spans):
    """The outage hours loaded, rolled up and checked by the rules (one range run each)."""
    db.insert_spans(store.engine, outage_spans)
    settings = example_settings(store)
    # the instance of DAGSTER_HOME (SQLite storage, as `dagster dev`: a run-sharded event log)
    defs, instance = build_definitions(settings), dg.DagsterInstance.get()
    last = START + timedelta(hours=HOURS - 1)
    run_range(defs, "monitoring_hourly_job", instance, START, last)
    result = run_range(defs, RULES_JOB, instance, START, last)
    return store, settings, defs, instance, result


def sensor_tick(defs, instance, store, name: str, cursor: str | None = None):
    sensor = defs.resolve_sensor_def(name)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                                        resources={"trace_store": store}))


def failed_openai_traces(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT DISTINCT trace_id FROM spans WHERE provider = 'openai' AND status = 'error'")).scalars())


def test_rules_are_checks_on_the_rollup_assets_and_rules_on_absent_tables_are_skipped(store, caplog):
    with caplog.at_level(logging.WARNING, logger="obs_pipelines.alerts"):
        defs = build_definitions(example_settings(store))
    checks = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert ("error_rollup_hourly", "provider_error_rate") in checks
    assert ("slo_status_hourly", "error_budget_burn") in checks
    assert ("request_rollup_hourly", "route_p95_latency_anomaly") in checks
    for rule, table in [("empty_retrievals", "retrieval_rollup_hourly"), ("agent_loops", "agent_paths"),
                        ("groundedness_drop", "eval_scores")]:
        assert f"alert rule {rule!r} skipped: table {table!r}" in caplog.text
    assert {s.name for s in defs.sensors} >= {"alerts_sensor", "alerts_rules_sensor"}


def test_without_rules_the_alerts_add_nothing(store):
    defs = build_definitions(Settings(db_url=store.db_url, phases=["monitoring"]))
    assert not any(s.name.startswith("alerts_") for s in defs.sensors)


def test_a_range_run_reports_each_hour_of_each_rule_with_value_group_attribution_and_exemplars(checked):
    store, _, _, _, result = checked
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == "provider_error_rate"]
    per_hour = {e.partition: e.passed for e in evaluations if e.partition}
    assert per_hour == {key(START + timedelta(hours=h)): START + timedelta(hours=h) != OUTAGE for h in range(HOURS)}
    [outage] = [e for e in evaluations if e.partition == key(OUTAGE)]
    assert outage.metadata["group"].value == {"provider": "openai"}
    assert outage.metadata["value"].value > outage.metadata["threshold"].value == 0.25
    assert outage.metadata["attribution"].value[0] == {**outage.metadata["attribution"].value[0],
                                                       "dimension": "error_class", "value": "provider_5xx"}
    exemplars = outage.metadata["exemplar_trace_ids"].value
    assert exemplars and set(exemplars) <= failed_openai_traces(store)
    [summary] = [e for e in evaluations if e.partition is None]
    assert summary.metadata["failing_partitions"].value == [key(OUTAGE)]


def test_the_alert_sensor_delivers_the_outage_once_pointing_at_the_provider_and_exemplar_traces(checked, webhook):
    store, _, defs, instance, _ = checked
    tick = sensor_tick(defs, instance, store, "alerts_sensor")
    bodies = [r["body"] for r in webhook.received]
    alerts_sent = [a for b in bodies for a in b.get("alerts", [b])]
    fired = {a["rule"]: a for a in alerts_sent}
    assert "provider_error_rate" in fired
    alert = fired["provider_error_rate"]
    assert alert["status"] == "firing" and alert["group"] == {"provider": "openai"}
    assert alert["window_start"] == OUTAGE.isoformat()
    assert alert["attribution"][0]["value"] == "provider_5xx"
    assert alert["exemplar_trace_ids"] and set(alert["exemplar_trace_ids"]) <= failed_openai_traces(store)
    assert "openai" in alert["summary"] and alert["link"].endswith(
        f"/assets/error_rollup_hourly?view=partitions&partition={key(OUTAGE).replace(':', '%3A')}")  # the UI's form
    # only the outage hour fired (the hours after it are clean)
    assert {a["window_start"] for a in alerts_sent} == {OUTAGE.isoformat()}
    again = sensor_tick(defs, instance, store, "alerts_sensor", cursor=tick.cursor)
    assert len(webhook.received) == len(bodies)
    assert json.loads(again.cursor)["after_ts"] >= json.loads(tick.cursor)["after_ts"]


def test_a_fresh_sensor_cursor_over_the_same_check_results_sends_nothing_twice(checked, webhook):
    store, _, defs, instance, _ = checked
    sensor_tick(defs, instance, store, "alerts_sensor")
    sent = len(webhook.received)
    sensor_tick(defs, instance, store, "alerts_sensor")  # cursor lost: every check result read again
    assert len(webhook.received) == sent
    with store.engine.connect() as conn:
        statuses = conn.execute(sa.select(alerts.c.rule, alerts.c.status)).all()
    assert ("provider_error_rate", "firing") in statuses


def test_the_checks_queue_every_judged_group_and_the_sensor_takes_each_result_once(checked, webhook):
    """The check evaluations carry the summary and the breached groups only; every rule's hours are queued in
    the store (both runs of the fixture checked them: 2 x rules x hours) and one tick takes them all."""
    store, settings, defs, instance, result = checked
    [outage] = [e for e in result.get_asset_check_evaluations()
                if e.check_name == "provider_error_rate" and e.partition == key(OUTAGE)]
    assert "passed_results" not in outage.metadata
    assert [r["group"] for r in outage.metadata["results"].value] == [{"provider": "openai"}]
    assert outage.metadata["groups_judged"].value > outage.metadata["groups_breached"].value == 1
    checked_rules = {e.check_name for e in result.get_asset_check_evaluations()}
    assert results.pending_count(store.engine) == 2 * len(checked_rules) * HOURS
    tick = sensor_tick(defs, instance, store, "alerts_sensor")
    assert tick.skip_message.startswith(f"{2 * len(checked_rules) * HOURS} rule result(s) applied")
    assert results.pending_count(store.engine) == 0 and webhook.received
    sent = len(webhook.received)
    again = sensor_tick(defs, instance, store, "alerts_sensor", cursor=tick.cursor)
    assert again.skip_message.startswith("0 rule result(s) applied, 0 alert change(s)")
    assert len(webhook.received) == sent


def test_the_rules_sensor_leaves_hours_the_phase_run_checked_and_requests_the_others(checked):
    store, _, defs, instance, _ = checked
    tick = sensor_tick(defs, instance, store, "alerts_rules_sensor")
    assert tick.run_requests == []  # monitoring_hourly_job evaluates the rules on its own tables
    for hour in (START + timedelta(hours=HOURS), START + timedelta(hours=HOURS + 1)):  # written without checks
        instance.report_runless_asset_event(dg.AssetMaterialization("error_rollup_hourly", partition=key(hour)))
    tick = sensor_tick(defs, instance, store, "alerts_rules_sensor", cursor=tick.cursor)
    [request] = tick.run_requests  # consecutive hours: one run over the range
    assert [request.tags[t] for t in RANGE] == [key(START + timedelta(hours=HOURS)),
                                                key(START + timedelta(hours=HOURS + 1))]
    assert request.run_key.startswith("alerts_rules:")
    quiet = sensor_tick(defs, instance, store, "alerts_rules_sensor", cursor=tick.cursor)
    assert not quiet.run_requests

def test_with_observability_the_alert_carries_its_error_causes_and_its_rules_on_its_tables_run(store, outage_spans,
                                                                                                 webhook):
    db.insert_spans(store.engine, outage_spans)
    settings = example_settings(store).model_copy(update={"phases": ["monitoring", "observability"]})
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"empty_retrievals", "agent_loops"} <= checks
    run_range(defs, "monitoring_hourly_job", instance, OUTAGE, OUTAGE)
    run_range(defs, "observability_hourly_job", instance, OUTAGE, OUTAGE)
    run_range(defs, RULES_JOB, instance, OUTAGE, OUTAGE)
    sensor_tick(defs, instance, store, "alerts_sensor")
    alerts_sent = [a for r in webhook.received for a in r["body"].get("alerts", [r["body"]])]
    alert = next(a for a in alerts_sent if a["rule"] == "provider_error_rate")
    dimensions = {c["dimension"] for c in alert["attribution"]}
    assert alert["attribution"][0] == {**alert["attribution"][0], "dimension": "error_class", "value": "provider_5xx"}
    assert "span" in dimensions  # the failing step, from error_causes_hourly
    assert set(alert["exemplar_trace_ids"]) <= failed_openai_traces(store)


def test_48_clean_hours_fire_nothing_with_the_shipped_example_rules(store, webhook):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("the rules read the same rollups on both databases; one run of 48 hours is enough")
    start = datetime(2026, 11, 5, 0, 0)
    gc.disable()
    try:
        rows = [row for trace in generate_traces(start, 48, 0.03, 11) for row in trace]
    finally:
        gc.enable()
    db.insert_spans(store.engine, rows)
    settings = shipped_settings(store).model_copy(update={"phases": ["monitoring", "observability"]})
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    last = start + timedelta(hours=47)
    run_range(defs, "monitoring_hourly_job", instance, start, last)
    run_range(defs, "observability_hourly_job", instance, start, last)
    result = run_range(defs, RULES_JOB, instance, start, last)
    failed = sorted((e.check_name, e.partition) for e in result.get_asset_check_evaluations() if not e.passed)
    assert failed == []
    sensor_tick(defs, instance, store, "alerts_sensor")
    assert webhook.received == []


def test_a_failed_run_is_alerted_once_through_the_outbox(store, webhook):
    @dg.op
    def explode():
        raise RuntimeError("store unreachable")

    @dg.job(tags={"dagster/partition": "2026-11-02-13:00"})
    def monitoring_hourly_job():
        explode()

    instance = dg.DagsterInstance.ephemeral()
    result = monitoring_hourly_job.execute_in_process(instance=instance, raise_on_error=False)
    defs = build_definitions(example_settings(store))
    sensor = defs.resolve_sensor_def("alerts_run_failure_sensor")
    for _ in range(2):  # the same failure seen twice is sent once
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=result.get_run_failure_event(), dagster_instance=instance,
            dagster_run=result.dagster_run).for_run_failure()
        sensor(context)
    [request] = webhook.received
    alert = request["body"]
    assert alert["rule"] == "pipeline_run_failed" and alert["group"] == {"job": "monitoring_hourly_job"}
    assert alert["window_start"] == "2026-11-02T13:00:00" and result.run_id in alert["link"]
    assert "failed" in alert["summary"]


def test_a_rollup_partition_missing_30_minutes_after_its_hour_alerts_once(store, webhook, monkeypatch):
    # the deadline is the monitoring schedule's minute plus freshness_minutes (40 min, not 30): computing the
    # newest due hour from 30 alone left no due hour whenever the test ran between :30 and :40 past an hour
    settings = example_settings(store)
    deadline = freshness_deadline(settings, "error_rollup_hourly", schedule_minutes(build_definitions(settings)))
    now = db.utcnow()
    monkeypatch.setattr(db, "utcnow", lambda: now)  # one clock for the test and the sensor: no hour boundary between
    due = (now - deadline - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    settings = settings.model_copy(update={
        "partitions_start": key(due),  # only the newest due hour exists
        "alerts": settings.alerts.model_copy(update={"rules": [r for r in settings.alerts.rules
                                                                if r["name"] == "provider_error_rate"]})})
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    tick = sensor_tick(defs, instance, store, "alerts_freshness_sensor")
    [request] = webhook.received
    assert request["body"]["rule"] == "rollup_partition_missing"
    assert request["body"]["group"] == {"table": "error_rollup_hourly"}
    assert request["body"]["window_start"] == due.isoformat()
    sensor_tick(defs, instance, store, "alerts_freshness_sensor", cursor=tick.cursor)
    assert len(webhook.received) == 1


def test_an_alert_whose_hour_lacks_the_observability_tables_requests_their_run_once(store, outage_spans, webhook):
    db.insert_spans(store.engine, outage_spans)
    settings = example_settings(store).model_copy(update={"phases": ["monitoring", "observability"]})
    defs, instance = build_definitions(settings), dg.DagsterInstance.ephemeral()
    run_range(defs, "monitoring_hourly_job", instance, OUTAGE, OUTAGE)
    run_range(defs, RULES_JOB, instance, OUTAGE, OUTAGE)
    tick = sensor_tick(defs, instance, store, "alerts_sensor")
    assert tick.run_requests and {r.job_name for r in tick.run_requests} == {"alerts_diagnosis_job"}
    assert {r.tags[RANGE[0]] for r in tick.run_requests} == {key(OUTAGE)}
    assert len({r.run_key for r in tick.run_requests}) == len(tick.run_requests)
    assert webhook.received  # the alert itself is not held back
    [request] = [r for r in tick.run_requests if "provider_error_rate" in r.run_key]
    diagnosis = defs.resolve_job_def("alerts_diagnosis_job").execute_in_process(
        tags=request.tags, instance=instance, raise_on_error=False)
    assert diagnosis.success
    again = sensor_tick(defs, instance, store, "alerts_sensor", cursor=tick.cursor)
    assert not again.run_requests
