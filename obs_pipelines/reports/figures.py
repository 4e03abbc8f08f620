"""The figures of the dashboard: traffic, errors, latency, usage, scores and alerts over the last 24 hours,
7 and 30 days, computed from the hourly rollups (pure pandas; no database, no dagster).

Hourly percentiles cannot be merged exactly, so a window's p50 / p95 is the mean of the hourly values weighted
by the hour's latency count, and ``p95_worst_hour_ms`` the highest hourly p95; both are labelled as such.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from obs_pipelines.reports.reading import Rollups

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SLOWEST_STEPS = 10  # rows of the slowest-steps table (a screen's worth; the JSON has the same rows)


def ratio(num: float, den: float) -> float | None:
    """num / den, None when there is nothing to divide by (a rate of zero requests is unknown, not 0)."""
    return float(num) / float(den) if den else None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts (NaN and numpy scalars are made JSON-ready once, by ``json_ready`` on the whole figures)."""
    return frame.to_dict("records")


def json_ready(value: Any) -> Any:
    """``value`` with every NaN (pandas' missing value) as None and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value


def in_window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    ws = frame["window_start"]
    return frame[(ws >= pd.Timestamp(start)) & (ws < pd.Timestamp(end))]


def traffic(request: pd.DataFrame, dimension: str | None = None, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Requests, errors, error rate and latency per ``by`` keys, dimension and value (request rollup rows;
    ``dimension`` keeps one of them). One groupby for every dimension: the dashboard calls this once."""
    rows = request if dimension is None else request[request["dimension"] == dimension]
    rows = rows.assign(value=rows["dimension_value"].fillna("overall"),
                       _p50w=rows["latency_p50_ms"] * rows["latency_count"],
                       _p95w=rows["latency_p95_ms"] * rows["latency_count"],
                       _lc=rows["latency_count"].where(rows["latency_p95_ms"].notna(), 0))
    keys = [*by, "dimension", "value"]
    grouped = rows.groupby(keys, dropna=False).agg(
        requests=("request_count", "sum"), errors=("error_count", "sum"), _p50w=("_p50w", "sum"),
        _p95w=("_p95w", "sum"), _lc=("_lc", "sum"), p95_worst_hour_ms=("latency_p95_ms", "max"))
    lc = grouped["_lc"].where(grouped["_lc"] > 0)
    grouped["error_rate"] = grouped["errors"] / grouped["requests"].where(grouped["requests"] > 0)
    grouped["p50_ms"] = grouped["_p50w"] / lc
    grouped["p95_ms"] = grouped["_p95w"] / lc
    out = grouped.drop(columns=["_p50w", "_p95w", "_lc"]).reset_index()
    return out.sort_values([*keys[:-1], "requests", "value"], ascending=[True] * (len(keys) - 1) + [False, True],
                           kind="stable")


def providers(error: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Spans, failed spans and their rate per provider (error rollup provider rows: span-level, the rollup's
    denominator is the provider's spans)."""
    rows = error[error["dimension"] == "provider"]
    grouped = rows.groupby([*by, "dimension_value"]).agg(spans=("span_count", "sum"), errors=("error_count", "sum"))
    grouped["error_rate"] = grouped["errors"] / grouped["spans"].where(grouped["spans"] > 0)
    return grouped.reset_index().rename(columns={"dimension_value": "value"}).sort_values(
        [*by, "spans", "value"], ascending=[True] * len(by) + [False, True], kind="stable")


def usage(usage_rows: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Calls, tokens and cost per ``by`` keys, dimension (route, model, prompt_version, user) and value."""
    grouped = usage_rows.groupby([*by, "dimension", "dimension_value"]).agg(
        calls=("call_count", "sum"), input_tokens=("input_tokens", "sum"), output_tokens=("output_tokens", "sum"),
        cost_usd=("cost_usd", "sum"))
    return grouped.reset_index().rename(columns={"dimension_value": "value"})


def slowest_steps(step: pd.DataFrame, limit: int = SLOWEST_STEPS, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Steps (span kind + name) by their latency-count-weighted hourly p95, slowest first (``limit`` per ``by``
    group)."""
    rows = step[step["dimension"] == "span_name"].copy()
    rows["_p95w"] = rows["latency_p95_ms"] * rows["latency_count"]
    rows["_lc"] = rows["latency_count"].where(rows["latency_p95_ms"].notna(), 0)
    grouped = rows.groupby([*by, "span_kind", "span_name"]).agg(
        spans=("span_count", "sum"), errors=("error_count", "sum"), _p95w=("_p95w", "sum"), _lc=("_lc", "sum"),
        p95_worst_hour_ms=("latency_p95_ms", "max"))
    grouped["p95_ms"] = grouped["_p95w"] / grouped["_lc"].where(grouped["_lc"] > 0)
    out = grouped.drop(columns=["_p95w", "_lc"]).reset_index()
    out = out.sort_values([*by, "p95_ms", "span_name"], ascending=[True] * len(by) + [False, True], kind="stable",
                          na_position="last")
    return out.groupby(list(by)).head(limit) if by else out.head(limit)


def scores(score: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Mean score per scorer and route (and overall), weighted by the hours' scored counts."""
    rows = score[score["dimension"].isin(["overall", "route"])].copy()
    rows["route"] = rows["dimension_value"].where(rows["dimension"] == "route", "(all routes)")
    rows["_w"] = rows["mean_score"] * rows["scored_count"]
    rows["_n"] = rows["scored_count"].where(rows["mean_score"].notna(), 0)
    grouped = rows.groupby([*by, "scorer", "route"]).agg(scored=("_n", "sum"), _w=("_w", "sum"))
    grouped["mean_score"] = grouped["_w"] / grouped["scored"].where(grouped["scored"] > 0)
    return grouped.drop(columns="_w").reset_index().sort_values([*by, "scorer", "route"], kind="stable")


def stack_windows(frame: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """The rows of each dashboard window, labelled ``window`` (a 24 h row appears in all three)."""
    return pd.concat([in_window(frame, end - length, end).assign(window=name) for name, length in WINDOWS.items()],
                     ignore_index=True)


def _parts(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, pd.DataFrame]:
    """The frame split by ``keys`` in one pass (without the key columns)."""
    return {k if isinstance(k, tuple) else (k,): g.drop(columns=keys)
            for k, g in frame.groupby(keys, sort=False, dropna=False)}


def _merge(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    return left.merge(right, on="value", how="outer").sort_values("value", kind="stable")


def window_figures(rollups: Rollups, end: datetime) -> dict[str, dict[str, Any]]:
    """Every dashboard figure of each window ending at ``end``: one groupby per table over the stacked
    windows."""
    by = ("window",)
    request = stack_windows(rollups.request, end)
    use = _parts(usage(stack_windows(rollups.usage, end), by), ["window", "dimension"])
    flows = _parts(traffic(request, by=by), ["window", "dimension"])
    provs = _parts(providers(stack_windows(rollups.error, end), by), ["window"])
    steps = _parts(slowest_steps(stack_windows(rollups.step, end), by=by), ["window"])
    score = _parts(scores(stack_windows(rollups.score, end), by), ["window"])
    hours = request[request["dimension"] == "overall"].groupby("window")["window_start"].nunique()
    empty = pd.DataFrame(columns=["value"])
    out = {}
    for name, length in WINDOWS.items():
        overall = flows.get((name, "overall"), empty)
        model_use = use.get((name, "model"), pd.DataFrame(columns=["cost_usd", "input_tokens", "output_tokens"]))
        requests = float(overall["requests"].sum()) if len(overall) else 0.0
        errors = float(overall["errors"].sum()) if len(overall) else 0.0
        out[name] = {
            "start": (end - length).isoformat(), "end": end.isoformat(),
            "hours": int(length / timedelta(hours=1)), "hours_with_data": int(hours.get(name, 0)),
            "requests": requests, "errors": errors, "error_rate": ratio(errors, requests),
            "p95_ms": None if overall.empty else overall["p95_ms"].iloc[0],
            "cost_usd": float(model_use["cost_usd"].sum()),
            "input_tokens": float(model_use["input_tokens"].sum()),
            "output_tokens": float(model_use["output_tokens"].sum()),
            **{key: _records(_merge(flows.get((name, dim), empty), use.get((name, dim), empty)))
               for key, dim in (("routes", "route"), ("models", "model"), ("prompt_versions", "prompt_version"))},
            "providers": _records(provs.get((name,), empty)),
            "slowest_steps": _records(steps.get((name,), empty)),
            "scores": _records(score.get((name,), empty)),
        }
    return out


def dashboard_figures(rollups: Rollups, alerts: list[dict[str, Any]], end: datetime) -> dict[str, Any]:
    """The figures of every window ending at ``end`` (exclusive: the hour after the newest rolled-up hour)."""
    return json_ready({
        "as_of": end.isoformat(),
        "windows": window_figures(rollups, end),
        "alerts_open": [a for a in alerts if a["status"] == "firing"],
        "alerts_recent": [a for a in alerts if a["status"] != "firing"],
    })
