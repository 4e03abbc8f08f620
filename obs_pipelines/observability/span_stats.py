"""Per-request statistics of a window's spans, in pandas: spans per kind, token sums and the wall-clock time
per step kind. The SQLite path of ``reading.trace_aggregates`` (PostgreSQL computes the same columns in SQL,
without sending the spans over)."""

from __future__ import annotations

import pandas as pd

from obs_pipelines.observability.tables import COUNTED_KINDS, TIMED_KINDS

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens")
COUNT_COLUMNS = ("span_count", *(f"{k}_spans" for k in COUNTED_KINDS))
TIME_COLUMNS = tuple(f"{k}_ms" for k in TIMED_KINDS)
AGGREGATE_COLUMNS = ("trace_id", *COUNT_COLUMNS, *TOKEN_COLUMNS, *TIME_COLUMNS)


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


def span_aggregates(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per trace_id of ``spans`` (trace_id, kind, start_time, end_time and the token columns):
    ``AGGREGATE_COLUMNS``."""
    if spans.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "trace_id" else "float64")
                             for c in AGGREGATE_COLUMNS})
    tid = spans["trace_id"]
    kinds = spans["kind"].where(spans["kind"].isin(COUNTED_KINDS), "other")
    counts = spans.groupby([tid, kinds]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(COUNTED_KINDS), fill_value=0)
    counts.columns = [f"{k}_spans" for k in COUNTED_KINDS]
    counts.insert(0, "span_count", counts.sum(axis=1))
    tokens = spans.groupby(tid)[list(TOKEN_COLUMNS)].sum()
    times = kind_times(spans)
    times = (times.pivot(index="trace_id", columns="kind", values="ms") if len(times)
             else pd.DataFrame(index=pd.Index([], name="trace_id")))
    times = times.reindex(columns=list(TIMED_KINDS))
    times.columns = list(TIME_COLUMNS)
    out = counts.join(tokens).join(times).rename_axis("trace_id").reset_index()
    out[list(TIME_COLUMNS)] = out[list(TIME_COLUMNS)].astype("float64").fillna(0.0)
    return out[list(AGGREGATE_COLUMNS)]
