"""Dagster wiring of phase 1, monitoring: hourly rollups with their quality gate and SLO status, daily
rollups, the on-demand data-quality checks of spans, the hourly schedule, the late-data sensor and the
automation of the daily rollups.

The logic lives in the plain modules next to this file (rollups, slo, quality, gate, late_data, summary);
this module only turns it into assets, checks, jobs, schedules and sensors, one small builder per family.

A run over a partition range (a backfill with ``BackfillPolicy.single_run()``) goes hour by hour: each hour
passes the quality gate or is refused with its reasons, and each hour's tables are replaced on their own.
Each partition's materialization carries that partition's own figures (orchestration.reporting).
"""

import json
import math
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines import formatting
from obs_pipelines.hours import contiguous_ranges, day_key, hour_key
from obs_pipelines.monitoring import gate, late_data, quality, rollups, summary
from obs_pipelines.monitoring.slo import slo_status
from obs_pipelines.monitoring.tables import (
    DAILY_TABLES,
    HOURLY_TABLES,
    TABLE_COLUMNS,
    request_rollup_hourly,
    slo_status_hourly,
)
from obs_pipelines.orchestration.automation import daily_automation_condition
from obs_pipelines.orchestration.hours import hour_failure
from obs_pipelines.orchestration.metadata import table_spec
from obs_pipelines.orchestration.partitions import (
    daily_partitions,
    hourly_partitions,
    range_tags,
)
from obs_pipelines.orchestration.phase_jobs import build_phase_jobs, job_names
from obs_pipelines.orchestration.raw_assets import SPANS
from obs_pipelines.orchestration.reporting import (
    PartitionReport,
    check_evaluation,
    emit,
)
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import DAY, HOUR, check_run_window, run_window, windows
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.store.query import read_window

GROUP = "monitoring"
HOURLY_JOB, DAILY_JOB = job_names(GROUP)  # monitoring_hourly_job, monitoring_daily_job
# runs of the same asset family queue on one pool slot (dagster.yaml sets the limit): a schedule tick, the
# late-data sensor and a backfill over the same hour then never replace its tables at the same time
HOURLY_POOL = "monitoring_hourly"
DAILY_POOL = "monitoring_daily"
SLO_COMPLIANCE_HOURS = 720  # trailing 30 days of hourly windows for attainment and error budget
ARRIVAL_ID_SEEN = "arrival_id_seen"  # metadata: newest span_arrivals id visible when the rollup read spans
SEVERITY = {quality.ERROR: dg.AssetCheckSeverity.ERROR, quality.WARN: dg.AssetCheckSeverity.WARN}

HOURLY_DESCRIPTIONS = {
    "request": "Requests per hour: count, throughput, errors and exact latency percentiles, overall, by "
               "route (traces), by model and by prompt version (llm calls).",
    "step": "Step latency per hour by span kind and span name: which step got slow.",
    "error": "Errors per hour by error class (rate_limit, provider_5xx, timeout, context_length, "
             "invalid_request, auth, tool_error, guardrail_block, other) and by provider, with an example trace.",
    "usage": "Tokens and USD cost per hour by model, route, prompt version and user segment (top N users + "
             "other). Cost is the app's cost_usd when reported, else tokens x genai-prices (+ overrides); "
             "price_version records the table used.",
}
GATE_NOTE = (" An hour is rolled up only once its spans pass the blocking data-quality checks; an hour that "
             "fails them is reported as failed with the checks and example spans.")
DAILY_NOTE = (" Daily, summed from the hourly table; latency percentiles are recomputed exactly from the "
              "day's spans (hourly percentiles cannot be merged).")


def _figures(kind: str, frame: pd.DataFrame, rows: int) -> dict:
    return {**summary.FIGURES[kind](frame), "rows": rows, "preview": dg.MetadataValue.md(summary.preview(kind, frame))}


def arrival_ids_seen(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_keys: list[str]) -> dict[str, int]:
    """For each rolled-up partition among ``partition_keys``: the arrival id its latest rollup had seen
    (-1 when the materialization did not record it, so any arrival counts as late)."""
    seen: dict[str, int] = {}
    for i in range(0, len(partition_keys), 500):
        chunk = partition_keys[i:i + 500]
        cursor = None
        while True:  # newest first, page by page, until every partition of the chunk is found
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=chunk), limit=1000, cursor=cursor
            )
            for record in page.records:
                materialization = record.asset_materialization
                if materialization is None or materialization.partition in seen:
                    continue
                value = materialization.metadata.get(ARRIVAL_ID_SEEN)
                seen[materialization.partition] = int(value.value) if value is not None else -1
            if not page.has_more or all(key in seen for key in chunk):
                break
            cursor = page.cursor
    return seen


def _check_metadata(results: list[quality.QualityCheckResult]) -> dict:
    observed = [r.observed for r in results if r.observed is not None]
    examples = [e for r in results if not r.passed for e in r.examples][: quality.MAX_EXAMPLES]
    metadata = {
        "failing_count": sum(r.failing_count for r in results),
        "rows_checked": sum(r.row_count for r in results),
        "examples": dg.MetadataValue.json(json.loads(json.dumps(examples, default=str))),
    }
    if observed:
        metadata["observed_max"] = float(max(observed))
    return metadata


def _hour_check_evaluations(key: str, results: list[quality.QualityCheckResult]) -> list[dg.AssetCheckEvaluation]:
    """The hour's result of every spans check, recorded against that hour's partition."""
    return [check_evaluation(SPANS, r.name, key, r.passed, SEVERITY[r.severity], _check_metadata([r]))
            for r in results]


# ---- data quality of the raw spans ------------------------------------------------------------------------
def build_quality_checks(settings: Settings, hourly: dg.HourlyPartitionsDefinition) -> dg.AssetChecksDefinition:
    """The spans checks as asset checks. The hourly rollups run the same checks as their gate and record
    each hour's result against these checks; this op runs them on demand ("Execute checks" on spans)."""

    @dg.multi_asset_check(
        name="spans_quality_checks",
        specs=[
            dg.AssetCheckSpec(name, asset=SPANS,
                              description=f"{'Gates the hourly rollups' if level == quality.ERROR else 'Warns'}: "
                                          f"{text} (great-expectations).")
            for name, level, text in quality.CHECK_CATALOG
        ],
        description="Great-expectations checks of hourly partitions of spans, hour by hour; results also land "
                    "in the quality_checks_hourly table. The hourly rollups run them too, as their gate.",
    )
    def spans_quality_checks(context: dg.AssetCheckExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        by_check: dict[str, list[quality.QualityCheckResult]] = {}
        failing_hours: dict[str, list[str]] = {}
        for start, end in windows(*check_run_window(context, hourly), HOUR):
            results = gate.check_hour(engine, start, end, settings.null_model_share_max)
            yield from _hour_check_evaluations(hour_key(start), results)
            for result in results:
                by_check.setdefault(result.name, []).append(result)
                if not result.passed:
                    failing_hours.setdefault(result.name, []).append(hour_key(start))
        for name, level, _text in quality.CHECK_CATALOG:
            results = by_check.get(name, [])
            metadata = {**_check_metadata(results), "partitions_checked": len(results),
                        "failing_partitions": failing_hours.get(name, [])[:50]}
            yield dg.AssetCheckResult(asset_key=SPANS, check_name=name, severity=SEVERITY[level],
                                      passed=name not in failing_hours, metadata=metadata)

    return spans_quality_checks


# ---- hourly rollups, their gate and SLO status --------------------------------------------------------------
def _slo_frame(engine, settings: Settings, start: datetime, end: datetime) -> pd.DataFrame:
    """SLO status of every hour in [start, end), from the request rollup's trailing history."""
    history = read_window(engine, request_rollup_hourly, start - timedelta(hours=SLO_COMPLIANCE_HOURS - 1), end,
                          time_column="window_start", typed=False)
    return slo_status(history, [s.model_dump() for s in settings.slos], SLO_COMPLIANCE_HOURS)


def budget_history_needed(target: float) -> float:
    """Judged hours before an error budget means something: the budget allows (1 - target) x judged bad hours,
    so under 1 / (1 - target) hours it does not allow a single one (99%: 100 hours), and one bad hour shows
    as an overspent budget (-525%) on a fresh deployment."""
    return math.inf if target >= 1 else 1.0 / (1.0 - target)


def error_budget_text(remaining, judged, target) -> str:
    """The error budget remaining for people: a percentage, or "not enough history" (see above)."""
    needed = budget_history_needed(float(target))
    if pd.isna(judged) or float(judged) < needed:
        return (f"not enough history ({int(judged or 0)} of {needed:.0f} judged hours)" if math.isfinite(needed)
                else "no budget (target 100%)")
    return formatting.percent(remaining)


def _slo_figures(status: pd.DataFrame, slos: int, rows: int) -> dict:
    metadata: dict = {"slos": slos}
    if status.empty:
        return {**metadata, "rows": rows}
    metadata["slos_breached"] = int((status["met"] == False).sum())  # noqa: E712 (nullable)
    metadata["worst_burn_rate_1h"] = float(pd.to_numeric(status["burn_rate_1h"]).fillna(0).max())
    budgets = [(r.slo_name, r.error_budget_remaining, r.windows_judged, r.target) for r in status.itertuples()]
    enough = [float(b) for _, b, judged, target in budgets
              if pd.notna(judged) and float(judged) >= budget_history_needed(float(target)) and pd.notna(b)]
    if enough:  # plotted only when it means something
        metadata["min_error_budget_remaining"] = max(min(enough), -1e9)
    metadata["error_budget"] = dg.MetadataValue.md("\n".join(
        f"- {name}: {error_budget_text(b, judged, target)}" for name, b, judged, target in budgets))
    shown = status.assign(error_budget_remaining=[error_budget_text(b, j, t) for _, b, j, t in budgets])
    metadata["preview"] = dg.MetadataValue.md(summary.markdown_table(
        shown, ["slo_name", "value", "objective", "met", "attainment", "error_budget_remaining",
                "burn_rate_1h", "burn_rate_6h"]))
    metadata["rows"] = rows
    return metadata


def build_hourly_rollups(settings: Settings, hourly: dg.HourlyPartitionsDefinition) -> dg.AssetsDefinition:
    # the schedule refreshes the hourly tables every hour: stale after two missed hours
    freshness = dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=2, minutes=settings.schedule_delay_minutes),
        warn_window=timedelta(hours=1, minutes=settings.schedule_delay_minutes + 20),
    )
    specs = [
        table_spec(table, TABLE_COLUMNS[table.name], group=GROUP, description=HOURLY_DESCRIPTIONS[kind] + GATE_NOTE,
                   deps=[SPANS], freshness=freshness)
        for kind, table in HOURLY_TABLES.items()
    ]
    specs.append(table_spec(
        slo_status_hourly, TABLE_COLUMNS[slo_status_hourly.name], group=GROUP, deps=[request_rollup_hourly.name],
        description="SLO status per hour for every SLO in the settings: measured value, met or not, attainment "
                    f"and error budget over the trailing {SLO_COMPLIANCE_HOURS} hours, burn rates over 1 h and 6 h."))
    assets = [spec.key.to_user_string() for spec in specs]

    @dg.multi_asset(
        name="monitoring_hourly_rollups",
        specs=specs,
        partitions_def=hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=HOURLY_POOL,
    )
    def monitoring_hourly_rollups(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        prices = load_prices(settings.price_overrides)
        report = PartitionReport()
        arrival_id_seen = db.last_arrival_id(engine)  # before reading: later arrivals are late data
        for asset in assets:
            report.common[asset] = {ARRIVAL_ID_SEEN: arrival_id_seen}
        report.common[HOURLY_TABLES["usage"].name]["price_version"] = prices.version
        run_start, run_end = run_window(context)
        passed: list[datetime] = []
        for start, end in windows(run_start, run_end, HOUR):
            key = hour_key(start)
            results = gate.check_hour(engine, start, end, settings.null_model_share_max)
            yield from _hour_check_evaluations(key, results)
            reasons = gate.blocking_reasons(results)
            if reasons:
                report.refuse(key, reasons)
                continue
            try:
                frames = rollups.hourly_rollups(engine, start, end, prices, settings.top_n_users)
                # the hour's tables in one transaction: a kill in between leaves all of them or none
                written = db.replace_windows(engine, start, end, {HOURLY_TABLES[kind]: f for kind, f in frames.items()})
            except Exception as exc:  # noqa: BLE001 - one bad hour never stops the others of a range run
                report.refuse(key, [hour_failure(context, key, exc)])
                continue
            for kind, frame in frames.items():
                report.add(HOURLY_TABLES[kind].name, key, _figures(kind, frame, written[HOURLY_TABLES[kind].name]))
            passed.append(start)
        if passed:  # SLO status of the rolled-up hours, from the request rollups just written
            status = _slo_frame(engine, settings, min(passed), max(passed) + HOUR)
            starts = pd.to_datetime(status["window_start"]) if not status.empty else None
            for start in passed:
                hour_status = status[starts == pd.Timestamp(start)] if starts is not None else status
                rows = db.replace_window(engine, slo_status_hourly, start, start + HOUR, hour_status)
                report.add(slo_status_hourly.name, hour_key(start), _slo_figures(hour_status, len(settings.slos), rows))
        context.log.info(f"rolled up {len(passed)} hours, refused {len(report.refused)}, prices {prices.version}")
        yield from emit(context, report, assets)

    return monitoring_hourly_rollups


# ---- daily rollups ------------------------------------------------------------------------------------------
def build_daily_rollups(settings: Settings, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    # Materialize a day once all its hours are rolled up, and again when a late hour is re-rolled (last 7 days)
    condition = daily_automation_condition()
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=27), warn_window=timedelta(hours=25))
    specs = [
        table_spec(table, TABLE_COLUMNS[table.name], group=GROUP, description=HOURLY_DESCRIPTIONS[kind] + DAILY_NOTE,
                   deps=[HOURLY_TABLES[kind].name], automation_condition=condition, freshness=freshness)
        for kind, table in DAILY_TABLES.items()
    ]
    assets = [spec.key.to_user_string() for spec in specs]

    @dg.multi_asset(
        name="monitoring_daily_rollups",
        specs=specs,
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=DAILY_POOL,
    )
    def monitoring_daily_rollups(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        report = PartitionReport()
        for day_start, day_end in windows(*run_window(context), DAY):
            frames = rollups.daily_rollups(engine, day_start)
            written = db.replace_windows(engine, day_start, day_end, {DAILY_TABLES[k]: f for k, f in frames.items()})
            for kind, frame in frames.items():
                report.add(DAILY_TABLES[kind].name, day_key(day_start),
                           _figures(kind, frame, written[DAILY_TABLES[kind].name]))
        yield from emit(context, report, assets)

    return monitoring_daily_rollups


# ---- jobs, schedule, sensors ---------------------------------------------------------------------------------
def build_late_data_sensor(settings: Settings, hourly_job) -> dg.SensorDefinition:
    lookback = timedelta(hours=settings.late_data_lookback_hours)
    # the schedule takes an hour at :delay after it closes; the sensor steps in for an hour it has not taken
    # only after a grace period (an hour already rolled up is re-rolled at once)
    scheduled_after = timedelta(minutes=settings.schedule_delay_minutes + 10)

    @dg.sensor(
        name="monitoring_late_data_sensor",
        job=hourly_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rolls up every hour that received spans since its last rollup, or was never rolled up "
                    f"(late files, bulk loads), up to {settings.late_data_lookback_hours} hours back; older hours "
                    "are named in the skip message with the backfill command.",
    )
    def late_data_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        engine = trace_store.engine
        if not sa.inspect(engine).has_table("span_arrivals"):
            return dg.SensorResult(skip_reason="no spans ingested yet")
        cursor = json.loads(context.cursor) if context.cursor else {}
        after = cursor.get("arrival_id", 0)
        newest, last_id = late_data.newest_arrival_by_hour(db.pending_arrivals(engine, after),
                                                           cursor.get("waiting", {}))
        if not newest:
            return dg.SensorResult(skip_reason="no spans arrived since the last tick")
        seen = arrival_ids_seen(context.instance, dg.AssetKey(request_rollup_hourly.name), sorted(newest))
        now = db.utcnow()
        # the grace keeps the sensor from racing the schedule for an hour it has not taken yet; an hour already
        # rolled up has nothing to race for: its late spans are rolled up at once
        rolled = {k: v for k, v in newest.items() if k in seen}
        plan = late_data.plan_rollups({k: v for k, v in newest.items() if k not in rolled}, seen, now,
                                      scheduled_after, lookback)
        again = late_data.plan_rollups(rolled, seen, now, timedelta(0), lookback)
        plan.due, plan.too_old = sorted(plan.due + again.due), sorted(plan.too_old + again.too_old)
        plan.waiting.update(again.waiting)
        next_cursor = json.dumps({"arrival_id": max(after, last_id or 0), "waiting": plan.waiting})
        hint = late_data.backfill_hint(plan.too_old) if plan.too_old else None
        if not plan.due:
            return dg.SensorResult(skip_reason=hint or "no hour due: the schedule takes the newest hours",
                                   cursor=next_cursor)
        if hint:
            context.log.warning(hint)
        run_id_of_arrivals = max(newest[k] for k in plan.due)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(run_key=f"late:{first}:{last}:{run_id_of_arrivals}",
                              tags={**range_tags(first, last), "obs_pipelines/reason": "late_data"})
                for first, last in contiguous_ranges(plan.due)
            ],
            cursor=next_cursor,
        )

    return late_data_sensor


def build_automation(settings: Settings,
                     hourly_rollups: dg.AssetsDefinition, daily_rollups: dg.AssetsDefinition) -> dg.Definitions:
    jobs = build_phase_jobs(
        GROUP,
        hourly_assets=[hourly_rollups],
        hourly_description="Each hour: the quality gate on its spans, then the hourly rollups and SLO status.",
        daily_assets=[daily_rollups],
        daily_description="Daily rollups from the hourly tables (the automation sensor runs it when a day is "
                          "complete).",
        schedule_minute=settings.schedule_delay_minutes,
        schedule_description=f"Rolls up each hour {settings.schedule_delay_minutes} minutes after it closes.",
        automation_target=dg.AssetSelection.groups(GROUP),
        automation_description="Materializes each daily rollup once its 24 hours are rolled up, and again after a "
                               "late hour.",
    )
    return jobs.definitions(build_late_data_sensor(settings, jobs.hourly_job))


# the phase's jobs in the order `obs-pipelines run monitoring` runs them
JOBS = (HOURLY_JOB, DAILY_JOB)


def build_defs(settings: Settings) -> dg.Definitions:
    hourly, daily = hourly_partitions(settings), daily_partitions(settings)
    hourly_rollups = build_hourly_rollups(settings, hourly)
    daily_rollups = build_daily_rollups(settings, daily)
    return dg.Definitions.merge(
        dg.Definitions(assets=[hourly_rollups, daily_rollups], asset_checks=[build_quality_checks(settings, hourly)]),
        build_automation(settings, hourly_rollups, daily_rollups),
    )
