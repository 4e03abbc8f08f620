"""Attribution: which step made a route slower, which route / model / prompt version / user segment made cost
move, each against a baseline of the same hour of day over the previous ``baseline_days`` days.

Latency: per (route, step) the exact p95 of the hour and of the pooled baseline hours; the step's delta and
its share of the route's p95 change; ranked by delta within the hour, leaf steps first (a step that wraps
others, e.g. an agent span, only repeats its children's time).

Cost: per dimension value the hour's cost against the mean baseline hour, over every route and within each
route (a route's own models, prompt versions and users), split exactly into a volume
effect (more calls at the baseline cost per call) and a unit-cost effect (the new cost per call on the hour's
calls): ``delta = (n - n0) * u0 + n * (u - u0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.observability import reading
from obs_pipelines.pricing.models import model_keys
from obs_pipelines.store.schema import MODEL_CALL_KINDS
from obs_pipelines.store.traces import NULL_LABEL

OTHER_LABEL = "(other)"
ALL_ROUTES = "(all)"  # the scope of the rows over every route
COST_DIMENSIONS = ("route", "model", "prompt_version", "user_segment")


def baseline_windows(start: datetime, end: datetime, days: int) -> list[tuple[datetime, datetime]]:
    """The same window of day on each of the ``days`` previous days."""
    return [(start - timedelta(days=d), end - timedelta(days=d)) for d in range(1, days + 1)]


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    den = den.astype("float64")
    return (num.astype("float64") / den.where(den.abs() > 1e-12)).astype("float64")


def latency_inputs(engine: Engine, start: datetime, end: datetime, baseline_days: int) -> dict:
    """What ``latency_attribution`` reads, as independent reads (name -> function): the step and route
    percentiles of the hour and of its pooled baseline hours, and the wrapping steps of the hour."""
    base_windows = baseline_windows(start, end, baseline_days)
    return {
        "steps_now": lambda: reading.step_percentiles(engine, [(start, end)]),
        "steps_base": lambda: reading.step_percentiles(engine, base_windows),
        "routes_now": lambda: reading.route_percentiles(engine, [(start, end)]),
        "routes_base": lambda: reading.route_percentiles(engine, base_windows),
        "wrapping": lambda: reading.wrapping_steps(engine, start, end),
    }


def latency_attribution(steps_now: pd.DataFrame, steps_base: pd.DataFrame, routes_now: pd.DataFrame,
                        routes_base: pd.DataFrame, wrapping: set[tuple[str, str]]) -> pd.DataFrame:
    """``latency_attribution_hourly`` rows (without window columns) from ``latency_inputs``: per (route, step)
    percentiles of the hour and of the baseline, per route the same, and the (name, kind) of the steps with
    child steps in the hour."""
    now = steps_now
    keys = ["route", "span_name", "span_kind"]
    if now.empty:
        return pd.DataFrame(columns=[*keys, "calls"])
    base = steps_base.rename(columns={"calls": "baseline_calls", "p95_ms": "baseline_p95_ms"}).drop(
        columns="p50_ms")
    routes_now = routes_now[["route", "p95_ms"]].rename(columns={"p95_ms": "route_p95_ms"})
    routes_base = routes_base[["route", "p95_ms"]].rename(columns={"p95_ms": "route_baseline_p95_ms"})
    out = now.merge(base, on=keys, how="left").merge(routes_now, on="route", how="left").merge(
        routes_base, on="route", how="left")
    out["baseline_calls"] = out["baseline_calls"].fillna(0).astype("int64")
    out["delta_p95_ms"] = out["p95_ms"] - out["baseline_p95_ms"]
    out["route_delta_p95_ms"] = out["route_p95_ms"] - out["route_baseline_p95_ms"]
    out["share_of_route_change"] = _ratio(out["delta_p95_ms"], out["route_delta_p95_ms"])
    # steps that have children in the window (their time repeats their children's)
    out["wraps_steps"] = [(n, k) in wrapping for n, k in zip(out["span_name"], out["span_kind"], strict=True)]
    order = out.assign(_d=out["delta_p95_ms"].fillna(-np.inf)).sort_values(
        ["wraps_steps", "_d", *keys], ascending=[True, False, True, True, True], kind="stable")
    out.loc[order.index, "rank"] = np.arange(1, len(order) + 1)
    out["rank"] = out["rank"].astype("int64")
    return out.sort_values("rank").reset_index(drop=True)


# ---- cost ------------------------------------------------------------------------------------------------

def _calls(spans: pd.DataFrame, requests: pd.DataFrame, costs: pd.Series) -> pd.DataFrame:
    """The window's llm / embedding calls with their request's route and user, prompt version and cost."""
    calls = spans[spans["kind"].isin(MODEL_CALL_KINDS)].assign(cost=costs)
    by_trace = requests.set_index("trace_id")
    route = calls["trace_id"].map(by_trace["route"])
    user = calls["trace_id"].map(by_trace["user_id"])
    prompt = np.where(calls["prompt_name"].notna() & calls["prompt_version"].notna(),
                      calls["prompt_name"].fillna("") + "@" + calls["prompt_version"].fillna(""),
                      calls["prompt_version"].fillna(calls["prompt_name"]).fillna(NULL_LABEL))
    return pd.DataFrame({
        "route": route.fillna(NULL_LABEL),
        # the canonical model key (as monitoring's rollups): a failed call names the request model, a
        # successful one the dated response model, and both are one model
        "model": model_keys(calls["model"]).fillna(NULL_LABEL),
        "prompt_version": prompt,
        "user": user.fillna(calls["user_id"]).fillna(NULL_LABEL),
        "input_tokens": calls["input_tokens"].fillna(0),
        "output_tokens": calls["output_tokens"].fillna(0),
        "cost": calls["cost"].fillna(0.0),
        "calls": 1,
    })


def _collapsed(calls: pd.DataFrame) -> pd.DataFrame:
    keys = ["route", "model", "prompt_version", "user"]
    return calls.groupby(keys, sort=False, dropna=False, as_index=False)[
        ["calls", "input_tokens", "output_tokens", "cost"]].sum()


def _scoped(calls: pd.DataFrame, top_n_users: int, top_users: pd.DataFrame | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calls twice: once in the scope '(all)', once in their route's scope; with ``user_segment`` (the top N
    users by cost of the scope, else '(other)'; ``top_users``: (scope, user) pairs chosen on the hour)."""
    scoped = pd.concat([calls.assign(scope=ALL_ROUTES), calls.assign(scope=calls["route"])], ignore_index=True)
    if top_users is None:
        known = scoped[scoped["user"] != NULL_LABEL]
        by_user = known.groupby(["scope", "user"], sort=False)["cost"].sum().reset_index()
        by_user = by_user.sort_values(["scope", "cost", "user"], ascending=[True, False, True], kind="stable")
        top_users = by_user[by_user.groupby("scope").cumcount() < top_n_users][["scope", "user"]]
    top = pd.MultiIndex.from_frame(top_users[["scope", "user"]])
    is_top = pd.MultiIndex.from_frame(scoped[["scope", "user"]]).isin(top)
    return scoped.assign(user_segment=scoped["user"].where(is_top, OTHER_LABEL)), top_users


def _by_dimension(scoped: pd.DataFrame) -> pd.DataFrame:
    """Per (scope, dimension, value): calls, tokens, cost. The route dimension only over every route."""
    parts = []
    for dim in COST_DIMENSIONS:
        rows = scoped[scoped["scope"] == ALL_ROUTES] if dim == "route" else scoped
        g = rows.groupby(["scope", dim], sort=False)[["calls", "input_tokens", "output_tokens", "cost"]].sum()
        parts.append(g.rename_axis(["route", "dimension_value"]).reset_index().assign(dimension=dim))
    out = pd.concat(parts, ignore_index=True)
    return out.rename(columns={"cost": "cost_usd"})


def cost_attribution(now_calls: pd.DataFrame, baseline_calls: Sequence[pd.DataFrame], top_n_users: int) -> pd.DataFrame:
    """``cost_attribution_hourly`` rows (without window columns): over the hour's calls of every route (``route``
    '(all)') and within each route (its model, prompt version and user segment rows: a route's cost change split
    among its own values; shares of the route's own change). ``now_calls`` / ``baseline_calls``: the hour's and
    each baseline hour's calls (``calls_of``)."""
    keys = ["route", "dimension", "dimension_value"]
    days = max(len(baseline_calls), 1)
    base_all = pd.concat(list(baseline_calls), ignore_index=True) if baseline_calls else now_calls.iloc[0:0]
    # the calls summed per (route, model, prompt version, user) first: the scopes and dimensions read fewer rows
    now_calls, base_all = _collapsed(now_calls), _collapsed(base_all)
    now_scoped, top_users = _scoped(now_calls, top_n_users)
    base_scoped, _ = _scoped(base_all, top_n_users, top_users)
    now = _by_dimension(now_scoped)
    base = _by_dimension(base_scoped)[[*keys, "calls", "cost_usd"]].rename(
        columns={"calls": "baseline_calls", "cost_usd": "baseline_cost_usd"})
    base[["baseline_calls", "baseline_cost_usd"]] = base[["baseline_calls", "baseline_cost_usd"]] / days
    # values seen only in the baseline (a route that stopped) are rows too: their cost went to zero
    out = now.merge(base, on=keys, how="outer")
    for col in ("calls", "input_tokens", "output_tokens"):
        out[col] = out[col].fillna(0).astype("int64")
    for col in ("cost_usd", "baseline_calls", "baseline_cost_usd"):
        out[col] = out[col].astype("float64").fillna(0.0)
    out["delta_cost_usd"] = out["cost_usd"] - out["baseline_cost_usd"]
    # each scope's total change: the hour's over every route, each route's own
    totals = (now_scoped.groupby("scope")["cost"].sum().sub(base_scoped.groupby("scope")["cost"].sum() / days,
                                                            fill_value=0.0))
    total_delta = out["route"].map(totals).astype("float64")
    out["share_of_change"] = (out["delta_cost_usd"] / total_delta.where(total_delta.abs() > 1e-12)).astype("float64")
    unit_now = _ratio(out["cost_usd"], out["calls"]).fillna(0.0)
    unit_base = _ratio(out["baseline_cost_usd"], out["baseline_calls"])
    # a value new in this hour has no baseline cost per call: its whole cost is volume
    unit_base = unit_base.fillna(unit_now)
    out["volume_effect_usd"] = (out["calls"] - out["baseline_calls"]) * unit_base
    out["unit_cost_effect_usd"] = out["calls"] * (unit_now - unit_base)
    out["driver"] = np.where(out["unit_cost_effect_usd"].abs() > out["volume_effect_usd"].abs(), "unit_cost",
                             "volume")
    out = out.assign(_all=out["route"] != ALL_ROUTES).sort_values(
        ["_all", "route", "dimension", "delta_cost_usd", "dimension_value"],
        ascending=[True, True, True, False, True], kind="stable").drop(columns="_all")
    out["rank"] = out.groupby(["route", "dimension"]).cumcount().astype("int64") + 1
    return out.reset_index(drop=True)


def calls_of(spans: pd.DataFrame, requests: pd.DataFrame, costs: pd.Series) -> pd.DataFrame:
    """The window's calls one by one (``calls`` = 1 each), from its spans and requests."""
    return _calls(spans, requests, costs)


def calls_of_groups(groups: pd.DataFrame) -> pd.DataFrame:
    """What ``calls_of`` gives, from the calls summed in the database (``reading.call_groups``): one row per
    (route, model key, prompt version, user) with the number of calls it stands for."""
    keys = ["route", "model", "prompt_version", "user"]
    if groups.empty:
        return pd.DataFrame(columns=[*keys, "input_tokens", "output_tokens", "cost", "calls"])
    rows = pd.DataFrame({
        "route": groups["request_route"].fillna(NULL_LABEL),
        "model": model_keys(groups["model"]).fillna(NULL_LABEL),
        "prompt_version": groups["prompt"].fillna(NULL_LABEL),
        "user": groups["request_user"].fillna(groups["user_id"]).fillna(NULL_LABEL),
        "input_tokens": groups["input_tokens"], "output_tokens": groups["output_tokens"],
        "cost": groups["cost"], "calls": groups["calls"],
    })
    return rows.groupby(keys, as_index=False, sort=False, dropna=False)[
        ["input_tokens", "output_tokens", "cost", "calls"]].sum()
