"""The alerts' sensors: the rules sensor (runs the checks after each rollup run), the alert sensor (queued
rule results -> alerts -> outbox, and the diagnosis runs an alert's hour lacks), the realtime sensor and the
run-failure sensor."""

import json
from datetime import datetime, timezone

import dagster as dg
import sqlalchemy as sa

from obs_pipelines.alerts import outbox, realtime, source
from obs_pipelines.alerts import results as results_queue
from obs_pipelines.alerts.defs.checks import DIAGNOSIS_JOB, rule_metric
from obs_pipelines.alerts.defs.freshness import missing_partitions
from obs_pipelines.alerts.evaluate import (
    HOUR,
)
from obs_pipelines.alerts.links import partition_link
from obs_pipelines.hours import hour_key, parse_hour_key
from obs_pipelines.orchestration.partitions import range_tags, run_partition_keys
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import tagged_hours
from obs_pipelines.settings import Settings
from obs_pipelines.store import db


# ---- sensors ----------------------------------------------------------------------------------------------
def process_rule_results(engine, settings: Settings, logger=None, deliver_history: bool = False
                         ) -> tuple[list, outbox.DeliveryReport, results_queue.Applied]:
    """The queued rule results -> alerts + outbox (each row once, results.py); then deliver what is due.
    The transitions, the delivery report and what was consumed (the sensor and `alerts evaluate`).
    Changes of windows older than alerts.deliver_max_age_hours are recorded without a notification unless
    ``deliver_history``."""
    applied, report = results_queue.process(engine, settings.alerts, logger=logger, deliver_history=deliver_history)
    return applied.transitions, report, applied


def _cursor_after(cursor: dict, applied: results_queue.Applied) -> str:
    """The sensor's cursor only shows progress (the queue, not the cursor, makes each result read once):
    when the newest result consumed so far was queued, as a unix time."""
    after = cursor.get("after_ts", 0.0)
    if applied.newest_queued_at is not None:
        after = max(after, applied.newest_queued_at.replace(tzinfo=timezone.utc).timestamp())
    return json.dumps({"after_ts": after})


def diagnosis_requests(instance: dg.DagsterInstance, transitions: list, diagnosis_tables: list[str]) -> list:
    """A run of the observability tables for the window of each alert that fired, when they are missing
    there (run key per alert: one run however many ticks see it)."""
    requests = []
    for t in transitions:
        if t.alert["status"] != "firing":
            continue
        partition = hour_key(t.window_start)
        if not missing_partitions(instance, diagnosis_tables[0], [partition]):
            continue
        requests.append(dg.RunRequest(run_key=f"alerts_diagnosis:{t.alert['id']}", job_name=DIAGNOSIS_JOB,
                                      tags={**range_tags(partition, partition),
                                            "obs_pipelines/reason": "alert_diagnosis",
                                            "obs_pipelines/alert_id": t.alert["id"]}))
    return requests


def build_alert_sensor(settings: Settings, diagnosis_job=None, diagnosis_tables: list[str] = ()) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[diagnosis_job] if diagnosis_job is not None else None,
        description="Turns the alert rules' new results (queued in the store by their checks: failures and "
                    "recoveries) into alerts, stores them in `alerts` and delivers them through the outbox "
                    "(webhook / Slack / log), retrying failed "
                    "destinations with backoff on later ticks; requests a run of the observability tables for "
                    "an alert's hour when they are missing (diagnosis).",
    )
    def alerts_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        transitions, report, applied = process_rule_results(trace_store.engine, settings, logger=context.log)
        requests = diagnosis_requests(context.instance, transitions, list(diagnosis_tables)) if diagnosis_job else []
        parts = [f"{applied.consumed} rule result(s) applied", f"{len(transitions)} alert change(s)",
                 f"{len(report.delivered)} delivered"]
        if report.failed:
            parts.append(f"{len(report.failed)} failed (retried later): "
                         + "; ".join(f"{k[:8]}: {v}" for k, v in list(report.failed.items())[:3]))
            context.log.warning(parts[-1])
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=_cursor_after(cursor, applied))
        return dg.SensorResult(skip_reason=", ".join(parts), cursor=_cursor_after(cursor, applied))

    return alerts_sensor


def _consecutive_hours(keys: list[str]) -> list[tuple[str, str, list[str]]]:
    """Sorted hour keys -> (first, last, keys) of each run of consecutive hours."""
    runs: list[list[str]] = []
    for k in keys:
        if runs and parse_hour_key(k) - parse_hour_key(runs[-1][-1]) == HOUR:
            runs[-1].append(k)
        else:
            runs.append([k])
    return [(r[0], r[-1], r) for r in runs]


def checked_tables(instance: dg.DagsterInstance, run_id: str, rule_names: set[str]) -> set[str]:
    """Tables whose rules the run evaluated itself: a phase's job selects the checks on its assets, so its
    runs evaluate the rules right after writing the tables (and the rules sensor leaves those hours alone)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return {r.event_log_entry.dagster_event.event_specific_data.asset_key.to_user_string() for r in records
            if r.event_log_entry.dagster_event.event_specific_data.check_name in rule_names}


def build_rules_sensor(settings: Settings, tables: list[str], rules_job) -> dg.SensorDefinition:
    rule_names = {r.name for r in settings.alerts.parsed_rules()}

    @dg.sensor(
        name="alerts_rules_sensor",
        job=rules_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the alert rules over the hours of the rule tables materialized since its last tick by "
                    "a run that did not evaluate them itself (a phase's own jobs do); a run still in progress is "
                    "looked at once it has ended.",
    )
    def alerts_rules_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        newest: dict[str, int] = {}
        checked_by_run: dict[str, set[str]] = {}
        finished: dict[str, bool] = {}
        for table in tables:
            after = cursor.get(table)
            page = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), after_storage_id=after), limit=1000,
                ascending=True)
            for record in page.records:
                partition = record.asset_materialization.partition if record.asset_materialization else None
                if record.run_id and record.run_id not in finished:
                    run = context.instance.get_run_by_id(record.run_id)
                    finished[record.run_id] = run is None or run.is_finished
                if record.run_id and not finished[record.run_id]:
                    # a phase's run writes its tables, then evaluates their checks: judge it once it has ended
                    # (else this sensor would see the tables before the checks and run the rules again)
                    break
                if record.run_id and record.run_id not in checked_by_run:
                    checked_by_run[record.run_id] = checked_tables(context.instance, record.run_id, rule_names)
                if partition and table not in checked_by_run.get(record.run_id, set()):
                    newest[partition] = max(newest.get(partition, 0), record.storage_id)
                cursor[table] = max(cursor.get(table) or 0, record.storage_id)
        if not newest:
            return dg.SensorResult(skip_reason="no rule table materialized without its rules since the last tick",
                                   cursor=json.dumps(cursor))
        # one run per run of consecutive hours (a check-only job takes its window from the range tags)
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"alerts_rules:{first}:{last}:{max(newest[k] for k in keys)}",
                                        tags={**range_tags(first, last), "obs_pipelines/reason": "alert_rules"})
                          for first, last, keys in _consecutive_hours(sorted(newest))],
            cursor=json.dumps(cursor))

    return alerts_rules_sensor


def realtime_tick(engine, alert_settings, rules: list, now: datetime, logger=None
                  ) -> tuple[list[realtime.FastBreach], list, outbox.DeliveryReport]:
    """One tick of the fast path (``alert_settings``: the settings' alerts block): judge the rules over the
    trailing windows of spans ending ``now``, queue the breaches as results of the current hour (with
    attribution and exemplars), then apply and deliver them at once."""
    breaches = realtime.judge(engine, rules, now, alert_settings.realtime_windows_minutes)
    found = {id(b.result): (source.attribution(engine, b.rule, b.result),
                            source.exemplar_trace_ids(engine, b.rule, b.result)) for b in breaches}
    rows = realtime.queue_rows(breaches, rule_metric, lambda rule, hour: partition_link(
        alert_settings.ui_base_url, rule.table, hour), found, now)
    results_queue.queue(engine, rows)
    applied, report = results_queue.process(engine, alert_settings, logger=logger)
    return breaches, applied.transitions, report


def build_realtime_sensor(settings: Settings, rules: list) -> dg.SensorDefinition:
    windows = ", ".join(f"{m} min" for m in sorted(settings.alerts.realtime_windows_minutes))

    @dg.sensor(
        name="alerts_realtime_sensor",
        minimum_interval_seconds=settings.alerts.realtime_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"The fast path: every {settings.alerts.realtime_interval_seconds} s, the rules on the "
                    f"monitoring rollups ({', '.join(sorted(r.name for r in rules))}) judged over the last "
                    f"{windows} of spans against their history, as the current hour's results; a breach pages "
                    "through the same outbox at once, and the hourly check later updates that alert.",
    )
    def alerts_realtime_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        engine = trace_store.engine
        if not sa.inspect(engine).has_table("spans"):
            return dg.SensorResult(skip_reason="no spans table yet")
        breaches, transitions, report = realtime_tick(engine, settings.alerts, rules, db.utcnow(), logger=context.log)
        for t in transitions:
            context.log.info(t.alert["summary"])
        return dg.SensorResult(skip_reason=f"{len(breaches)} group(s) breached over the last {windows}, "
                                           f"{len(transitions)} alert change(s), {len(report.delivered)} "
                                           "notification(s) delivered")

    return alerts_realtime_sensor


RUN_FAILURE_RULE = "pipeline_run_failed"


def run_failure_alert(settings: Settings, run: dg.DagsterRun, message: str, now: datetime) -> dict:
    """The alert of a failed run: its job, partition (or range), the failure message and the run's UI link."""
    first, last = run_partition_keys(run.tags)
    current = now.replace(minute=0, second=0, microsecond=0)
    window_start, window_end = tagged_hours(run.tags) or (current, current + HOUR)  # a daily run: this hour
    group = {"job": run.job_name}
    summary = f"[FIRING] {RUN_FAILURE_RULE}: run {run.run_id[:8]} of {run.job_name}"
    summary += f" ({first}..{last})" if first else ""
    summary += f" failed: {message.splitlines()[0][:300] if message else 'no message'}"
    return {"id": f"{RUN_FAILURE_RULE}-{run.run_id}", "rule": RUN_FAILURE_RULE, "severity": "critical",
            "status": "firing", "metric": "run_status", "value": "FAILURE", "threshold": None,
            "window_start": window_start.isoformat(), "window_end": window_end.isoformat(), "group": group,
            "attribution": [], "exemplar_trace_ids": [], "summary": summary,
            "link": f"{settings.alerts.ui_base_url.rstrip('/')}/runs/{run.run_id}", "run_id": run.run_id}


def build_run_failure_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="alerts_run_failure_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts every destination when a run of this code location fails (pipeline health), "
                    "through the same outbox as the rules' alerts.",
    )
    def alerts_run_failure_sensor(context: dg.RunFailureSensorContext):
        engine = db.make_engine(settings.db_url)
        message = context.failure_event.message or ""
        alert = run_failure_alert(settings, context.dagster_run, message, db.utcnow())
        outbox.record_event(engine, alert, json.dumps(alert["group"], sort_keys=True), [], settings.alerts)
        outbox.deliver_due(engine, settings.alerts, logger=context.log)

    return alerts_run_failure_sensor
