"""No paging on history (issue 24): judgements of hours that ended more than alerts.deliver_max_age_hours ago
are recorded (the alerts table, `alerts list`) but not delivered unless asked; enabling rules on a store that
already holds days of incidents sends nothing about the past, while an incident still going on pages."""

from __future__ import annotations

import copy
import gc
import json
from datetime import datetime, timedelta

import dagster as dg
import sqlalchemy as sa

from obs_pipelines.alerts import results
from obs_pipelines.alerts.defs import RULES_JOB, process_rule_results
from obs_pipelines.alerts.evaluate import HOUR, RuleResult
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alerts
from obs_pipelines.definitions import build_definitions
from obs_pipelines.demo import demo_incidents
from obs_pipelines.monitoring.rollups import write_hourly_rollups
from obs_pipelines.orchestration.partitions import range_tags
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.synth.generator import generate_traces

RULE = {"name": "provider_error_rate", "kind": "threshold", "table": "error_rollup_hourly",
        "group_by": "provider", "metric": "error_rate", "threshold": 0.25, "severity": "critical"}
# absolute rules that fire on the generator's incidents without history (a provider failing a quarter of its
# spans; 429s on more than 5% of all spans); the shipped pack needs hours of history (test_incidents*.py)
INCIDENT_RULES = [
    {**RULE, "sample_column": "span_count", "min_samples": 30},
    {"name": "rate_limit_errors", "kind": "threshold", "table": "error_rollup_hourly", "group_by": "error_class",
     "where": {"dimension_value": "rate_limit"}, "metric": "error_rate", "threshold": 0.05,
     "sample_column": "span_count", "min_samples": 100, "severity": "warning"},
]
HOOK = {"hook": {"type": "webhook", "url_env": "OBS_PIPELINES_ALERT_WEBHOOK_URL"}}


def alert_settings(**extra) -> AlertSettings:
    return AlertSettings(rules=[RULE], destinations=HOOK, **extra)


def this_hour() -> datetime:
    return db.utcnow().replace(minute=0, second=0, microsecond=0)


def row(hour: datetime, breached: bool, provider: str = "openai") -> dict:
    """One rule-hour as the check queues it: the provider at 84% (breach) or 2% (good)."""
    value = 0.84 if breached else 0.02
    result = RuleResult("provider_error_rate", hour, hour + HOUR, {"provider": provider}, value, 0.25, 400.0,
                        True, not breached)
    return results.row("provider_error_rate", "error_rate", hour, hour + HOUR, [result], "http://ui/x")


def stored(store) -> list[dict]:
    with store.engine.connect() as conn:
        return [json.loads(p) | {"_status": s} for s, p in conn.execute(
            sa.select(alerts.c.status, alerts.c.payload).order_by(alerts.c.window_start))]


def test_an_incident_two_days_old_is_recorded_not_delivered(store, webhook):
    # fired and resolved 2 days ago: 49 and 47 hours before this hour, far beyond the 2 h setting
    old = this_hour() - timedelta(hours=49)
    results.queue(store.engine, [row(old, True), row(old + HOUR, False), row(old + 2 * HOUR, False)])
    applied, report = results.process(store.engine, alert_settings(deliver_max_age_hours=2))
    assert [t.alert["status"] for t in applied.transitions] == ["firing", "resolved"]
    assert webhook.received == [] and report.delivered == []
    [alert] = stored(store)
    assert alert["_status"] == "resolved" and alert["delivery"] == results.NOT_DELIVERED


def test_deliver_history_sends_what_the_setting_holds_back(store, webhook):
    old = this_hour() - timedelta(hours=49)
    results.queue(store.engine, [row(old, True)])
    results.process(store.engine, alert_settings(deliver_max_age_hours=2), deliver_history=True)
    [request] = webhook.received
    assert request["body"]["status"] == "firing" and request["body"]["window_start"] == old.isoformat()


def test_an_hour_within_the_setting_pages_as_before(store, webhook):
    # the hour before this one ended at most an hour ago: live
    results.queue(store.engine, [row(this_hour() - HOUR, True)])
    results.process(store.engine, alert_settings(deliver_max_age_hours=2))
    assert [r["body"]["status"] for r in webhook.received] == ["firing"]


def test_an_incident_that_began_in_history_and_goes_on_pages_its_live_hour_as_a_new_alert(store, webhook):
    now = this_hour()
    # breached 6, 5 and 4 hours ago (history, recorded silently), then breached an hour ago (live)
    results.queue(store.engine, [row(now - h * HOUR, True) for h in (6, 5, 4)])
    results.process(store.engine, alert_settings(deliver_max_age_hours=2))
    assert webhook.received == []
    results.queue(store.engine, [row(now - HOUR, True)])
    results.process(store.engine, alert_settings(deliver_max_age_hours=2))
    [request] = webhook.received
    assert request["body"]["status"] == "firing" and request["body"]["window_start"] == (now - HOUR).isoformat()
    first, live = stored(store)
    assert first["_status"] == "resolved" and first["delivery"] == results.NOT_DELIVERED
    assert live["_status"] == "firing" and "delivery" not in live


def test_the_recovery_of_an_incident_nobody_was_told_about_is_not_sent(store, webhook):
    now = this_hour()
    results.queue(store.engine, [row(now - 5 * HOUR, True)])  # history: silent
    results.queue(store.engine, [row(now - 2 * HOUR, False), row(now - HOUR, False)])  # live good hours
    results.process(store.engine, alert_settings(deliver_max_age_hours=2, resolve_after_windows=2))
    assert webhook.received == []
    [alert] = stored(store)
    assert alert["_status"] == "resolved"


def test_enabling_rules_on_a_store_with_two_days_of_incidents_delivers_nothing(store, webhook):
    """The whole path: two days of the generator's traffic with its incidents, already rolled up (a populated
    store), then the rules switched on: their job over those hours (what alerts_rules_sensor requests for the
    hours it finds materialized) and the alert sensor's processing: every alert recorded, nothing sent."""
    end = this_hour() - 2 * HOUR  # the newest hour is older than the 2 h setting
    start = end - timedelta(days=2)
    incidents = demo_incidents(start, 2)
    gc.disable()
    try:
        rows = [r for t in generate_traces(start, 48, 0.02, 5, incidents) for r in t]
    finally:
        gc.enable()
    db.insert_spans(store.engine, rows)
    prices = load_prices({})
    for hour in range(48):
        write_hourly_rollups(store.engine, start + hour * HOUR, start + (hour + 1) * HOUR, prices)
    settings = Settings(db_url=store.db_url, phases=["monitoring"], partitions_start=f"{start:%Y-%m-%d-%H:%M}",
                        alerts=AlertSettings(rules=copy.deepcopy(INCIDENT_RULES), destinations=HOOK,
                                             freshness_minutes=0))
    result = build_definitions(settings).resolve_job_def(RULES_JOB).execute_in_process(
        tags=range_tags(f"{start:%Y-%m-%d-%H:%M}", f"{end - HOUR:%Y-%m-%d-%H:%M}"),
        instance=dg.DagsterInstance.get(), raise_on_error=False)
    assert result.success
    transitions, report, applied = process_rule_results(store.engine, settings)
    assert applied.consumed == 48 * 2 and transitions  # the outage and the rate-limit storm are there ...
    assert webhook.received == [] and report.delivered == []  # ... and nobody is paged about them
    assert all(a["delivery"] == results.NOT_DELIVERED for a in stored(store))
