"""Dagster wiring of phase 2, observability: the hourly tables (traces, latency and cost attribution, error
causes, retrieval log and rollup, agent paths), the daily session rollup, their jobs, schedule and automation.

The logic lives in the plain modules next to this file (hourly, requests, attribution, errors, retrieval,
agents, sessions, tree); this module only turns it into assets and jobs, one small builder per family. A run
over a partition range goes hour by hour; each hour's tables are replaced together in one transaction and each
partition's materialization carries its own figures, a preview and its exemplar traces.
"""

from datetime import timedelta

import dagster as dg
import pandas as pd

from obs_pipelines import formatting
from obs_pipelines.hours import day_key, hour_key
from obs_pipelines.markdown import escape_markdown
from obs_pipelines.observability import hourly as logic
from obs_pipelines.observability.tables import (
    DAILY_TABLES,
    HOURLY_TABLES,
    TABLE_COLUMNS,
    agent_paths,
    cost_attribution_hourly,
    error_causes_hourly,
    latency_attribution_hourly,
    prompt_version_comparison_daily,
    retrieval_log,
    retrieval_rollup_hourly,
    session_rollup_daily,
    traces,
)
from obs_pipelines.observability.tree import markdown
from obs_pipelines.orchestration.automation import daily_automation_condition
from obs_pipelines.orchestration.hours import hour_failure
from obs_pipelines.orchestration.metadata import table_spec
from obs_pipelines.orchestration.partitions import daily_partitions, hourly_partitions
from obs_pipelines.orchestration.phase_jobs import build_phase_jobs, job_names
from obs_pipelines.orchestration.raw_assets import SPANS
from obs_pipelines.orchestration.reporting import PartitionReport, emit
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import DAY, HOUR, run_window, windows
from obs_pipelines.pricing import load_prices
from obs_pipelines.settings import Settings
from obs_pipelines.store import db

GROUP = "observability"
HOURLY_JOB, DAILY_JOB = job_names(GROUP)  # observability_hourly_job, observability_daily_job
# runs of one asset family queue on one pool slot: a schedule tick and a backfill never rewrite an hour together
HOURLY_POOL = "observability_hourly"
DAILY_POOL = "observability_daily"
PREVIEW_ROWS = 10

DESCRIPTIONS = {
    traces.name: "One row per request (the shared definition of store/traces.py, the rows monitoring's "
                 "request rollup counts): latency, status and first error with its class and span, spans per "
                 "kind, tokens, cost, models, prompt versions, time per step kind.",
    latency_attribution_hourly.name: "Which step made a route slower: per route and step, p50 / p95 against "
                                     "the same hour of the previous days, the delta, its share of the route's "
                                     "p95 change and its rank in the hour.",
    cost_attribution_hourly.name: "Which route, model, prompt version or user segment made cost move, against "
                                  "the same hour of the previous days, split into volume and unit cost.",
    error_causes_hourly.name: "Errors by class x provider x model x route x failing step: count, share, "
                              "example traces, a representative message. Provider capacity errors are "
                              "provider_5xx (an outage), never rate_limit.",
    retrieval_log.name: "One row per retrieval: query, document ids, scores, ranks, previews, and the flags "
                        "no_documents, all_below_threshold, duplicate_documents.",
    retrieval_rollup_hourly.name: "Retrieval health per route: empty rate, low-score rate, mean top score, mean "
                                  "documents (an empty vector store shows here while latency looks healthy).",
    agent_paths.name: "Per request with tool calls: the ordered tool path and the loop detector (repeated call, "
                      "repeated cycle, near-identical model outputs) with its evidence.",
    prompt_version_comparison_daily.name: "Per day, route and prompt: each version against the previous one — "
                                          "calls, latency p50 / p95, cost per call, error rate, output tokens, "
                                          "Mann-Whitney U / Fisher tests and a verdict (regression, changed, "
                                          "no_change, insufficient_samples).",
    session_rollup_daily.name: "Per session and day, from the traces table: user, first / last seen, turns, "
                               "errors, tokens, cost, routes, whether it ended on an error.",
}


# ---- per-partition figures -------------------------------------------------------------------------------
def preview_table(frame: pd.DataFrame, columns: list[str]) -> str:
    if frame.empty:
        return "_no rows_"
    rows = frame[columns].head(PREVIEW_ROWS)
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = "\n".join("| " + " | ".join(escape_markdown(_fmt(c, v)) for c, v in zip(columns, row, strict=True)) + " |"
                     for row in rows.itertuples(index=False))
    return f"{head}\n{body}"


def _fmt(column: str, value) -> str:
    """A cell for people, in the unit its column's name implies (a share of 35 / 1,563 is 2.2%, not 0.0)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return formatting.metric_value(column, value) if isinstance(value, float) else str(value)


def _first(frame: pd.DataFrame, column: str, default=0.0) -> float:
    return float(frame[column].iloc[0]) if len(frame) and pd.notna(frame[column].iloc[0]) else default


def _exemplars(hour: logic.Hour, rows: pd.DataFrame) -> dict:
    """The slowest and the first failing request of the hour as readable trees."""
    out = {}
    picks = {"slowest_trace": rows.sort_values(["latency_ms", "trace_id"], ascending=[False, True]).head(1),
             "failing_trace": rows[rows["status"] == "error"].sort_values(["start_time", "trace_id"]).head(1)}
    for key, pick in picks.items():
        if pick.empty:
            continue
        trace_id = pick["trace_id"].iloc[0]
        spans = hour.trace_spans(trace_id).to_dict("records")
        out[key] = dg.MetadataValue.md(markdown(spans, f"{key.replace('_', ' ')} {trace_id} "
                                                        f"({pick['latency_ms'].iloc[0]:.0f} ms)"))
    return out


def hourly_figures(frames: dict[str, pd.DataFrame], written: dict[str, int], hour: logic.Hour) -> dict[str, dict]:
    """Each table's metadata for one hour: rows, the numbers the UI plots, a markdown preview."""
    t, lat, cost = frames[traces.name], frames[latency_attribution_hourly.name], frames[cost_attribution_hourly.name]
    cost = cost[cost["route"] == "(all)"]  # the figures are the hour's over every route (not each route's again)
    err, log = frames[error_causes_hourly.name], frames[retrieval_log.name]
    roll, paths = frames[retrieval_rollup_hourly.name], frames[agent_paths.name]
    overall = roll[roll["route"] == "(all)"]
    figures = {
        traces.name: {"requests": len(t), "errors": int((t["status"] == "error").sum()),
                      "latency_p95_ms": float(t["latency_ms"].quantile(0.95)) if len(t) else 0.0,
                      "cost_usd": float(t["cost_usd"].sum()),
                      "preview": dg.MetadataValue.md(preview_table(
                          t.sort_values("latency_ms", ascending=False),
                          ["trace_id", "route", "latency_ms", "status", "error_class", "span_count", "cost_usd"])),
                      **_exemplars(hour, t)},
        latency_attribution_hourly.name: {
            "top_step_delta_ms": _first(lat, "delta_p95_ms"),
            "preview": dg.MetadataValue.md(preview_table(lat, ["rank", "route", "span_name", "p95_ms", "baseline_p95_ms",
                                                           "delta_p95_ms", "share_of_route_change"]))},
        cost_attribution_hourly.name: {
            "cost_usd": float(cost.loc[cost["dimension"] == "route", "cost_usd"].sum()) if len(cost) else 0.0,
            "cost_delta_usd": float(cost.loc[cost["dimension"] == "route", "delta_cost_usd"].sum()) if len(cost)
            else 0.0,
            "preview": dg.MetadataValue.md(preview_table(cost[cost["rank"] <= 3] if len(cost) else cost,
                                                     ["dimension", "dimension_value", "rank", "cost_usd",
                                                      "delta_cost_usd", "driver"]))},
        error_causes_hourly.name: {
            "errors": int(err["error_count"].sum()) if len(err) else 0,
            "outage_errors": int(err.loc[err["error_class"] == "provider_5xx", "error_count"].sum()) if len(err)
            else 0,
            "preview": dg.MetadataValue.md(preview_table(err, ["error_class", "provider", "model", "route",
                                                           "failing_step", "error_count", "share"]))},
        retrieval_log.name: {"retrievals": len(log), "empty": int(log["no_documents"].sum()) if len(log) else 0,
                             "preview": dg.MetadataValue.md(preview_table(log, ["trace_id", "route", "document_count",
                                                                           "top_score", "no_documents"]))},
        retrieval_rollup_hourly.name: {"empty_retrieval_rate": _first(overall, "empty_rate"),
                                       "low_score_rate": _first(overall, "low_score_rate"),
                                       "preview": dg.MetadataValue.md(preview_table(roll, list(roll.columns[2:10])))},
        agent_paths.name: {"agent_traces": len(paths),
                           "loop_count": int(paths["loop_detected"].sum()) if len(paths) else 0,
                           "preview": dg.MetadataValue.md(preview_table(
                               paths.sort_values("total_steps", ascending=False),
                               ["trace_id", "total_steps", "path", "loop_kind"]))},
    }
    for name, meta in figures.items():
        meta["rows"] = written[name]
    return figures


# ---- hourly tables ---------------------------------------------------------------------------------------
def build_hourly_tables(settings: Settings, hourly: dg.HourlyPartitionsDefinition) -> dg.AssetsDefinition:
    minute = settings.observability.schedule_minute
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=2, minutes=minute),
                                               warn_window=timedelta(hours=1, minutes=minute + 20))
    specs = [table_spec(table, TABLE_COLUMNS[name], group=GROUP, description=DESCRIPTIONS[name], deps=[SPANS],
                        freshness=freshness)
             for name, table in HOURLY_TABLES.items()]
    assets = [spec.key.to_user_string() for spec in specs]

    @dg.multi_asset(name="observability_hourly_tables", specs=specs, partitions_def=hourly,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False, pool=HOURLY_POOL)
    def observability_hourly_tables(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        prices = load_prices(settings.price_overrides)
        report = PartitionReport()
        for asset in assets:
            report.common[asset] = {"baseline_days": settings.observability.baseline_days}
        for start, end in windows(*run_window(context), HOUR):
            try:
                frames, hour = logic.hourly_tables(engine, start, end, settings.observability, prices)
                # the hour's tables in one transaction: a kill in between leaves all of them or none
                written = db.replace_windows(engine, start, end, {HOURLY_TABLES[n]: f for n, f in frames.items()})
            except Exception as exc:  # noqa: BLE001 - one bad hour never stops the others of a range run
                report.refuse(hour_key(start),
                              [hour_failure(context, hour_key(start), exc)])
                continue
            for name, metadata in hourly_figures(frames, written, hour).items():
                report.add(name, hour_key(start), metadata)
        yield from emit(context, report, assets)

    return observability_hourly_tables


# ---- daily session rollup --------------------------------------------------------------------------------
def build_daily_tables(settings: Settings, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    # once every hour of the day has its traces, and again when an hour of it is re-run (last 7 days)
    condition = daily_automation_condition()
    deps = {session_rollup_daily.name: [traces.name], prompt_version_comparison_daily.name: [SPANS]}
    specs = [table_spec(table, TABLE_COLUMNS[name], group=GROUP, description=DESCRIPTIONS[name],
                        deps=deps[name], automation_condition=condition)
             for name, table in DAILY_TABLES.items()]
    assets = [spec.key.to_user_string() for spec in specs]

    @dg.multi_asset(name="observability_daily_tables", specs=specs, partitions_def=daily,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False, pool=DAILY_POOL)
    def observability_daily_tables(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        prices = load_prices(settings.price_overrides)
        report = PartitionReport()
        for day_start, day_end in windows(*run_window(context), DAY):
            frames = logic.daily_tables(engine, day_start, day_end, settings.observability, prices)
            written = db.replace_windows(engine, day_start, day_end, {DAILY_TABLES[n]: f for n, f in frames.items()})
            rows = frames[session_rollup_daily.name]
            report.add(session_rollup_daily.name, day_key(day_start), {
                "rows": written[session_rollup_daily.name],
                "sessions": len(rows),
                "mean_turns": float(rows["turns"].mean()) if len(rows) else 0.0,
                "ended_on_error": int(rows["ended_on_error"].sum()) if len(rows) else 0,
                "preview": dg.MetadataValue.md(preview_table(rows.sort_values("turns", ascending=False),
                                                         ["session_id", "user_id", "turns", "errors", "routes",
                                                          "ended_on_error"]))})
            comparison = frames[prompt_version_comparison_daily.name]
            report.add(prompt_version_comparison_daily.name, day_key(day_start), {
                "rows": written[prompt_version_comparison_daily.name],
                "regressions": int((comparison["verdict"] == "regression").sum()),
                "changed": int((comparison["verdict"] == "changed").sum()),
                "preview": dg.MetadataValue.md(preview_table(comparison, ["route", "prompt_name", "prompt_version",
                                                                     "previous_version", "calls", "verdict",
                                                                     "reasons"]))})
        yield from emit(context, report, assets)

    return observability_daily_tables


# ---- jobs, schedule, automation --------------------------------------------------------------------------
def build_automation(settings: Settings,
                     hourly_tables: dg.AssetsDefinition, daily_tables: dg.AssetsDefinition) -> dg.Definitions:
    minute = settings.observability.schedule_minute
    return build_phase_jobs(
        GROUP,
        hourly_assets=[hourly_tables],
        hourly_description="Each hour: traces, attribution, error causes, retrieval, agent paths.",
        daily_assets=[daily_tables],
        daily_description="Sessions per day (from the traces table) and prompt versions compared.",
        schedule_minute=minute,
        schedule_description=f"Builds each hour's observability tables {minute} minutes after it closes (after "
                             "monitoring).",
        automation_description="Materializes each day's session rollup once its hours have traces, and after a "
                               "late hour.",
    ).definitions()


# the phase's jobs in the order `obs-pipelines run observability` runs them
JOBS = (HOURLY_JOB, DAILY_JOB)


def build_defs(settings: Settings) -> dg.Definitions:
    hourly, daily = hourly_partitions(settings), daily_partitions(settings)
    hourly_tables = build_hourly_tables(settings, hourly)
    daily_tables = build_daily_tables(settings, daily)
    return dg.Definitions.merge(
        dg.Definitions(assets=[hourly_tables, daily_tables]),
        build_automation(settings, hourly_tables, daily_tables),
    )
