"""Dagster wiring of the reports: the dashboard page (refreshed after each hourly monitoring run) and the SLA
reports per day, ISO week and calendar month (partitioned, backfillable).

The pages are built by plain modules (pages.py, output.py); this module turns them into assets whose
materializations carry the headline figures as numbers, a markdown summary with the charts (PNG data URIs: the
UI's markdown sanitizer allows ``data:`` image sources, see docs/reports.md) and the location of the HTML.
"""


import base64
from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from obs_pipelines.markdown import escape_markdown
from obs_pipelines.monitoring.tables import (
    error_rollup_hourly,
    request_rollup_hourly,
    slo_status_hourly,
    step_rollup_hourly,
    usage_rollup_hourly,
)
from obs_pipelines.online_evals.tables import score_rollup_hourly
from obs_pipelines.orchestration.automation import daily_automation_condition
from obs_pipelines.orchestration.reporting import PartitionReport, emit
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import run_window
from obs_pipelines.reports import sla
from obs_pipelines.reports.output import public_url, write_report
from obs_pipelines.reports.pages import Report, build_dashboard, build_sla
from obs_pipelines.settings import Settings

GROUP = "reports"
DASHBOARD = "reports_dashboard"
SLA_ASSETS = {"day": "reports_sla_daily", "week": "reports_sla_weekly", "month": "reports_sla_monthly"}
DASHBOARD_JOB = "reports_dashboard_job"
SLA_JOBS = {kind: f"{asset}_job" for kind, asset in SLA_ASSETS.items()}
MD_CHARTS = 3  # charts inlined in the UI's markdown (each a ~20 kB PNG in the event log)
MD_INCIDENTS = 10


def _deps(settings: Settings) -> list[str]:
    tables = [request_rollup_hourly, error_rollup_hourly, step_rollup_hourly, usage_rollup_hourly, slo_status_hourly]
    if settings.phase_enabled("online_evals"):
        tables.append(score_rollup_hourly)
    return [t.name for t in tables]


def _fmt(value: float, key: str) -> str:
    if "rate" in key or "attainment" in key or "budget" in key:
        return f"{100 * value:.2f} %"
    if "cost" in key:
        return f"${value:,.2f}"
    return f"{value:,.0f}"


def summary_markdown(report: Report, location: str) -> str:
    """Headline figures, incidents and the first charts, as markdown the UI renders."""
    lines = [f"**{escape_markdown(report.title)}** — `{location}`", "", "| figure | value |", "|---|---:|"]
    lines += [f"| {escape_markdown(k)} | {_fmt(v, k)} |" for k, v in report.headline.items()]
    notes = report.figures.get("notes") or []
    notes += [f"{s['slo']}: {s['budget_note']}" for s in report.figures.get("slos", []) if s.get("budget_note")]
    lines += [""] + [f"- {escape_markdown(n)}" for n in notes]
    incidents = report.figures.get("incidents", report.figures.get("alerts_open", []))
    if incidents:
        lines += ["", "| incident | severity | start | duration (min) |", "|---|---|---|---:|"]
        lines += [f"| {escape_markdown(i['rule'])} {escape_markdown(i['group'])} | {i['severity']} | {i['start']} | "
                  f"{'ongoing' if i['duration_minutes'] is None else round(i['duration_minutes'])} |"
                  for i in incidents[:MD_INCIDENTS]]
    for chart in report.charts[:MD_CHARTS]:
        data = base64.b64encode(chart.png()).decode()
        lines += ["", f"![{escape_markdown(chart.title)}](data:image/png;base64,{data})"]
    return "\n".join(lines)


def report_metadata(report: Report, files: dict[str, str], base_url: str | None) -> dict[str, Any]:
    url = public_url(report, base_url)
    location = url or files["html"]
    return {
        **report.headline,
        "report": dg.MetadataValue.url(url) if url else dg.MetadataValue.path(files["html"]),
        "figures_json": dg.MetadataValue.path(files["json"]),
        "summary": dg.MetadataValue.md(summary_markdown(report, location)),
    }


def build_dashboard_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        name=DASHBOARD,
        group_name=GROUP,
        deps=_deps(settings),
        pool=DASHBOARD,  # one writer of the page at a time
        # after each hourly run (any rollup updated), once per change, never two at a time
        automation_condition=(dg.AutomationCondition.any_deps_updated().since_last_handled()
                              & ~dg.AutomationCondition.in_progress()).with_label("after each hourly rollup"),
        description="The dashboard page (one self-contained HTML file): requests, errors, latency, tokens, cost, "
                    "eval scores and alerts over the last 24 h, 7 and 30 days, from the hourly rollups.",
    )
    def reports_dashboard(context: dg.AssetExecutionContext, trace_store: TraceStore) -> dg.MaterializeResult:
        report = build_dashboard(trace_store.engine)
        files = write_report(report, settings.reports_dir)
        context.log.info(f"dashboard written to {files['html']}")
        return dg.MaterializeResult(metadata=report_metadata(report, files, settings.reports_base_url))

    return reports_dashboard


def _partitions(kind: str, settings: Settings) -> dg.TimeWindowPartitionsDefinition:
    """Periods from the one holding `partitions_start` (the week's Monday, the month's first day)."""
    first = datetime.strptime(settings.partitions_start[:10], "%Y-%m-%d")
    if kind == "day":
        return dg.DailyPartitionsDefinition(start_date=first.strftime("%Y-%m-%d"), timezone="UTC")
    if kind == "week":
        monday = first - timedelta(days=first.weekday())
        return dg.WeeklyPartitionsDefinition(start_date=monday.strftime("%Y-%m-%d"), day_offset=1, timezone="UTC")
    return dg.MonthlyPartitionsDefinition(start_date=first.replace(day=1).strftime("%Y-%m-%d"), timezone="UTC")


def build_sla_asset(settings: Settings, kind: str) -> dg.AssetsDefinition:
    name = SLA_ASSETS[kind]
    slos = [s.model_dump() for s in settings.slos]

    @dg.asset(
        name=name,
        group_name=GROUP,
        deps=_deps(settings),
        pool=name,  # a backfill and a scheduled run never write one period's files together
        partitions_def=_partitions(kind, settings),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=daily_automation_condition(),
        description=f"SLA report per {'ISO week' if kind == 'week' else kind}: SLO attainment, error budget and "
                    "burn-rate peaks, availability per route and provider, the incidents of the period from "
                    "`alerts`, trends against the previous period (HTML, PNG charts, JSON figures).",
    )
    def sla_report(context: dg.AssetExecutionContext, trace_store: TraceStore):
        start, end = run_window(context)
        report = PartitionReport()
        moment = start
        while moment < end:
            period = sla.period_of(kind, moment)
            built = build_sla(trace_store.engine, period, slos)
            files = write_report(built, settings.reports_dir, pngs=True)
            # the period's partition key: its first day (Dagster's daily, weekly and monthly key format)
            report.add(name, f"{period.start:%Y-%m-%d}", report_metadata(built, files, settings.reports_base_url))
            moment = period.end
        yield from emit(context, report, [name])

    return sla_report


JOBS = tuple(SLA_JOBS.values())  # what `obs-pipelines run reports` (and the demo) runs over an hour range


def build_defs(settings: Settings) -> dg.Definitions:
    if not settings.phase_enabled("monitoring"):  # every report reads the monitoring rollups
        return dg.Definitions()
    dashboard = build_dashboard_asset(settings)
    slas = {kind: build_sla_asset(settings, kind) for kind in SLA_ASSETS}
    jobs = [dg.define_asset_job(DASHBOARD_JOB, selection=[dashboard], description="Rebuild the dashboard page.")]
    jobs += [dg.define_asset_job(SLA_JOBS[kind], selection=[asset], description=f"SLA reports per {kind}.") for kind, asset in slas.items()]
    sensor = dg.AutomationConditionSensorDefinition(
        "reports_automation_sensor", target=dg.AssetSelection.groups(GROUP),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Rebuilds the dashboard after each hourly rollup run, and each SLA report once its period's "
                    "hours are rolled up (again when one of them is re-rolled, for periods of the last 7 days).")
    return dg.Definitions(assets=[dashboard, *slas.values()], jobs=jobs, sensors=[sensor])
