"""Headline figures of a rollup window, for materialization metadata (plotted per partition in the UI)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from obs_pipelines.markdown import escape_markdown


def _overall(frame: pd.DataFrame) -> pd.Series | None:
    if frame.empty or "dimension" not in frame:
        return None
    rows = frame[frame["dimension"] == "overall"]
    return None if rows.empty else rows.iloc[0]


def _num(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(value) else value


def request_figures(request: pd.DataFrame) -> dict[str, float]:
    """requests, error rate and latency percentiles of the window's overall row (zeros when idle)."""
    row = _overall(request)
    get = (lambda c: _num(row[c])) if row is not None else (lambda c: 0.0)
    return {
        "requests": int(get("request_count")),
        "errors": int(get("error_count")),
        "error_rate": get("error_rate"),
        "latency_p50_ms": get("latency_p50_ms"),
        "latency_p95_ms": get("latency_p95_ms"),
        "latency_p99_ms": get("latency_p99_ms"),
    }


def step_figures(step: pd.DataFrame) -> dict[str, float]:
    """The slowest step (span name) by p95 and its p95."""
    rows = step[step["dimension"] == "span_name"] if not step.empty else step
    if rows.empty:
        return {"spans": 0, "slowest_step_p95_ms": 0.0}
    slowest = rows.sort_values("latency_p95_ms", ascending=False).iloc[0]
    return {
        "spans": int(pd.to_numeric(step.loc[step["dimension"] == "span_kind", "span_count"]).sum()),
        "slowest_step": str(slowest["span_name"]),
        "slowest_step_p95_ms": _num(slowest["latency_p95_ms"]),
    }


def error_figures(error: pd.DataFrame) -> dict[str, float]:
    row = _overall(error)
    figures: dict[str, float] = {"errors": int(_num(row["error_count"])) if row is not None else 0}
    if not error.empty:
        by_class = error[error["dimension"] == "error_class"]
        if not by_class.empty:
            top = by_class.sort_values("error_count", ascending=False).iloc[0]
            figures["top_error_class"] = str(top["error_class"])
    return figures


def usage_figures(usage: pd.DataFrame) -> dict[str, float]:
    row = _overall(usage)
    get = (lambda c: _num(row[c])) if row is not None else (lambda c: 0.0)
    return {
        "cost_usd": round(get("cost_usd"), 6),
        "input_tokens": int(get("input_tokens")),
        "output_tokens": int(get("output_tokens")),
        "llm_calls": int(get("call_count")),
        "unpriced_calls": int(get("unpriced_call_count")),
    }


FIGURES = {"request": request_figures, "step": step_figures, "error": error_figures, "usage": usage_figures}


def markdown_table(frame: pd.DataFrame, columns: list[str], sort_by: str | None = None, limit: int = 10) -> str:
    """A short markdown table of the top rows (the UI renders it in the materialization). Text cells are
    escaped (:func:`escape_markdown`): routes, models and user ids come from the apps."""
    if frame.empty:
        return "_no rows in this window_"
    shown = frame.sort_values(sort_by, ascending=False) if sort_by else frame
    shown = shown[[c for c in columns if c in shown]].head(limit)
    header = "| " + " | ".join(escape_markdown(c) for c in shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
    body = "\n".join("| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False))
    return header + body


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return escape_markdown(value)


PREVIEW = {
    "request": (["dimension", "dimension_value", "request_count", "error_rate", "latency_p50_ms", "latency_p95_ms",
                 "latency_p99_ms"], "request_count"),
    "step": (["span_kind", "span_name", "span_count", "error_rate", "latency_p50_ms", "latency_p95_ms"],
             "latency_p95_ms"),
    "error": (["dimension", "error_class", "provider", "error_count", "error_rate", "example_trace_id"],
              "error_count"),
    "usage": (["dimension", "dimension_value", "call_count", "input_tokens", "output_tokens", "cost_usd"],
              "cost_usd"),
}


def preview(kind: str, frame: pd.DataFrame) -> str:
    columns, sort_by = PREVIEW[kind]
    if kind == "step" and not frame.empty:
        frame = frame[frame["dimension"] == "span_name"]
    return markdown_table(frame, columns, sort_by)


def totals(figures_by_hour: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Sums of the additive figures over several hours (a backfill run's summary)."""
    out: dict[str, float] = {"partitions": len(figures_by_hour)}
    for figures in figures_by_hour.values():
        for name, value in figures.items():
            if name in ("requests", "errors", "spans", "cost_usd", "input_tokens", "output_tokens", "llm_calls",
                        "unpriced_calls"):
                out[name] = out.get(name, 0) + value
    return out
