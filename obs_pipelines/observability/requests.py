"""The ``traces`` table: one row per request of the window, from the shared definition of a request
(store/traces.py) — the rows monitoring's request rollup counts — enriched from the window's spans: first
error, spans per kind, tokens, cost, models, prompt versions and the wall-clock time per step kind.

Spans per kind, tokens and step times come aggregated per trace (``reading.trace_aggregates``: SQL on
PostgreSQL); cost, models, prompt versions and the first error from the window's llm / embedding and failed
spans, in vectorised pandas. No Python loop per span or per request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obs_pipelines.observability.errors import origin_errors
from obs_pipelines.observability.span_stats import COUNT_COLUMNS, TIME_COLUMNS, TOKEN_COLUMNS
from obs_pipelines.observability.tables import traces
from obs_pipelines.pricing import PriceTable
from obs_pipelines.store.schema import MODEL_CALL_KINDS


def span_costs(spans: pd.DataFrame, prices: PriceTable) -> pd.Series:
    """Cost in USD of each llm / embedding span (app-reported, else tokens x price table); 0 elsewhere."""
    usage = spans["kind"].isin(MODEL_CALL_KINDS)
    cost = pd.Series(0.0, index=spans.index)
    if usage.any():
        cost[usage] = prices.compute_costs(spans.loc[usage]).fillna(0.0)
    return cost


def _joined(values: pd.Series, keys: pd.Series) -> pd.Series:
    """Sorted distinct non-null values per key, comma-separated."""
    frame = pd.DataFrame({"k": keys, "v": values}).dropna().drop_duplicates().sort_values(["k", "v"])
    # most requests have one model / prompt: only keys with several values need a join per group
    several = frame["k"].duplicated(keep=False)
    single = frame.loc[~several].set_index("k")["v"]
    return pd.concat([single, frame.loc[several].groupby("k")["v"].agg(", ".join)])


def traces_frame(requests: pd.DataFrame, aggregates: pd.DataFrame, spans: pd.DataFrame, prices: PriceTable,
                 error_rules=(), costs: pd.Series | None = None, calls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of the ``traces`` table (without window columns) for the window's ``requests``.

    ``aggregates``: the window's per-trace span counts, tokens and step times (``reading.trace_aggregates``);
    ``spans``: at least the window's failed spans (first error) and, unless ``calls`` is given, its llm /
    embedding spans (cost, models, prompt versions; ``costs``: their ``span_costs`` when already computed);
    ``calls``: per trace, cost_usd, models and prompt_versions already aggregated (``reading.trace_calls``)."""
    out = requests.rename(columns={"req_start": "start_time", "req_end": "end_time"}).copy()
    out["latency_ms"] = ((out["end_time"] - out["start_time"]) / pd.Timedelta(milliseconds=1)).astype("float64")
    out["status"] = np.where(out["is_error"] > 0, "error", "ok")
    if calls is None:
        usage = spans["kind"].isin(MODEL_CALL_KINDS)
        call_costs = span_costs(spans[usage], prices) if costs is None else costs[usage]
        llm = spans[spans["kind"] == "llm"]
        prompt = llm["prompt_name"].fillna("").str.cat(llm["prompt_version"].fillna(""), sep=":")
        prompt = prompt.where(llm["prompt_name"].notna() | llm["prompt_version"].notna())
        calls = pd.DataFrame({"cost_usd": call_costs.groupby(spans.loc[usage, "trace_id"]).sum(),
                              "models": _joined(llm["model"], llm["trace_id"]),
                              "prompt_versions": _joined(prompt, llm["trace_id"])})
    else:
        calls = calls.set_index("trace_id")[["cost_usd", "models", "prompt_versions"]]

    errors = origin_errors(spans[spans["status"] == "error"], error_rules)
    first = (errors.sort_values(["trace_id", "start_time", "span_id"]).drop_duplicates("trace_id")
             .set_index("trace_id")[["error_class", "name", "error_message"]]
             .rename(columns={"name": "error_span"}))
    first["error_message"] = first["error_message"].str.slice(0, 500)

    out = out.set_index("trace_id")
    out = (out.join(aggregates.set_index("trace_id")).join(calls).join(first).reset_index())
    count_cols = [*COUNT_COLUMNS, *TOKEN_COLUMNS]
    out[count_cols] = out[count_cols].fillna(0).astype("int64")
    out["cost_usd"] = out["cost_usd"].astype("float64").fillna(0.0)
    out[list(TIME_COLUMNS)] = out[list(TIME_COLUMNS)].astype("float64").fillna(0.0)
    return out[[c.name for c in traces.columns if c.name not in ("window_start", "window_end", "computed_at")]]
