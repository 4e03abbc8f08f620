"""Dagster wiring of the alerts: the rules as asset checks on the tables they read (per partition), a job
running those checks, a sensor that runs them after each rollup run, and the alert sensor that turns the
rules' new results (queued in the store by the checks) into alerts and delivers them through the outbox.

Assembled by obs_pipelines/definitions.py whenever the settings have rules. The logic lives in rules.py,
evaluate.py, source.py, payload.py, notifiers.py, outbox.py and results.py (no dagster there).
"""


import json
import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import dagster as dg
import sqlalchemy as sa

from obs_pipelines import formatting
from obs_pipelines.alerts import outbox, realtime, source
from obs_pipelines.alerts import results as results_queue
from obs_pipelines.alerts.evaluate import (
    HOUR,
    RuleResult,
    by_window,
    evaluate,
    history_needed,
    hour_starts,
)
from obs_pipelines.alerts.links import partition_link
from obs_pipelines.hours import hour_key, parse_hour_key
from obs_pipelines.observability.tables import HOURLY_TABLES as OBSERVABILITY_TABLES
from obs_pipelines.orchestration.partitions import hourly_partitions, range_tags, rescore_requested, run_partition_keys
from obs_pipelines.orchestration.reporting import check_evaluation
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import check_run_window, tagged_hours
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import Settings
from obs_pipelines.store import db, fingerprints

RULES_JOB = "alerts_rules_job"
DIAGNOSIS_JOB = "alerts_diagnosis_job"
# the observability phase's hourly tables (its published tables.py), error causes first: a diagnosis run
# writes them for an alert's hour; the first one tells whether the hour has them
OBSERVABILITY_HOURLY = ["error_causes_hourly", *(t for t in OBSERVABILITY_TABLES if t != "error_causes_hourly")]
MAX_GROUPS_IN_METADATA = 50
CHUNK = timedelta(hours=24)  # a rule check reads and judges this many hours at a time (memory bounded by it)
SEVERITY = {"critical": dg.AssetCheckSeverity.ERROR, "warning": dg.AssetCheckSeverity.WARN,
            "info": dg.AssetCheckSeverity.WARN}
log = logging.getLogger("obs_pipelines.alerts")


def _metric(rule) -> str:
    if rule.kind == "burn_rate":
        return f"burn_rate({rule.slo})"
    if rule.kind == "eval_score":
        return f"{rule.statistic}({rule.scorer})"
    return rule.metric


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _result_dict(result: RuleResult, attribution: list | None = None, exemplars: list | None = None) -> dict:
    return {"group": result.group, "value": _clean(result.value), "threshold": _clean(result.threshold),
            "samples": _clean(result.samples), "judged": result.judged, "passed": result.passed,
            "baseline": _clean(result.baseline), "attribution": attribution or [],
            "exemplar_trace_ids": exemplars or []}


def _severity_of(result: RuleResult) -> float:
    """How far past its threshold a breach is, relative to the threshold (to put the worst first)."""
    if result.value is None or result.threshold is None:
        return 0.0
    return abs(result.value - result.threshold) / max(abs(result.threshold), 1e-12)


def breach_text(metric: str, entry: dict) -> str:
    """``provider=openai: error_rate 84% (threshold 25%, 440 samples)``."""
    where = ", ".join(f"{k}={v}" for k, v in entry["group"].items()) or "overall"
    text = (f"{where}: {metric} {formatting.metric_value(metric, entry['value'])} "
            f"(threshold {formatting.metric_value(metric, entry['threshold'])}")
    if entry.get("samples") is not None:
        text += f", {formatting.number(entry['samples'])} samples"
    return text + ")"


def hour_metadata(engine, rule, results: list[RuleResult], link: str,
                  diagnosis: source.Diagnosis | None = None) -> tuple[bool, dict, dict]:
    """Whether the hour passed, the check's metadata, and the attribution and exemplar traces found (by id()
    of the result; for the queue row). The metadata, most useful first: what broke (a sentence with the
    figures formatted), the worst breach's value and threshold (rounded: the UI plots them), its group,
    attribution and exemplar traces, then the counts, the breached groups (a tree) and the link. The good
    groups are not in it: the alert sensor reads every judged group from the results queue (results.py)."""
    breached = sorted((r for r in results if not r.passed), key=_severity_of, reverse=True)
    found = {id(r): (source.attribution(engine, rule, r, diagnosis),
                     source.exemplar_trace_ids(engine, rule, r, diagnosis=diagnosis))
             for r in breached[:MAX_GROUPS_IN_METADATA]}
    entries = [_result_dict(r, *found[id(r)]) for r in breached[:MAX_GROUPS_IN_METADATA]]
    metric = _metric(rule)
    judged = sum(r.judged for r in results)
    metadata: dict = {}
    if breached:
        worst = entries[0]
        more = f" (and {len(breached) - 1} more group(s))" if len(breached) > 1 else ""
        metadata["breach"] = dg.MetadataValue.text(breach_text(metric, worst) + more)
        for name in ("value", "threshold"):
            if worst[name] is not None:
                metadata[name] = formatting.rounded(worst[name])
        metadata.update({
            "group": dg.MetadataValue.json(worst["group"]),
            "attribution": dg.MetadataValue.json(worst["attribution"]),
            "exemplar_trace_ids": dg.MetadataValue.json(worst["exemplar_trace_ids"]),
        })
    else:
        metadata["breach"] = dg.MetadataValue.text(f"none: {judged} group(s) judged within the rule"
                                                   if judged else "no group had enough samples to judge")
    metadata.update({
        "groups_breached": len(breached),
        "groups_judged": judged,
        # history-relative rules: groups not judged yet for lack of history (said, never a silent pass)
        "groups_not_enough_history": sum(r.detail.get("not_judged", "").startswith("not enough history")
                                         for r in results),
        "metric": dg.MetadataValue.text(metric),
        "results": dg.MetadataValue.json(json.loads(json.dumps(entries, default=str))),
        "link": dg.MetadataValue.url(link),
    })
    return not breached, metadata, found


# ---- the rules as asset checks ----------------------------------------------------------------------------
def rule_tables(settings: Settings, asset_keys: Iterable[str]) -> dict[str, list]:
    """Rules by the table (= asset) they read; rules on tables no shipped phase defines are left out, with
    a log line (they come back once the phase ships its table)."""
    present = set(asset_keys)
    out: dict[str, list] = {}
    for rule in settings.alerts.parsed_rules():
        if rule.table not in present:
            log.warning(f"alert rule {rule.name!r} skipped: table {rule.table!r} is not an asset of this code "
                        "location (its phase is not enabled or not shipped yet)")
            continue
        out.setdefault(rule.table, []).append(rule)
    return out


def build_rule_checks(settings: Settings, table: str, rules: list, hourly: dg.HourlyPartitionsDefinition,
                      diagnose: bool = False) -> dg.AssetChecksDefinition:
    """The rules on one table, evaluated hour by hour over the run's window: one evaluation per rule and
    hour (so the UI shows which hours broke which rule after a range run) plus one summary per rule; every
    judged group's result is queued in the store for the alert sensor (results.py)."""

    @dg.multi_asset_check(
        name=f"alerts_{table}_rules",
        specs=[dg.AssetCheckSpec(rule.name, asset=table, description=rule.description or
                                 f"Alert rule ({rule.kind}) on {table}: {_metric(rule)}.") for rule in rules],
        description=f"Alert rules on {table}, hour by hour; the alert sensor turns failures into alerts.",
    )
    def rule_checks(context: dg.AssetCheckExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        start, end = check_run_window(context, hourly)
        present = sa.inspect(engine).has_table(table)
        # with the observability phase on, a breach carries its attribution at once (computed when the phase's
        # tables of the hour are not written yet; the diagnosis run writes them)
        diagnosis = (source.Diagnosis(engine, settings.observability, load_prices(settings.price_overrides))
                     if diagnose else None)
        for rule in rules:
            if not present:
                context.log.warning(f"alert rule {rule.name} skipped: table {table} does not exist in the store yet")
                yield dg.AssetCheckResult(asset_key=table, check_name=rule.name, passed=True,
                                          metadata={"skipped": f"table {table} does not exist yet"})
                continue
            skips = _unchanged_hours(context, engine, rule, table, start, end)  # (issue 23, store/fingerprints.py)
            results = {}
            for first, last in skips.changed_runs(HOUR):
                results.update(_judged_by_window(engine, rule, first, last))
            failing: list[str] = []
            evaluations, queued, now, outcomes = [], [], db.utcnow(), {}
            for hour in hour_starts(start, end):
                if skips.unchanged(hour):  # judged before from the same rows: that evaluation stands
                    if skips.outcome(hour) == "failed":
                        failing.append(hour_key(hour))
                    continue
                link = partition_link(settings.alerts.ui_base_url, table, hour)
                passed, metadata, found = hour_metadata(engine, rule, results.get(hour, []), link, diagnosis)
                evaluations.append(check_evaluation(dg.AssetKey(table), rule.name, hour_key(hour), passed,
                                                    SEVERITY[rule.severity], metadata))
                queued.append(results_queue.row(rule.name, _metric(rule), hour, hour + HOUR, results.get(hour, []),
                                                link, found, context.run.run_id, now))
                if not passed:
                    failing.append(hour_key(hour))
                outcomes[hour] = "passed" if passed else "failed"
            # the alert sensor's input: queued before the evaluations are reported (one insert per rule)
            results_queue.queue(engine, queued)
            skips.record(outcomes)
            yield from evaluations
            yield dg.AssetCheckResult(asset_key=table, check_name=rule.name, passed=not failing,
                                      severity=SEVERITY[rule.severity],
                                      metadata={"partitions_checked": len(hour_starts(start, end)),
                                                "partitions_unchanged": len(skips.kept),
                                                "failing_partitions": failing[:50]})

    return rule_checks


# ---- issue 23 (online evals helper): hours whose inputs did not change are not judged again -----------------
def _unchanged_hours(context, engine, rule, table: str, start: datetime, end: datetime) -> fingerprints.WindowSkips:
    """An hour is judged from the rule and the table's windows it reads (the hour and the rule's history): when
    their write stamps (db.replace_windows) are those of the hour's last judgment, it stands (its outcome kept
    for the summary). A run of the rules job (an explicit request to judge) or tagged obs_pipelines/rescore=true
    judges every hour again."""
    hours = hour_starts(start, end)
    judged = fingerprints.window_fingerprints(engine, [table], hours, HOUR, history_needed(rule),
                                              salt=rule.model_dump(mode="json"))
    # the cause and exemplars are part of the judgment: an hour whose diagnosis tables were written since is
    # judged again, so its alert shows what they now hold. The day's failure clusters are not part of it: they
    # are written after the day's hours are judged, so each re-run would judge the whole day again; an hour
    # names its day's cluster when judged after the clusters exist (the rules job, or rescore=true)
    diagnosis = fingerprints.window_fingerprints(engine, DIAGNOSIS_TABLES, hours, HOUR)
    prints = {h: None if judged[h] is None else fingerprints.digest(judged[h], diagnosis[h]) for h in hours}
    force = context.run.job_name == RULES_JOB or rescore_requested(context.run.tags)
    return fingerprints.WindowSkips(engine, f"alerts:{rule.name}", prints, force=force)


# the hourly tables the causes and exemplars of any family read (alerts/source.py, causes.py)
DIAGNOSIS_TABLES = ("agent_paths", "cost_attribution_hourly", "error_causes_hourly", "eval_scores",
                    "latency_attribution_hourly", "request_rollup_hourly", "retrieval_rollup_hourly",
                    "score_rollup_hourly")


def _judged_by_window(engine, rule, start: datetime, end: datetime) -> dict:
    """The rule's results per hour of [start, end), read and judged a chunk of hours at a time: a backfill of a
    month reads one chunk (plus the history the rule compares with) at a time, never the whole range; a chunk
    is at least as long as that history, so no row is read more than twice."""
    chunk = max(CHUNK, history_needed(rule))
    out: dict = {}
    first = start
    while first < end:
        last = min(first + chunk, end)
        out.update(by_window(evaluate(rule, source.read_rule_frame(engine, rule, first, last), first, last)))
        first = last
    return out


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
    rows = realtime.queue_rows(breaches, _metric, lambda rule, hour: partition_link(
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
