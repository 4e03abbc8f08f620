"""The figures of an SLA report for one day, ISO week or calendar month (pure pandas; no dagster).

Per SLO (``slo_status_hourly``): the hours judged in the period, attainment (share of judged hours meeting the
objective), the error budget of the period (allowed bad hours = (1 - target) x judged hours) used and left, and
the peak burn rates. A period that allows less than one bad hour cannot spend a budget meaningfully (a day at
99 % allows 0.24 h: one bad hour would read as "417 % used"), so its budget is reported as not computable,
with the reason, instead of a number.

Availability per route (request rollup) and provider (error rollup): the share of hours with traffic whose
error rate met the availability SLI (the objective of the first error-rate SLO in the settings), and the
request-weighted success rate (1 - errors / requests over the period).
"""

from __future__ import annotations

import calendar
import operator
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from obs_pipelines.reports.figures import _records, json_ready, ratio, traffic
from obs_pipelines.reports.reading import Rollups

PERIODS = ("day", "week", "month")
HOUR = timedelta(hours=1)
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Period:
    kind: str  # day, week (ISO, Monday first) or month
    start: datetime
    end: datetime  # exclusive

    @property
    def label(self) -> str:
        if self.kind == "day":
            return f"{self.start:%Y-%m-%d}"
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.start:%Y-%m}"

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / HOUR)

    def previous(self) -> Period:
        return period_of(self.kind, self.start - HOUR)


def period_of(kind: str, moment: datetime) -> Period:
    """The day / ISO week / calendar month containing ``moment`` (naive UTC)."""
    day = datetime(moment.year, moment.month, moment.day)
    if kind == "day":
        return Period(kind, day, day + timedelta(days=1))
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return Period(kind, start, start + timedelta(days=7))
    if kind == "month":
        start = day.replace(day=1)
        return Period(kind, start, start + timedelta(days=calendar.monthrange(start.year, start.month)[1]))
    raise ValueError(f"unknown period {kind!r}; valid: {list(PERIODS)}")


def parse_period(text: str) -> Period:
    """``2026-11-02`` (a day), ``2026-W45`` (an ISO week) or ``2026-11`` (a month)."""
    text = text.strip()
    if m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
        return period_of("week", datetime.fromisocalendar(int(m[1]), int(m[2]), 1))
    if re.fullmatch(r"\d{4}-\d{2}", text):
        return period_of("month", datetime.strptime(text, "%Y-%m"))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return period_of("day", datetime.strptime(text, "%Y-%m-%d"))
    raise ValueError(f"period {text!r}: expected YYYY-MM-DD (day), YYYY-Www (ISO week) or YYYY-MM (month)")


def parse_objective(objective: str) -> tuple[str, float]:
    m = re.fullmatch(r"\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*", objective or "")
    if not m:
        raise ValueError(f"objective {objective!r}: expected e.g. '< 0.05'")
    return m[1], float(m[2])


def _met(values: pd.Series, objective: str) -> pd.Series:
    op, bound = parse_objective(objective)
    return _COMPARE[op](values, bound)


def slo_figures(slo: pd.DataFrame) -> list[dict[str, Any]]:
    """Per SLO: target, hours judged and met, attainment, error budget and burn-rate peaks of the period."""
    out = []
    for name, rows in slo.groupby("slo_name", sort=True):
        judged = rows[rows["met"].notna()]
        hours, met = len(judged), int(judged["met"].astype(bool).sum())
        target = float(rows["target"].iloc[0])
        allowed = (1 - target) * hours  # bad hours the target allows in this period
        bad = hours - met
        figure: dict[str, Any] = {
            "slo": name, "metric": rows["metric"].iloc[0], "objective": rows["objective"].iloc[0],
            "dimension": rows["dimension"].iloc[0], "dimension_value": rows["dimension_value"].iloc[0],
            "target": target, "hours_judged": hours, "hours_met": met, "bad_hours": bad,
            "attainment": ratio(met, hours), "allowed_bad_hours": allowed,
            "budget_used": None, "budget_left": None, "budget_note": None,
            "burn_rate_1h_peak": _max(rows["burn_rate_1h"]), "burn_rate_6h_peak": _max(rows["burn_rate_6h"]),
        }
        if hours == 0:
            figure["budget_note"] = "no judged hours in this period (no traffic or not rolled up)"
        elif allowed < 1:
            figure["budget_note"] = (f"too little data for an error budget: {hours} judged hours at target "
                                     f"{target:.2%} allow {allowed:.2f} bad hours (less than one)")
        else:
            figure["budget_used"] = bad / allowed
            figure["budget_left"] = 1 - bad / allowed  # negative: overspent by that many budgets
        out.append(figure)
    return out


def _max(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.max()) if len(values) else None


def availability_sli(slos: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The availability SLI: the objective of the first SLO on ``error_rate`` (None when none is set)."""
    for slo in slos:
        if slo["metric"] == "error_rate":
            return {"slo": slo["name"], "metric": "error_rate", "objective": slo["objective"]}
    return None


def _availability(rows: pd.DataFrame, den: str, sli: dict[str, Any] | None) -> pd.DataFrame:
    rows = rows[rows[den] > 0].copy()
    rows["_rate"] = rows["error_count"] / rows[den]
    rows["_met"] = _met(rows["_rate"], sli["objective"]) if sli else False
    grouped = rows.groupby("dimension_value").agg(hours=("_rate", "size"), hours_met=("_met", "sum"),
                                                  total=(den, "sum"), errors=("error_count", "sum"))
    grouped["hours_met_share"] = grouped["hours_met"] / grouped["hours"] if sli else None
    grouped["success_rate"] = 1 - grouped["errors"] / grouped["total"]
    return grouped.reset_index().rename(columns={"dimension_value": "value"}).sort_values("value", kind="stable")


def availability(rollups: Rollups, sli: dict[str, Any] | None) -> dict[str, Any]:
    """Availability per route (requests) and provider (spans) of the period."""
    request = rollups.request[rollups.request["dimension"] == "route"]
    provider = rollups.error[rollups.error["dimension"] == "provider"]
    return {
        "sli": sli,
        "routes": _records(_availability(request, "request_count", sli).rename(columns={"total": "requests"})),
        "providers": _records(_availability(provider, "span_count", sli).rename(columns={"total": "spans"})),
    }


def headline(rollups: Rollups, period: Period) -> dict[str, Any]:
    overall = traffic(rollups.request, "overall")
    requests = float(overall["requests"].sum()) if len(overall) else 0.0
    errors = float(overall["errors"].sum()) if len(overall) else 0.0
    cost = rollups.usage.loc[rollups.usage["dimension"] == "model", "cost_usd"].sum()
    known = rollups.hours_with_data > 0  # a period with nothing rolled up has unknown figures, not zeros
    return {
        "hours": period.hours, "hours_with_data": rollups.hours_with_data,
        "requests": requests if known else None, "errors": errors if known else None,
        "success_rate": None if not requests else 1 - errors / requests,
        "p95_ms": None if overall.empty or pd.isna(overall["p95_ms"].iloc[0]) else float(overall["p95_ms"].iloc[0]),
        "cost_usd": float(cost) if known else None,
    }


def trend(rollups: Rollups, period: Period) -> pd.DataFrame:
    """Requests, error rate and p95 per step of the period (hours of a day, days of a week or month), with the
    step's offset from the period's start so two periods line up."""
    overall = rollups.request[rollups.request["dimension"] == "overall"].copy()
    step = HOUR if period.kind == "day" else timedelta(days=1)
    # hours count from 0 (hour of the day), days from 1 (day of the month / week)
    overall["offset"] = ((overall["window_start"] - pd.Timestamp(period.start)) // step).astype(int) + (step != HOUR)
    overall["_p95w"] = overall["latency_p95_ms"] * overall["latency_count"]
    grouped = overall.groupby("offset").agg(requests=("request_count", "sum"), errors=("error_count", "sum"),
                                            _p95w=("_p95w", "sum"), _lc=("latency_count", "sum"))
    grouped["error_rate"] = grouped["errors"] / grouped["requests"].where(grouped["requests"] > 0)
    grouped["p95_ms"] = grouped["_p95w"] / grouped["_lc"].where(grouped["_lc"] > 0)
    return grouped.drop(columns=["_p95w", "_lc"]).reset_index()


def sla_figures(period: Period, rollups: Rollups, previous: Rollups, incident_list: list[dict[str, Any]],
                slos: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure of the report (JSON-ready), this period against the previous one."""
    head, before = headline(rollups, period), headline(previous, period.previous())
    notes = []
    if head["hours_with_data"] == 0:
        notes.append("no rolled-up hours in this period: nothing to report")
    elif head["hours_with_data"] < period.hours:
        notes.append(f"only {head['hours_with_data']} of the period's {period.hours} hours are rolled up: "
                     "figures cover those hours")
    return json_ready({
        "period": {"kind": period.kind, "label": period.label, "start": period.start.isoformat(),
                   "end": period.end.isoformat()},
        "previous_period": {"label": period.previous().label, **before},
        "headline": head,
        "notes": notes,
        "slos": slo_figures(rollups.slo),
        "availability": availability(rollups, availability_sli(slos)),
        "incidents": incident_list,
        "trend": {"this": _records(trend(rollups, period)),
                  "previous": _records(trend(previous, period.previous()))},
    })
