"""The ``traces`` table: one row per request of the window, from the shared definition of a request
(store/traces.py) — the rows monitoring's request rollup counts — enriched from the window's spans: first
error, spans per kind, tokens, cost, models, prompt versions and the wall-clock time per step kind.

Everything is vectorised pandas over the window's spans (group-bys, merges, cumulative maxima); no Python
loop per span or per request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obs_pipelines.observability.errors import origin_errors
from obs_pipelines.observability.reading import member
from obs_pipelines.observability.tables import COUNTED_KINDS, TIMED_KINDS, traces
from obs_pipelines.pricing import PriceTable

USAGE_KINDS = ("llm", "embedding")


def span_costs(spans: pd.DataFrame, prices: PriceTable) -> pd.Series:
    """Cost in USD of each llm / embedding span (app-reported, else tokens x price table); 0 elsewhere."""
    usage = spans["kind"].isin(USAGE_KINDS)
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


def kind_times(spans: pd.DataFrame) -> pd.DataFrame:
    """Per (trace_id, kind): the length in ms of the union of the kind's span intervals (parallel spans
    count once). Vectorised interval union: sort by start, a new block starts where the start passes the
    running maximum end of the earlier spans."""
    steps = spans.loc[spans["kind"].isin(TIMED_KINDS) & spans["end_time"].notna(),
                      ["trace_id", "kind", "start_time", "end_time"]]
    if steps.empty:
        return pd.DataFrame(columns=["trace_id", "kind", "ms"])
    steps = steps.sort_values(["trace_id", "kind", "start_time"])
    group = [steps["trace_id"], steps["kind"]]
    prev_max_end = steps.groupby(group)["end_time"].cummax().groupby(group).shift()
    new_block = prev_max_end.isna() | (steps["start_time"] > prev_max_end)
    block = new_block.cumsum()
    blocks = steps.groupby([steps["trace_id"], steps["kind"], block]).agg(
        t0=("start_time", "min"), t1=("end_time", "max"))
    blocks["ms"] = (blocks["t1"] - blocks["t0"]) / pd.Timedelta(milliseconds=1)
    return blocks.groupby(level=[0, 1])["ms"].sum().reset_index()


def traces_frame(requests: pd.DataFrame, spans: pd.DataFrame, prices: PriceTable,
                 error_rules=(), costs: pd.Series | None = None) -> pd.DataFrame:
    """Rows of the ``traces`` table (without window columns) for the window's ``requests``. ``costs``: the
    spans' ``span_costs`` when already computed (index of ``spans``)."""
    out = requests.rename(columns={"req_start": "start_time", "req_end": "end_time"}).copy()
    out["latency_ms"] = ((out["end_time"] - out["start_time"]) / pd.Timedelta(milliseconds=1)).astype("float64")
    out["status"] = np.where(out["is_error"] > 0, "error", "ok")
    keep = member(spans["trace_id"], out["trace_id"])
    mine = spans[keep]
    mine_costs = span_costs(mine, prices) if costs is None else costs[keep]
    tid = mine["trace_id"]

    kinds = mine["kind"].where(mine["kind"].isin(COUNTED_KINDS), "other")
    counts = mine.groupby([tid, kinds]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(COUNTED_KINDS), fill_value=0)
    counts.columns = [f"{k}_spans" for k in COUNTED_KINDS]
    counts["span_count"] = counts.sum(axis=1)

    usage = mine.assign(cost=mine_costs).groupby("trace_id").agg(
        input_tokens=("input_tokens", "sum"), output_tokens=("output_tokens", "sum"),
        cached_input_tokens=("cached_input_tokens", "sum"), cost_usd=("cost", "sum"))
    llm = mine[mine["kind"] == "llm"]
    prompt = llm["prompt_name"].fillna("").str.cat(llm["prompt_version"].fillna(""), sep=":")
    prompt = prompt.where(llm["prompt_name"].notna() | llm["prompt_version"].notna())
    texts = pd.DataFrame({"models": _joined(llm["model"], llm["trace_id"]),
                          "prompt_versions": _joined(prompt, llm["trace_id"])})

    times = kind_times(mine)
    times = times.pivot(index="trace_id", columns="kind", values="ms") if len(times) else pd.DataFrame()
    times = times.reindex(columns=list(TIMED_KINDS)).fillna(0.0) if len(times) else pd.DataFrame(
        columns=list(TIMED_KINDS))
    times.columns = [f"{k}_ms" for k in TIMED_KINDS]

    errors = origin_errors(mine, error_rules)
    first = (errors.sort_values(["trace_id", "start_time", "span_id"]).drop_duplicates("trace_id")
             .set_index("trace_id")[["error_class", "name", "error_message"]]
             .rename(columns={"name": "error_span"}))
    first["error_message"] = first["error_message"].str.slice(0, 500)

    out = out.set_index("trace_id")
    out = out.join(counts).join(usage).join(texts).join(times).join(first).reset_index()
    count_cols = ["span_count", *(f"{k}_spans" for k in COUNTED_KINDS)]
    out[count_cols] = out[count_cols].fillna(0).astype("int64")
    for col in ("input_tokens", "output_tokens", "cached_input_tokens"):
        out[col] = out[col].fillna(0).astype("int64")
    out["cost_usd"] = out["cost_usd"].fillna(0.0)
    time_cols = [f"{k}_ms" for k in TIMED_KINDS]
    out[time_cols] = out[time_cols].astype("float64").fillna(0.0)
    return out[[c.name for c in traces.columns if c.name not in ("window_start", "window_end", "computed_at")]]
