"""Dagster wiring of the alerts: the rules as asset checks on the tables they read (per partition), a job
running those checks, a sensor that runs them after each rollup run, and the alert sensor that turns the
rules' new results (queued in the store by the checks) into alerts and delivers them through the outbox.

Assembled by obs_pipelines/definitions.py whenever the settings have rules; this package holds one builder
module per family: ``checks`` (the rules as asset checks), ``sensors`` (rules, alert, realtime and run-failure
sensors) and ``freshness`` (the missing-partition rule), and ``build_defs`` here puts them together. The logic
lives in rules.py, evaluate.py, source.py, payload.py, notifiers.py, outbox.py and results.py (no dagster there).
"""


from collections.abc import Iterable

import dagster as dg

from obs_pipelines.alerts import realtime
from obs_pipelines.alerts.defs.checks import (
    CHUNK,
    DIAGNOSIS_JOB,
    MAX_GROUPS_IN_METADATA,
    OBSERVABILITY_HOURLY,
    RULES_JOB,
    SEVERITY,
    breach_text,
    build_rule_checks,
    hour_metadata,
    rule_metric,
    rule_tables,
)
from obs_pipelines.alerts.defs.freshness import (
    FRESHNESS_RULE,
    build_freshness_sensor,
    freshness_alert,
    freshness_deadline,
    missing_partitions,
    schedule_minutes,
)
from obs_pipelines.alerts.defs.sensors import (
    build_alert_sensor,
    build_realtime_sensor,
    build_rules_sensor,
    build_run_failure_sensor,
    checked_tables,
    diagnosis_requests,
    process_rule_results,
    realtime_tick,
    run_failure_alert,
)
from obs_pipelines.orchestration.partitions import hourly_partitions
from obs_pipelines.settings import Settings


def build_defs(settings: Settings, asset_keys: Iterable[str],
               minutes_by_table: dict[str, int] | None = None) -> dg.Definitions:
    """The alerts' checks, jobs and sensors; ``minutes_by_table``: each table's schedule minute
    (schedule_minutes), for the freshness rule."""
    hourly = hourly_partitions(settings)
    keys = list(asset_keys)
    by_table = rule_tables(settings, keys)
    # diagnosis: the observability phase's hourly tables, when this code location has them
    diagnosis_tables = [t for t in OBSERVABILITY_HOURLY if t in set(keys)]
    checks = [build_rule_checks(settings, table, rules, hourly, diagnose=bool(diagnosis_tables))
              for table, rules in sorted(by_table.items())]
    jobs = []
    diagnosis_job = None
    if diagnosis_tables:
        diagnosis_job = dg.define_asset_job(
            DIAGNOSIS_JOB, selection=dg.AssetSelection.assets(*diagnosis_tables),
            description="The observability tables of an alert's hour (requested by alerts_sensor when missing).")
        jobs.append(diagnosis_job)
    sensors = [build_alert_sensor(settings, diagnosis_job, diagnosis_tables), build_run_failure_sensor(settings)]
    if checks:
        rules_job = dg.define_asset_job(
            RULES_JOB, selection=dg.AssetSelection.checks(*checks),
            description="The alert rules over an hour (or a range): one check evaluation per rule and hour.")
        jobs.append(rules_job)
        sensors.append(build_rules_sensor(settings, sorted(by_table), rules_job))
        if settings.alerts.freshness_minutes:
            sensors.append(build_freshness_sensor(settings, sorted(by_table), minutes_by_table))
        fast = realtime.fast_rules(r for rules in by_table.values() for r in rules)
        if fast and settings.alerts.realtime_windows_minutes:
            sensors.append(build_realtime_sensor(settings, fast))
    return dg.Definitions(asset_checks=checks, jobs=jobs, sensors=sensors)


# in the order `obs-pipelines run alerts` would run them
JOBS = (RULES_JOB,)  # the diagnosis job is requested by the sensor, never run by hand

__all__ = [
    "CHUNK", "DIAGNOSIS_JOB", "FRESHNESS_RULE", "JOBS", "MAX_GROUPS_IN_METADATA", "OBSERVABILITY_HOURLY", "RULES_JOB",
    "SEVERITY", "breach_text", "build_alert_sensor", "build_defs", "build_freshness_sensor", "build_realtime_sensor",
    "build_rule_checks", "build_rules_sensor", "build_run_failure_sensor", "checked_tables", "diagnosis_requests",
    "freshness_alert", "freshness_deadline", "hour_metadata", "missing_partitions", "process_rule_results",
    "realtime_tick", "rule_metric", "rule_tables", "run_failure_alert", "schedule_minutes",
]
