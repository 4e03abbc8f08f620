"""Dagster wiring of phase 1, monitoring: hourly rollups, SLO status, daily rollups, data-quality checks,
the hourly schedule, the late-data sensor and the automation of the daily rollups.

The logic lives in the plain modules next to this file (rollups, slo, quality, late_data, summary);
this module only turns it into assets, checks, jobs, schedules and sensors.

Runs over a partition range (a backfill with ``BackfillPolicy.single_run()``) process the range hour by
hour inside one run: each hour's spans are read once, and each hour's tables are replaced on their own.
"""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.monitoring import quality, rollups, summary
from obs_pipelines.monitoring.late_data import HOUR_KEY_FORMAT, hour_key, late_partition_keys
from obs_pipelines.monitoring.slo import slo_status
from obs_pipelines.monitoring.tables import (
    DAILY_TABLES,
    HOURLY_TABLES,
    TABLE_COLUMNS,
    quality_checks_hourly,
    request_rollup_hourly,
    slo_status_hourly,
)
from obs_pipelines.pricing import load_prices
from obs_pipelines.raw_assets import SPANS, daily_partitions, hourly_partitions
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.store.resource import TraceStore

GROUP = "monitoring"
HOURLY_JOB = "monitoring_hourly_job"
DAILY_JOB = "monitoring_daily_job"
SLO_COMPLIANCE_HOURS = 720  # trailing 30 days of hourly windows for attainment and error budget
ARRIVAL_ID_SEEN = "arrival_id_seen"  # metadata: newest span_arrivals id visible when the rollup read spans

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
DAILY_NOTE = (" Daily, summed from the hourly table; latency percentiles are recomputed exactly from the "
              "day's spans (hourly percentiles cannot be merged).")


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _steps(window: dg.TimeWindow, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    start, end = _naive_utc(window.start), _naive_utc(window.end)
    while start < end:
        yield start, start + step
        start += step


def run_time_window(context: dg.OpExecutionContext, partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.TimeWindow:
    """The run's time window, from its partition tags (single partition or range); works in check ops too."""
    tags = context.run.tags
    if "dagster/partition" in tags:
        first = last = tags["dagster/partition"]
    else:
        first = tags["dagster/asset_partition_range_start"]
        last = tags["dagster/asset_partition_range_end"]
    return dg.TimeWindow(
        partitions_def.time_window_for_partition_key(first).start,
        partitions_def.time_window_for_partition_key(last).end,
    )


def table_schema(table_name: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(c["name"], c["type"], description=c["description"]) for c in TABLE_COLUMNS[table_name]]
    )


def _table_spec(table, description: str, deps, automation_condition=None, freshness=None) -> dg.AssetSpec:
    return dg.AssetSpec(
        table.name,
        group_name=GROUP,
        description=description,
        deps=deps,
        kinds={"sql", "pandas"},
        metadata={"dagster/column_schema": table_schema(table.name), "dagster/table_name": table.name},
        automation_condition=automation_condition,
        freshness_policy=freshness,
    )


def _report(context: dg.AssetExecutionContext, asset_key: str, figures_by_key: dict[str, dict],
            preview: str | None) -> dg.MaterializeResult:
    """One partition: its figures as metadata (plotted across partitions in the UI). A range: totals on the
    materialization and each partition's figures as an observation, so the per-partition plots stay true."""
    if len(figures_by_key) == 1:
        (figures,) = figures_by_key.values()
        metadata = dict(figures)
    else:
        for key, figures in figures_by_key.items():
            context.log_event(dg.AssetObservation(asset_key=asset_key, partition=key, metadata=figures))
        metadata = summary.totals(figures_by_key)
        metadata["first_partition"], metadata["last_partition"] = min(figures_by_key), max(figures_by_key)
    if preview is not None:
        metadata["preview"] = dg.MetadataValue.md(preview)
    return dg.MaterializeResult(asset_key=asset_key, metadata=metadata)


def _roll_up_windows(context: dg.AssetExecutionContext, engine, tables: dict, step: timedelta, key_format: str,
                     compute) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """Compute and replace each window of the run (``compute(start, end) -> frames by kind``), one at a
    time; returns each table's figures by partition key and the last window's previews."""
    figures: dict[str, dict[str, dict]] = {kind: {} for kind in tables}
    previews: dict[str, str] = {}
    for start, end in _steps(context.partition_time_window, step):
        for kind, frame in compute(start, end).items():
            rows = rollups.write_rollup(engine, tables[kind], start, end, frame)
            figures[kind][start.strftime(key_format)] = {**summary.FIGURES[kind](frame), "rows": rows}
            previews[kind] = summary.preview(kind, frame)
    return figures, previews


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


def build_defs(settings: Settings) -> dg.Definitions:
    hourly = hourly_partitions(settings)
    daily = daily_partitions(settings)

    # ---- data quality of the raw spans --------------------------------------------------------------
    severity = {quality.ERROR: dg.AssetCheckSeverity.ERROR, quality.WARN: dg.AssetCheckSeverity.WARN}

    @dg.multi_asset_check(
        name="spans_quality_checks",
        specs=[
            dg.AssetCheckSpec(name, asset=SPANS, blocking=level == quality.ERROR,
                              description=f"{'Blocks the rollups' if level == quality.ERROR else 'Warns'}: "
                                          f"{text} (great-expectations).")
            for name, level, text in quality.CHECK_CATALOG
        ],
        description="Great-expectations checks of each hourly partition of spans; results also land in "
                    "the quality_checks_hourly table.",
    )
    def spans_quality_checks(context: dg.AssetCheckExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        by_check: dict[str, list[tuple[str, quality.QualityCheckResult]]] = {}
        for start, end in _steps(run_time_window(context.op_execution_context, hourly), timedelta(hours=1)):
            results = quality.check_partition(engine, start, end, settings.null_model_share_max)
            db.replace_window(engine, quality_checks_hourly, start, end, quality.results_frame(results, start, end))
            for result in results:
                by_check.setdefault(result.name, []).append((hour_key(start), result))
        for name, level, _text in quality.CHECK_CATALOG:
            hours = by_check.get(name, [])
            failing = [(key, r) for key, r in hours if not r.passed]
            examples = [e for _key, r in failing for e in r.examples][: quality.MAX_EXAMPLES]
            observed = [r.observed for _key, r in hours if r.observed is not None]
            metadata = {
                "failing_count": sum(r.failing_count for _key, r in hours),
                "rows_checked": sum(r.row_count for _key, r in hours),
                "partitions_checked": len(hours),
                "failing_partitions": [key for key, _r in failing][:50],
                "examples": dg.MetadataValue.json(json.loads(json.dumps(examples, default=str))),
            }
            if observed:
                metadata["observed_max"] = float(max(observed))
            yield dg.AssetCheckResult(
                asset_key=SPANS, check_name=name, passed=not failing, severity=severity[level], metadata=metadata
            )

    # ---- hourly rollups -----------------------------------------------------------------------------
    # the schedule refreshes the hourly tables every hour: stale after two missed hours
    hourly_freshness = dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=2, minutes=settings.schedule_delay_minutes),
        warn_window=timedelta(hours=1, minutes=settings.schedule_delay_minutes + 20),
    )
    hourly_specs = [
        _table_spec(table, HOURLY_DESCRIPTIONS[kind], deps=[SPANS], freshness=hourly_freshness)
        for kind, table in HOURLY_TABLES.items()
    ]

    @dg.multi_asset(
        name="monitoring_hourly_rollups",
        specs=hourly_specs,
        partitions_def=hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
    )
    def monitoring_hourly_rollups(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        prices = load_prices(settings.price_overrides)
        arrival_id_seen = db.last_arrival_id(engine)  # before reading: later arrivals are late data
        figures, previews = _roll_up_windows(
            context, engine, HOURLY_TABLES, timedelta(hours=1), HOUR_KEY_FORMAT,
            lambda start, end: rollups.hourly_rollups(engine, start, end, prices, settings.top_n_users),
        )
        context.log.info(f"rolled up {len(figures['request'])} hours with prices {prices.version}")
        for kind, table in HOURLY_TABLES.items():
            result = _report(context, table.name, figures[kind], previews.get(kind))
            extra = {ARRIVAL_ID_SEEN: arrival_id_seen}
            if kind == "usage":
                extra["price_version"] = prices.version
            yield result._replace(metadata={**result.metadata, **extra})

    # ---- SLO status -----------------------------------------------------------------------------------
    @dg.asset(
        name=slo_status_hourly.name,
        group_name=GROUP,
        partitions_def=hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[request_rollup_hourly.name],
        kinds={"sql", "pandas"},
        description="SLO status per hour for every SLO in the settings: measured value, met or not, attainment "
                    f"and error budget over the trailing {SLO_COMPLIANCE_HOURS} hours, burn rates over 1 h and 6 h.",
        metadata={"dagster/column_schema": table_schema(slo_status_hourly.name),
                  "dagster/table_name": slo_status_hourly.name},
    )
    def slo_status_hourly_asset(context: dg.AssetExecutionContext, trace_store: TraceStore) -> dg.MaterializeResult:
        engine = trace_store.engine
        window = context.partition_time_window
        start, end = _naive_utc(window.start), _naive_utc(window.end)
        history = rollups.fetch_frame(
            engine,
            f"SELECT * FROM {request_rollup_hourly.name} WHERE window_start >= :start AND window_start < :end",
            {"start": start - timedelta(hours=SLO_COMPLIANCE_HOURS - 1), "end": end},
        )
        status = slo_status(history, [s.model_dump() for s in settings.slos], SLO_COMPLIANCE_HOURS)
        if not status.empty:
            starts = pd.to_datetime(status["window_start"])
            status = status[(starts >= start) & (starts < end)]
        rows = rollups.write_rollup(engine, slo_status_hourly, start, end, status)
        metadata: dict = {"slos": len(settings.slos), "rows": rows}
        if not status.empty:
            latest = status[pd.to_datetime(status["window_start"]) == pd.to_datetime(status["window_start"]).max()]
            metadata["slos_breached"] = int((latest["met"] == False).sum())  # noqa: E712 (nullable)
            metadata["worst_burn_rate_1h"] = float(pd.to_numeric(latest["burn_rate_1h"]).fillna(0).max())
            metadata["min_error_budget_remaining"] = float(
                pd.to_numeric(latest["error_budget_remaining"]).replace(float("-inf"), -1e9).fillna(1).min()
            )
            metadata["preview"] = dg.MetadataValue.md(summary.markdown_table(
                latest, ["slo_name", "value", "objective", "met", "attainment", "error_budget_remaining",
                         "burn_rate_1h", "burn_rate_6h"]))
        return dg.MaterializeResult(metadata=metadata)

    # ---- daily rollups --------------------------------------------------------------------------------
    # Materialize a day once all its hours are rolled up, and again when a late hour is re-rolled;
    # limited to the last week so switching the phase on does not launch a history-long backfill.
    daily_condition = (
        dg.AutomationCondition.in_latest_time_window(timedelta(days=7))
        & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("complete day, or an hour of it updated (last 7 days)")
    daily_specs = [
        _table_spec(table, HOURLY_DESCRIPTIONS[kind] + DAILY_NOTE, deps=[HOURLY_TABLES[kind].name],
                    automation_condition=daily_condition,
                    freshness=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=27),
                                                             warn_window=timedelta(hours=25)))
        for kind, table in DAILY_TABLES.items()
    ]

    @dg.multi_asset(
        name="monitoring_daily_rollups",
        specs=daily_specs,
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
    )
    def monitoring_daily_rollups(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        figures, previews = _roll_up_windows(
            context, engine, DAILY_TABLES, timedelta(days=1), "%Y-%m-%d",
            lambda day_start, _day_end: rollups.daily_rollups(engine, day_start),
        )
        for kind, table in DAILY_TABLES.items():
            yield _report(context, table.name, figures[kind], previews.get(kind))

    # ---- jobs, schedule, sensors ---------------------------------------------------------------------
    hourly_job = dg.define_asset_job(
        HOURLY_JOB,
        selection=dg.AssetSelection.assets(monitoring_hourly_rollups, slo_status_hourly_asset)
        | dg.AssetSelection.checks_for_assets(SPANS),
        partitions_def=hourly,
        description="Quality checks of the hour's spans, then the hourly rollups and SLO status.",
    )
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(monitoring_daily_rollups),
        partitions_def=daily,
        description="Daily rollups from the hourly tables (the automation sensor runs it when a day is complete).",
    )
    hourly_schedule = dg.build_schedule_from_partitioned_job(
        hourly_job,
        name="monitoring_hourly_schedule",
        minute_of_hour=settings.schedule_delay_minutes,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Rolls up each hour {settings.schedule_delay_minutes} minutes after it closes.",
    )

    @dg.sensor(
        name="monitoring_late_data_sensor",
        job=hourly_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-runs the hourly rollups of exactly the hours that received spans after they were rolled up.",
    )
    def late_data_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        engine = trace_store.engine
        if not sa.inspect(engine).has_table("span_arrivals"):
            return dg.SensorResult(skip_reason="no spans ingested yet")
        after = json.loads(context.cursor)["arrival_id"] if context.cursor else 0
        arrivals = db.pending_arrivals(engine, after)
        if not arrivals:
            return dg.SensorResult(skip_reason="no spans arrived since the last tick")
        candidates = sorted({hour_key(hour) for _id, hour, _at in arrivals})
        seen = arrival_ids_seen(context.instance, dg.AssetKey(request_rollup_hourly.name), candidates)
        keys, last_id = late_partition_keys(arrivals, seen)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(partition_key=key, run_key=f"late:{key}:{last_id}",
                              tags={"obs_pipelines/reason": "late_data"})
                for key in keys
            ],
            cursor=json.dumps({"arrival_id": last_id}),
        )

    automation_sensor = dg.AutomationConditionSensorDefinition(
        "monitoring_automation_sensor",
        target=dg.AssetSelection.groups(GROUP),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Materializes each daily rollup once its 24 hours are rolled up, and again after a late hour.",
    )

    return dg.Definitions(
        assets=[monitoring_hourly_rollups, slo_status_hourly_asset, monitoring_daily_rollups],
        asset_checks=[spans_quality_checks],
        jobs=[hourly_job, daily_job],
        schedules=[hourly_schedule],
        sensors=[late_data_sensor, automation_sensor],
    )
