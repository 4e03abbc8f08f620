"""The freshness rule: a sensor that alerts when an hourly partition of a rule's table is still missing after
its phase's schedule ran for the hour."""

import json
from datetime import datetime, timedelta

import dagster as dg

from obs_pipelines import formatting
from obs_pipelines.alerts import outbox
from obs_pipelines.alerts.evaluate import (
    HOUR,
    hour_starts,
)
from obs_pipelines.alerts.links import partition_link
from obs_pipelines.hours import hour_key, parse_hour_key
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines.store import db

FRESHNESS_RULE = "rollup_partition_missing"



def missing_partitions(instance: dg.DagsterInstance, table: str, keys: list[str]) -> list[str]:
    page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(table), asset_partitions=keys),
                                           limit=10 * len(keys) + 10)
    present = {r.asset_materialization.partition for r in page.records if r.asset_materialization}
    return [k for k in keys if k not in present]


def schedule_minutes(defs: dg.Definitions) -> dict[str, int]:
    """Table -> the minute past the hour at which its phase's hourly schedule runs (monitoring :10,
    observability :20, online evals :30 ...): the freshness rule waits for that run before its own minutes."""
    out: dict[str, int] = {}
    for name in [s.name for s in defs.schedules or []]:
        schedule = defs.resolve_schedule_def(name)  # (an asset job's schedule takes its cadence from the assets)
        cron = schedule.cron_schedule if isinstance(schedule.cron_schedule, str) else schedule.cron_schedule[0]
        fields = cron.split()
        if len(fields) != 5 or fields[1:] != ["*", "*", "*", "*"] or not fields[0].isdigit():
            continue  # not an hourly schedule
        job = defs.resolve_job_def(schedule.job_name)
        for key in job.asset_layer.executable_asset_keys:
            table = key.to_user_string()
            out[table] = max(out.get(table, 0), int(fields[0]))
    return out


def freshness_deadline(settings: Settings, table: str, minutes_by_table: dict[str, int]) -> timedelta:
    """How long after its hour closed a table's partition may be missing: its schedule's minute plus
    freshness_minutes."""
    return timedelta(minutes=minutes_by_table.get(table, 0) + settings.alerts.freshness_minutes)


def freshness_alert(settings: Settings, table: str, hour: datetime, deadline: timedelta | None = None) -> dict:
    minutes = int((deadline or timedelta(minutes=settings.alerts.freshness_minutes)).total_seconds() // 60)
    return {"id": f"{FRESHNESS_RULE}-{table}-{hour:%Y%m%d%H}", "rule": FRESHNESS_RULE, "severity": "critical",
            "status": "firing", "metric": "partition_materialized", "value": False, "threshold": None,
            "window_start": hour.isoformat(), "window_end": (hour + HOUR).isoformat(), "group": {"table": table},
            "attribution": [], "exemplar_trace_ids": [],
            "summary": f"[FIRING] {FRESHNESS_RULE}: {table} has no partition {hour_key(hour)} "
                       f"{formatting.duration_ms(minutes * 60_000)} after the hour closed (its schedule's minute "
                       f"plus {settings.alerts.freshness_minutes} min; is the schedule running? did the run fail?)",
            "link": partition_link(settings.alerts.ui_base_url, table, hour)}


def build_freshness_sensor(settings: Settings, tables: list[str],
                           minutes_by_table: dict[str, int] | None = None) -> dg.SensorDefinition:
    minutes_by_table = minutes_by_table or {}

    @dg.sensor(
        name="alerts_freshness_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts when an hourly partition of a rule's table is still missing "
                    f"{settings.alerts.freshness_minutes} minutes after its phase's schedule ran for the hour "
                    "(pipeline health).",
    )
    def alerts_freshness_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        now = db.utcnow()
        start = parse_hour_key(settings.partitions_start)
        raised = 0
        for table in tables:
            deadline = freshness_deadline(settings, table, minutes_by_table)
            last = (now - deadline - HOUR).replace(minute=0, second=0, microsecond=0)
            hours = [h for h in hour_starts(last - (settings.alerts.freshness_lookback_hours - 1) * HOUR,
                                            last + HOUR) if h >= start]
            for key in missing_partitions(context.instance, table, [hour_key(h) for h in hours]):
                hour = parse_hour_key(key)
                alert = freshness_alert(settings, table, hour, deadline)
                raised += outbox.record_event(trace_store.engine, alert, json.dumps(alert["group"]), [],
                                              settings.alerts)
        report = outbox.deliver_due(trace_store.engine, settings.alerts, logger=context.log)
        return dg.SensorResult(skip_reason=f"{raised} missing partition(s) alerted, {len(report.delivered)} "
                                           "notification(s) delivered")

    return alerts_freshness_sensor
