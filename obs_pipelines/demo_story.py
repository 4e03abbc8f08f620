"""The demo's story: for each injected incident, the rollup figure that shows it next to the clean baseline.

A pure function of the hourly rollup frames (as read from the monitoring tables after the demo's runs) and
the incidents the generator injected. The baseline is the hours no incident touched; an incident's figure is
over the hours it touched. Rates are pooled over the hours (errors / requests), percentiles are the median
of the hourly values (a percentile of a whole range cannot be rebuilt from hourly rows), counts and costs
are per hour.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import pandas as pd

from obs_pipelines.synth.catalog import MODELS, STEP_KINDS
from obs_pipelines.synth.incidents import Incident

HOUR = timedelta(hours=1)
AGENT_ROUTE = "agent_tools"  # the synthetic app's one route that calls tools


@dataclass(frozen=True)
class HourlyRollups:
    """The hourly monitoring tables over the demo's hours (columns as in monitoring/tables.py)."""

    request: pd.DataFrame
    step: pd.DataFrame
    error: pd.DataFrame
    usage: pd.DataFrame


@dataclass(frozen=True)
class _Hours:
    during: list[pd.Timestamp]
    baseline: list[pd.Timestamp]


def touched_hours(incident: Incident) -> list[pd.Timestamp]:
    """Starts of the hours an incident is active in (partly or wholly)."""
    first = pd.Timestamp(incident.start).floor("h")
    return list(pd.date_range(first, pd.Timestamp(incident.end) - pd.Timedelta(microseconds=1), freq="h"))


def story(incidents: Sequence[Incident], rollups: HourlyRollups) -> list[str]:
    """One line per incident: what it is, when, and the figure that shows it against the baseline."""
    frames = HourlyRollups(*(_with_hours(f) for f in (rollups.request, rollups.step, rollups.error, rollups.usage)))
    present = set(frames.request["window_start"])
    hit = {h for inc in incidents for h in touched_hours(inc)}
    baseline = sorted(present - hit)
    lines = []
    for inc in incidents:
        during = [h for h in touched_hours(inc) if h in present]
        head = f"{_label(inc)} {_span(inc)}:"
        if inc.name == "silent_quality_drift":
            lines.append(f"{head} invisible to monitoring by design (no errors, same latency, same cost); "
                         "it is for the eval phases")
        elif not during:
            lines.append(f"{head} no rolled-up hours")
        else:
            lines.append(f"{head} {FIGURES[inc.name](inc, frames, _Hours(during, baseline))}")
    return lines


def slo_summary(status: pd.DataFrame) -> list[str]:
    """One line per SLO from its hourly status rows: how many judged hours met it, and which broke it."""
    lines = []
    for name, rows in status.groupby("slo_name", sort=False):
        judged = rows[rows["met"].notna()]
        broken = pd.to_datetime(judged.loc[~judged["met"].astype(bool), "window_start"]).sort_values()
        head = (f"SLO {name} ({rows['metric'].iloc[0]} {rows['objective'].iloc[0]}): met in "
                f"{len(judged) - len(broken)} of {len(judged)} hours")
        shown = ", ".join(f"{h:%m-%d %H:%M}" for h in broken[:8]) + (" ..." if len(broken) > 8 else "")
        lines.append(f"{head}; broken at {shown}" if len(broken) else head)
    return lines


# ---- one figure per incident ---------------------------------------------------------------------


def _target(inc: Incident) -> str:
    """The incident's target: these figures' incidents all have a default one (only tool_loop has none)."""
    return cast(str, inc.effective_target)


def _latency_spike(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    target = _target(inc)
    if target in STEP_KINDS:
        steps = _p95s(r.step, h, dimension="span_kind", span_kind=target)
        first = f"{target} step p95 {_ms(steps[0])} vs {_ms(steps[1])}"
    else:  # a model: its calls, under whichever name (request or response model) has the most of them
        model = _busiest(r.request, h.during, "model", _model_names(target))
        calls = _p95s(r.request, h, dimension="model", dimension_value=model)
        first = f"{model} call p95 {_ms(calls[0])} vs {_ms(calls[1])}"
    route = _most_slowed_route(r.request, h)
    if route is None:
        return first
    during, base = _p95s(r.request, h, dimension="route", dimension_value=route)
    return f"{first}; route {route} p95 {_ms(during)} vs {_ms(base)}"


def _provider_outage(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    rates = [_pooled(r.error, hours, "error_count", "span_count", dimension="provider",
                     dimension_value=_target(inc)) for hours in (h.during, h.baseline)]
    return f"error rate of {inc.effective_target} calls {_pct(rates[0])} vs {_pct(rates[1])}"


def _rate_limit_storm(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    key = f"{inc.effective_target}/rate_limit"
    counts = [_per_hour(r.error, hours, "error_count", dimension="provider_error_class", dimension_value=key)
              for hours in (h.during, h.baseline)]
    return f"{counts[0]:,.0f} rate_limit errors/h vs {counts[1]:,.0f}"


def _cost_overrun(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    route = _target(inc)
    cost = [_per_hour(r.usage, hours, "cost_usd", dimension="route", dimension_value=route)
            for hours in (h.during, h.baseline)]
    requests = [_per_hour(r.request, hours, "request_count", dimension="route", dimension_value=route)
                for hours in (h.during, h.baseline)]
    per_request = [_ratio(c, n) for c, n in zip(cost, requests, strict=True)]
    # per request too: the hourly cost also follows the day's traffic curve
    return (f"cost ${cost[0]:,.2f}/h vs ${cost[1]:,.2f}/h, "
            f"${per_request[0]:.4f} vs ${per_request[1]:.4f} per request")


def _retrieval_miss(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    retrieval = _p95s(r.step, h, dimension="span_kind", span_kind="retrieval")
    rerank = [_median(r.step, hours, "latency_p50_ms", dimension="span_kind", span_kind="reranker")
              for hours in (h.during, h.baseline)]
    return (f"retrieval step p95 {_ms(retrieval[0])} vs {_ms(retrieval[1])}, reranker p50 {_ms(rerank[0])} vs "
            f"{_ms(rerank[1])} (less to rank); the empty or irrelevant documents themselves are in no monitoring "
            "rollup: for the observability and eval phases")


def _tool_loop(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    per_request = [
        _ratio(_sum(r.step, hours, "span_count", dimension="span_kind", span_kind="tool"),
               _sum(r.request, hours, "request_count", dimension="route", dimension_value=AGENT_ROUTE))
        for hours in (h.during, h.baseline)
    ]
    return f"{per_request[0]:.1f} tool calls per {AGENT_ROUTE} request vs {per_request[1]:.1f}"


def _prompt_regression(inc: Incident, r: HourlyRollups, h: _Hours) -> str:
    prompts = _rows(r.request, h.during, dimension="prompt_version")
    before = set(_rows(r.request, h.baseline, dimension="prompt_version")["dimension_value"])
    new = prompts[~prompts["dimension_value"].isin(before)]
    if new.empty:
        return "no new prompt version in its hours"
    version = cast(str, new.groupby("dimension_value")["request_count"].sum().idxmax())  # a text column
    name = version.rpartition("@")[0]
    old = _rows(r.request, h.baseline, dimension="prompt_version")
    old = old[old["dimension_value"].str.startswith(f"{name}@")]
    calls = _per_hour(r.request, h.during, "request_count", dimension="prompt_version", dimension_value=version)
    p50 = _median(r.request, h.during, "latency_p50_ms", dimension="prompt_version", dimension_value=version)
    if old.empty:
        return f"new prompt version {version}, {calls:,.0f} calls/h, p50 {_ms(p50)}"
    previous = cast(str, old.groupby("dimension_value")["request_count"].sum().idxmax())
    old_p50 = _median(r.request, h.baseline, "latency_p50_ms", dimension="prompt_version", dimension_value=previous)
    return (f"new prompt version {version} ({calls:,.0f} calls/h), p50 {_ms(p50)} vs {_ms(old_p50)} for "
            f"{previous}: shorter answers; whether they got worse is for the eval phases")


FIGURES: dict[str, Callable[[Incident, HourlyRollups, _Hours], str]] = {
    "latency_spike": _latency_spike,
    "provider_outage": _provider_outage,
    "rate_limit_storm": _rate_limit_storm,
    "cost_overrun": _cost_overrun,
    "retrieval_miss": _retrieval_miss,
    "tool_loop": _tool_loop,
    "prompt_regression": _prompt_regression,
}


# ---- selection and arithmetic over the hourly frames ----------------------------------------------


def _with_hours(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["window_start"] = pd.to_datetime(out["window_start"]).astype("datetime64[us]")
    return out


def _rows(frame: pd.DataFrame, hours: Iterable[pd.Timestamp], **equal: str) -> pd.DataFrame:
    mask = frame["window_start"].isin(list(hours))
    for column, value in equal.items():
        mask &= frame[column] == value
    return frame[mask]


def _sum(frame: pd.DataFrame, hours: list[pd.Timestamp], column: str, **equal: str) -> float:
    return float(pd.to_numeric(_rows(frame, hours, **equal)[column]).sum())


def _per_hour(frame: pd.DataFrame, hours: list[pd.Timestamp], column: str, **equal: str) -> float:
    return _ratio(_sum(frame, hours, column, **equal), len(hours))


def _pooled(frame: pd.DataFrame, hours: list[pd.Timestamp], num: str, den: str, **equal: str) -> float:
    return _ratio(_sum(frame, hours, num, **equal), _sum(frame, hours, den, **equal))


def _median(frame: pd.DataFrame, hours: list[pd.Timestamp], column: str, **equal: str) -> float:
    values = pd.to_numeric(_rows(frame, hours, **equal)[column]).dropna()
    return float(values.median()) if len(values) else math.nan


def _p95s(frame: pd.DataFrame, h: _Hours, **equal: str) -> tuple[float, float]:
    return (_median(frame, h.during, "latency_p95_ms", **equal),
            _median(frame, h.baseline, "latency_p95_ms", **equal))


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _most_slowed_route(request: pd.DataFrame, h: _Hours) -> str | None:
    """The route whose p95 grew the most against its baseline: the one the slow step or model sits on."""
    routes = _rows(request, h.during, dimension="route")["dimension_value"].dropna().unique()
    growth: dict[str, float] = {}
    for route in routes:
        during, base = _p95s(request, h, dimension="route", dimension_value=route)
        if not math.isnan(during) and base:
            growth[route] = during / base
    return max(growth, key=growth.__getitem__) if growth else None


def _model_names(target: str) -> set[str]:
    """A model's request and response names (a failed call carries only the request model), and the
    canonical key the rollups' model rows use for both."""
    from obs_pipelines.pricing.models import model_key

    names = {target}
    for m in MODELS.values():
        if target in (m.name, m.response_model):
            names |= {m.name, m.response_model}
    # catalog names are never blank, so none of their keys is None
    return names | cast("set[str]", {model_key(name) for name in names})


def _busiest(request: pd.DataFrame, hours: list[pd.Timestamp], dimension: str, values: set[str]) -> str:
    rows = _rows(request, hours, dimension=dimension)
    rows = rows[rows["dimension_value"].isin(values)]
    if rows.empty:
        return sorted(values)[0]
    return cast(str, rows.groupby("dimension_value")["request_count"].sum().idxmax())  # a text column


# ---- formatting ----------------------------------------------------------------------------------


def _label(inc: Incident) -> str:
    target = inc.effective_target
    return f"{inc.name} {target}" if target else inc.name


def _span(inc: Incident) -> str:
    last = inc.end - timedelta(microseconds=1)
    end = f"{inc.end:%H:%M}" if last.date() == inc.start.date() else f"{inc.end:%m-%d %H:%M}"
    return f"{inc.start:%m-%d %H:%M}-{end}"


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:,.0f} ms"


def _pct(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


__all__ = ["AGENT_ROUTE", "FIGURES", "HourlyRollups", "slo_summary", "story", "touched_hours"]


def alert_lines(alerts: Sequence[dict]) -> list[str]:
    """The alerts the demo raised, oldest first, one line each (their summary; what the rules said); a note
    when there are none."""
    if not alerts:
        return ["no alert: no rule broke over these hours"]
    ordered = sorted(alerts, key=lambda a: (str(a.get("window_start")), str(a.get("rule"))))
    return [str(a.get("summary")) for a in ordered]
