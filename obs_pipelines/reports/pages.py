"""The two pages: the dashboard (last 24 h, 7 and 30 days) and an SLA report (day, ISO week or month).

Each ``build_*`` reads the rollups and alerts of its windows, computes the figures (figures.py, sla.py),
renders the charts (charts.py) and the page (html.py), and returns a ``Report``; ``write_report`` stores it.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.reports import charts, figures, html, sla
from obs_pipelines.reports.incidents import incidents
from obs_pipelines.reports.reading import Rollups, newest_hour, read_alerts, read_rollups
from obs_pipelines.store.db import utcnow

HOUR = timedelta(hours=1)
RECENT_ALERTS = timedelta(days=7)


@dataclass
class Report:
    name: str  # path of the files under the output directory, no suffix: dashboard, sla/month/2026-11 ...
    title: str
    html: str
    figures: dict[str, Any]
    headline: dict[str, float]  # numeric figures for the UI's metadata
    charts: list[charts.Rendered] = field(default_factory=list)


# ---- dashboard ------------------------------------------------------------------------------------------------
def _hourly(frame: pd.DataFrame, dimension: str, start: datetime) -> pd.DataFrame:
    return frame[(frame["dimension"] == dimension) & (frame["window_start"] >= pd.Timestamp(start))]


def _daily(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(day=frame["window_start"].dt.floor("D"))


def dashboard_charts(rollups: Rollups, end: datetime) -> tuple[list[charts.Rendered], list[str]]:
    day, week, month = end - timedelta(hours=24), end - timedelta(days=7), end - timedelta(days=30)
    req, err, use = rollups.request, rollups.error, rollups.usage
    overall_week = _hourly(req, "overall", week)
    routes_day = charts.top_values(_hourly(req, "route", day), "dimension_value", "request_count").assign(
        error_rate=lambda f: f["error_count"] / f["request_count"].where(f["request_count"] > 0))
    providers_day = _hourly(err, "provider", day).assign(
        error_rate=lambda f: f["error_count"] / f["span_count"].where(f["span_count"] > 0))
    monthly = _hourly(req, "overall", month)
    outcome = pd.concat([
        monthly.assign(outcome="ok", count=monthly["request_count"] - monthly["error_count"]),
        monthly.assign(outcome="error", count=monthly["error_count"])])[["window_start", "outcome", "count"]]
    cost = charts.top_values(_hourly(use, "model", month), "dimension_value", "cost_usd")
    score_rows = _daily(_hourly(rollups.score, "overall", week))
    score_rows = score_rows.assign(_w=score_rows["mean_score"] * score_rows["scored_count"])
    scores = score_rows.groupby(["day", "scorer"], as_index=False).agg(_w=("_w", "sum"), n=("scored_count", "sum"))
    scores["mean_score"] = scores["_w"] / scores["n"].where(scores["n"] > 0)
    steps = figures.slowest_steps(figures.in_window(rollups.step, day, end)).assign(
        step=lambda f: f["span_kind"] + " · " + f["span_name"])
    specs = {
        "requests_7d": charts.time_lines(overall_week, t="window_start", y="request_count",
                                         title="Requests per hour, last 7 days", y_title="requests"),
        "error_rate_route_24h": charts.time_lines(routes_day, t="window_start", y="error_rate",
                                                  color="dimension_value", legend="route", y_format="%",
                                                  title="Error rate per hour by route, last 24 h", y_title="error rate"),
        "p95_route_24h": charts.time_lines(routes_day, t="window_start", y="latency_p95_ms", color="dimension_value",
                                           legend="route", title="p95 latency per hour by route, last 24 h",
                                           y_title="ms"),
        "error_rate_provider_24h": charts.time_lines(providers_day, t="window_start", y="error_rate",
                                                     color="dimension_value", y_format="%", legend="provider",
                                                     title="Span error rate per hour by provider, last 24 h",
                                                     y_title="error rate"),
        "requests_30d": charts.stacked_bars(outcome, t="window_start", y="count", color="outcome",
                                            title="Requests per day by outcome, last 30 days", y_title="requests"),
        "cost_model_30d": charts.stacked_bars(cost, t="window_start", y="cost_usd", color="dimension_value",
                                              y_format="$~s", legend="model",
                                              title="Cost per day by model, last 30 days", y_title="USD"),
        "scores_7d": charts.time_lines(scores, t="day", y="mean_score", color="scorer", y_format=".2f",
                                       title="Mean eval score per day by scorer, last 7 days", y_title="mean score"),
        "slowest_steps_24h": charts.hbars(steps, label="step", x="p95_ms", x_title="p95 ms (hour-weighted)",
                                          title="Slowest steps, last 24 h"),
    }
    rendered = [charts.render(name, chart) for name, chart in specs.items()]
    missing = [name for name, r in zip(specs, rendered, strict=True) if r is None]
    return [r for r in rendered if r is not None], missing


def _alert_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**a, "where": ", ".join(f"{k}={v}" for k, v in (a["group"] or {}).items()) or "overall",
             "exemplar": (a["exemplar_trace_ids"] or [None])[0]} for a in items]


ALERT_COLUMNS: list[html.Column] = [
    ("rule", "rule", html.text), ("severity", "severity", html.text), ("status", "status", html.text),
    ("where", "group", html.text), ("start", "start (UTC)", html.when), ("end", "end of breach", html.when),
    ("duration_minutes", "duration", html.minutes), ("time_to_resolve_minutes", "time to resolve", html.minutes),
    ("cause", "cause (top contributors)", html.text), ("exemplar", "exemplar trace", html.trace_id),
]
TRAFFIC_COLUMNS: list[html.Column] = [
    ("value", "", html.text), ("requests", "requests", html.num), ("error_rate", "error rate", html.pct),
    ("p50_ms", "p50*", html.ms), ("p95_ms", "p95*", html.ms), ("p95_worst_hour_ms", "worst hour p95", html.ms),
    ("calls", "llm calls", html.num), ("input_tokens", "input tok", html.num),
    ("output_tokens", "output tok", html.num), ("cost_usd", "cost", html.usd),
]


def _window_section(name: str, w: dict[str, Any]) -> str:
    head = html.kpis([
        ("requests", html.num(w["requests"])), ("error rate", html.pct(w["error_rate"])),
        ("p95* (overall)", html.ms(w["p95_ms"])), ("cost", html.usd(w["cost_usd"])),
        ("tokens in / out", f"{html.num(w['input_tokens'])} / {html.num(w['output_tokens'])}"),
        ("hours with data", f"{w['hours_with_data']} / {w['hours']}"),
    ])
    return html.section(
        f"Last {name}", head,
        html.section("Routes", html.table(w["routes"], TRAFFIC_COLUMNS), level=3),
        html.section("Providers (span error rate)", html.table(w["providers"], [
            ("value", "provider", html.text), ("spans", "spans", html.num), ("errors", "failed", html.num),
            ("error_rate", "error rate", html.pct)]), level=3),
        html.section("Models", html.table(w["models"], TRAFFIC_COLUMNS), level=3),
        html.section("Prompt versions", html.table(w["prompt_versions"], TRAFFIC_COLUMNS), level=3),
        html.section("Slowest steps", html.table(w["slowest_steps"], [
            ("span_name", "step", html.text), ("span_kind", "kind", html.text), ("spans", "spans", html.num),
            ("p95_ms", "p95*", html.ms), ("p95_worst_hour_ms", "worst hour p95", html.ms)]), level=3),
        html.section("Eval scores (mean per scorer and route)", html.table(w["scores"], [
            ("scorer", "scorer", html.text), ("route", "route", html.text), ("scored", "scored", html.num),
            ("mean_score", "mean", html.score)], empty="no scores (online evals off or not run)"), level=3),
    )


def build_dashboard(engine: Engine, end: datetime | None = None) -> Report:
    """The dashboard up to ``end`` (exclusive; default: the hour after the newest rolled-up hour)."""
    if end is None:
        newest = newest_hour(engine)
        end = (newest + HOUR) if newest else utcnow().replace(minute=0, second=0, microsecond=0)
    start = end - figures.WINDOWS["30d"]
    rollups = read_rollups(engine, start, end)
    # vl-convert renders outside the GIL: the charts draw in a thread while the figures are computed
    with ThreadPoolExecutor(1) as pool:
        drawing = pool.submit(dashboard_charts, rollups, end)
        alert_list = incidents(read_alerts(engine, end - RECENT_ALERTS, end))
        figs = figures.dashboard_figures(rollups, alert_list, end)
        rendered, missing = drawing.result()
    day = figs["windows"]["24h"]
    body = (
        html.kpis([("requests, 24 h", html.num(day["requests"])), ("error rate, 24 h", html.pct(day["error_rate"])),
                   ("p95*, 24 h", html.ms(day["p95_ms"])), ("cost, 24 h", html.usd(day["cost_usd"])),
                   ("open alerts", str(len(figs["alerts_open"])))])
        + html.section("Open alerts", html.table(_alert_rows(figs["alerts_open"]), ALERT_COLUMNS, "no open alert"))
        + html.section("Trends", html.charts(rendered, missing))
        + "".join(_window_section(n, figs["windows"][n]) for n in figures.WINDOWS)
        + html.section("Alerts of the last 7 days (resolved)",
                       html.table(_alert_rows(figs["alerts_recent"]), ALERT_COLUMNS, "none"))
        + html.notes(["* p50 / p95 of a window: the mean of the hourly percentiles weighted by each hour's "
                      "requests (hourly percentiles cannot be merged exactly); 'worst hour' is the highest."])
    )
    page = html.page("LLM app dashboard", f"Hourly rollups up to {end:%Y-%m-%d %H:%M} UTC "
                     f"(generated {utcnow():%Y-%m-%d %H:%M} UTC)", body)
    headline = {"requests_24h": day["requests"], "error_rate_24h": day["error_rate"], "p95_ms_24h": day["p95_ms"],
                "cost_usd_24h": day["cost_usd"], "open_alerts": float(len(figs["alerts_open"])),
                "requests_30d": figs["windows"]["30d"]["requests"], "charts": float(len(rendered))}
    return Report("dashboard", "LLM app dashboard", page, figs, _numeric(headline), rendered)


# ---- SLA report -------------------------------------------------------------------------------------------------
SLO_COLUMNS: list[html.Column] = [
    ("slo", "SLO", html.text), ("objective", "objective", html.text), ("target", "target", html.pct),
    ("hours_judged", "hours judged", html.num), ("attainment", "attainment", html.pct),
    ("bad_hours", "bad hours", html.num), ("allowed_bad_hours", "allowed", lambda v: f"{v:.2f}"),
    ("budget_used", "budget used", html.pct), ("budget_left", "budget left", html.pct),
    ("burn_rate_1h_peak", "peak burn 1 h", html.rate), ("burn_rate_6h_peak", "peak burn 6 h", html.rate),
]


def sla_charts(figs: dict[str, Any], period: sla.Period) -> tuple[list[charts.Rendered], list[str]]:
    this, prev = pd.DataFrame(figs["trend"]["this"]), pd.DataFrame(figs["trend"]["previous"])
    if this.empty:
        this = pd.DataFrame(columns=["offset", "requests", "error_rate", "p95_ms"])
    if prev.empty:
        prev = this.iloc[0:0]
    unit = "hour of the day (UTC)" if period.kind == "day" else "day of the period"
    labels = (period.label, figs["previous_period"]["label"])
    slos = pd.DataFrame(figs["slos"])
    routes = pd.DataFrame(figs["availability"]["routes"])
    specs = {
        "trend_requests": charts.compare_lines(this, prev, x="offset", y="requests", x_title=unit, labels=labels,
                                               y_title="requests", title="Requests vs previous period"),
        "trend_error_rate": charts.compare_lines(this, prev, x="offset", y="error_rate", x_title=unit, labels=labels,
                                                 y_title="error rate", y_format="%",
                                                 title="Error rate vs previous period"),
        "trend_p95": charts.compare_lines(this, prev, x="offset", y="p95_ms", x_title=unit, labels=labels,
                                          y_title="ms", title="p95 latency* vs previous period"),
        "slo_attainment": charts.hbars(slos, label="slo", x="attainment", x_title="attainment", x_format="%",
                                       title="SLO attainment") if not slos.empty else None,
        "route_success": charts.hbars(routes, label="value", x="success_rate", x_title="request success",
                                      x_format=".2%", title="Request-weighted success by route")
        if not routes.empty else None,
    }
    rendered = [charts.render(name, chart) for name, chart in specs.items()]
    missing = [name for name, r in zip(specs, rendered, strict=True) if r is None]
    return [r for r in rendered if r is not None], missing


def build_sla(engine: Engine, period: sla.Period, slos: list[dict[str, Any]]) -> Report:
    """The SLA report of ``period``; ``slos`` are the settings' SLOs (for the availability SLI)."""
    previous = period.previous()
    rollups = read_rollups(engine, period.start, period.end)
    before = read_rollups(engine, previous.start, previous.end)
    incident_list = incidents(read_alerts(engine, period.start, period.end))
    figs = sla.sla_figures(period, rollups, before, incident_list, slos)
    rendered, missing = sla_charts(figs, period)
    head, prev = figs["headline"], figs["previous_period"]
    sli = figs["availability"]["sli"]
    avail_cols: list[html.Column] = [
        ("value", "", html.text), ("hours", "hours with traffic", html.num),
        ("hours_met_share", f"hours meeting {sli['objective'] if sli else '(no error-rate SLO)'}", html.pct),
        ("success_rate", "request-weighted success", html.pct)]
    slo_notes = [f"{s['slo']}: {s['budget_note']}" for s in figs["slos"] if s["budget_note"]]
    body = (
        html.notes(figs["notes"])
        + html.kpis([
            ("requests", html.num(head["requests"])), ("success rate", html.pct(head["success_rate"])),
            ("p95* (hour-weighted)", html.ms(head["p95_ms"])), ("cost", html.usd(head["cost_usd"])),
            ("incidents", str(len(incident_list))),
            (f"requests, {prev['label']}", html.num(prev["requests"])),
            (f"success, {prev['label']}", html.pct(prev["success_rate"]))])
        + html.section("Service level objectives",
                       html.table(figs["slos"], SLO_COLUMNS, "no SLO status in this period"),
                       html.notes(slo_notes))
        + html.section("Availability by route", html.table(figs["availability"]["routes"], avail_cols))
        + html.section("Availability by provider (spans)", html.table(figs["availability"]["providers"], avail_cols))
        + html.section(f"Incidents ({len(incident_list)})",
                       html.table(_alert_rows(incident_list), ALERT_COLUMNS, "no incident in this period"))
        + html.section("Trends", html.charts(rendered, missing))
        + html.notes(["* p95 of a period: the mean of the hourly p95 weighted by each hour's requests.",
                      "Error budget: allowed bad hours = (1 - target) x hours judged in the period; used = bad "
                      "hours / allowed (over 100 %: overspent)."])
    )
    title = f"SLA report {period.label}"
    page = html.page(title, f"{period.kind} {period.start:%Y-%m-%d %H:%M} – {period.end:%Y-%m-%d %H:%M} UTC, "
                     f"compared with {prev['label']}", body)
    headline = {"requests": head["requests"], "success_rate": head["success_rate"], "p95_ms": head["p95_ms"],
                "cost_usd": head["cost_usd"], "incidents": float(len(incident_list)),
                "hours_with_data": float(head["hours_with_data"]),
                **{f"attainment_{s['slo']}": s["attainment"] for s in figs["slos"]},
                **{f"budget_left_{s['slo']}": s["budget_left"] for s in figs["slos"]}}
    return Report(f"sla/{period.kind}/{period.label}", title, page, figs, _numeric(headline), rendered)


def _numeric(values: dict[str, Any]) -> dict[str, float]:
    """Only the figures that exist (a rate of an empty period is unknown, not 0)."""
    return {k: float(v) for k, v in values.items() if v is not None and not pd.isna(v)}


def figures_json(report: Report) -> str:
    return json.dumps(report.figures, indent=1, default=str, allow_nan=False)
