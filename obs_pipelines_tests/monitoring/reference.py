"""An independent, deliberately plain pandas computation of the rollups, to check the SQL against.

It shares no code with ``obs_pipelines.monitoring.rollups``: requests are assembled with groupby / merge
over *all* spans of the test, percentiles come from ``numpy.quantile`` (linear), and the cost of every
call comes from genai-prices' own ``calc_price`` (one call per row -- fine for test-sized data). Model rows
use the canonical key of ``obs_pipelines.pricing.models.model_key`` (tested on its own).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from genai_prices import Usage, calc_price

from obs_pipelines.pricing.models import model_key

NONE = "(none)"
OTHER = "(other)"
QS = (0.5, 0.9, 0.95, 0.99)
PCTS = ["latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms"]


def spans_frame(rows: list[dict]) -> pd.DataFrame:
    f = pd.DataFrame(rows).astype({"start_time": "datetime64[us]", "end_time": "datetime64[us]"})
    for col in ("route", "model", "provider", "prompt_name", "prompt_version", "user_id", "parent_span_id",
                "error_type", "error_message", "cost_usd", "cached_input_tokens", "input_tokens",
                "output_tokens", "name", "kind"):
        if col not in f:
            f[col] = None
    return f


def window(f: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return f[(f["start_time"] >= start) & (f["start_time"] < end)]


def _stats(values: pd.Series, errors: pd.Series) -> dict:
    v = values.dropna().to_numpy(dtype="float64")
    out = {
        "count": len(values),
        "error_count": int(errors.sum()),
        "latency_count": len(v),
        "latency_max_ms": float(v.max()) if len(v) else np.nan,
        "latency_mean_ms": float(v.mean()) if len(v) else np.nan,
    }
    qs = np.quantile(v, QS, method="linear") if len(v) else [np.nan] * 4
    out.update(dict(zip(PCTS, map(float, qs))))
    return out


def _ms(end: pd.Series, start: pd.Series) -> pd.Series:
    return (end - start).dt.total_seconds() * 1000.0


def requests(all_spans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per request (trace) of the window: route, latency_ms, is_error."""
    w = window(all_spans, start, end)
    out = []
    roots_anywhere = set(all_spans.loc[all_spans["parent_span_id"].isna(), "trace_id"])
    first_start = all_spans.groupby("trace_id")["start_time"].min()
    for trace_id, spans in w.groupby("trace_id"):
        roots = spans[spans["parent_span_id"].isna()]
        if len(roots):
            s, e = roots["start_time"].min(), roots["end_time"].max()
            route = roots["route"].dropna().min() if roots["route"].notna().any() else None
        else:
            if trace_id in roots_anywhere or first_start[trace_id] < start:
                continue
            s, e = spans["start_time"].min(), spans["end_time"].max()
            route = None
        if route is None:
            route = spans["route"].dropna().min() if spans["route"].notna().any() else NONE
        out.append({"trace_id": trace_id, "route": route,
                    "latency_ms": (e - s).total_seconds() * 1000.0 if pd.notna(e) else np.nan,
                    "is_error": bool((spans["status"] == "error").any())})
    return pd.DataFrame(out, columns=["trace_id", "route", "latency_ms", "is_error"])


def prompt_label(f: pd.DataFrame) -> pd.Series:
    both = f["prompt_name"].notna() & f["prompt_version"].notna()
    label = f["prompt_version"].astype(object).where(f["prompt_version"].notna(), f["prompt_name"])
    label = label.where(label.notna(), NONE)
    return label.where(~both, f["prompt_name"].astype(str) + "@" + f["prompt_version"].astype(str))


def model_label(spans: pd.DataFrame) -> pd.Series:
    """Rollups by model group by the canonical model key (one name at a time here)."""
    return spans["model"].map(lambda m: NONE if pd.isna(m) else model_key(m)).astype(object)


def request_rollup(all_spans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    req = requests(all_spans, start, end)
    rows = [{"dimension": "overall", "dimension_value": None, **_stats(req["latency_ms"], req["is_error"])}]
    for route, g in req.groupby("route"):
        rows.append({"dimension": "route", "dimension_value": route, **_stats(g["latency_ms"], g["is_error"])})
    llm = window(all_spans, start, end)
    llm = llm[llm["kind"] == "llm"].copy()
    llm["latency_ms"] = _ms(llm["end_time"], llm["start_time"])
    llm["is_error"] = llm["status"] == "error"
    llm["model_label"] = model_label(llm)
    llm["prompt"] = prompt_label(llm)
    for dim, col in (("model", "model_label"), ("prompt_version", "prompt")):
        for value, g in llm.groupby(col):
            rows.append({"dimension": dim, "dimension_value": value, **_stats(g["latency_ms"], g["is_error"])})
    return pd.DataFrame(rows).rename(columns={"count": "request_count"})


def step_rollup(all_spans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    w = window(all_spans, start, end).copy()
    w["latency_ms"] = _ms(w["end_time"], w["start_time"])
    w["is_error"] = w["status"] == "error"
    rows = []
    for kind, g in w.groupby("kind"):
        rows.append({"dimension": "span_kind", "dimension_value": kind, "span_kind": kind, "span_name": None,
                     **_stats(g["latency_ms"], g["is_error"])})
    for (kind, name), g in w.groupby(["kind", "name"]):
        rows.append({"dimension": "span_name", "dimension_value": name, "span_kind": kind, "span_name": name,
                     **_stats(g["latency_ms"], g["is_error"])})
    return pd.DataFrame(rows).rename(columns={"count": "span_count"})


def call_costs(calls: pd.DataFrame, overrides: dict[str, dict[str, float]] | None = None) -> pd.Series:
    """Cost of each call: reported cost, else an override, else genai-prices' calc_price, else NaN."""
    overrides = {k.lower(): v for k, v in (overrides or {}).items()}
    costs = []
    for r in calls.itertuples():
        if pd.notna(r.cost_usd):
            costs.append(float(r.cost_usd))
            continue
        inp = 0 if pd.isna(r.input_tokens) else int(r.input_tokens)
        out = 0 if pd.isna(r.output_tokens) else int(r.output_tokens)
        cached = 0 if pd.isna(r.cached_input_tokens) else int(r.cached_input_tokens)
        if pd.isna(r.model):
            costs.append(np.nan)
            continue
        o = overrides.get(str(r.model).lower())
        if o is not None:
            rate_cached = o.get("cached_input", o["input"])
            costs.append(((inp - cached) * o["input"] + cached * rate_cached + out * o["output"]) / 1e6)
            continue
        usage = Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out)
        when = r.start_time.to_pydatetime().replace(tzinfo=UTC)
        price = None
        for provider in ([r.provider, None] if pd.notna(r.provider) else [None]):
            try:
                price = calc_price(usage, r.model, provider_id=provider, genai_request_timestamp=when)
                break
            except LookupError:
                continue
        costs.append(float(price.total_price) if price is not None else np.nan)
    return pd.Series(costs, index=calls.index, dtype="float64")


def usage_rollup(all_spans: pd.DataFrame, start: datetime, end: datetime, top_n: int,
                 overrides: dict | None = None) -> pd.DataFrame:
    calls = window(all_spans, start, end)
    calls = calls[calls["kind"].isin(["llm", "embedding"])].copy()
    calls["cost"] = call_costs(calls, overrides)
    root_route = (all_spans[all_spans["parent_span_id"].isna()].groupby("trace_id")["route"].min())
    calls["route_label"] = calls["route"].astype(object).where(
        calls["route"].notna(), calls["trace_id"].map(root_route))
    calls["route_label"] = calls["route_label"].where(calls["route_label"].notna(), NONE)
    calls["model_label"] = model_label(calls)
    calls["prompt"] = prompt_label(calls)
    for col in ("input_tokens", "output_tokens", "cached_input_tokens"):
        calls[col] = pd.to_numeric(calls[col]).fillna(0)
    users = calls[calls["user_id"].notna()].groupby("user_id").agg(
        cost=("cost", lambda s: s.fillna(0).sum()),
        tokens=("input_tokens", "sum"), out=("output_tokens", "sum"))
    users["tokens"] += users["out"]
    users = users.reset_index().sort_values(["cost", "tokens", "user_id"], ascending=[False, False, True])
    top = set(users["user_id"].head(top_n))
    calls["segment"] = np.where(calls["user_id"].isna(), NONE,
                                np.where(calls["user_id"].isin(top), calls["user_id"], OTHER))

    def agg(g: pd.DataFrame) -> dict:
        reported = g["cost_usd"].notna()
        return {
            "call_count": len(g),
            "input_tokens": int(g["input_tokens"].sum()),
            "output_tokens": int(g["output_tokens"].sum()),
            "cached_input_tokens": int(g["cached_input_tokens"].sum()),
            "cost_usd": float(g["cost"].fillna(0).sum()),
            "reported_cost_usd": float(g.loc[reported, "cost"].sum()),
            "computed_cost_usd": float(g.loc[~reported, "cost"].fillna(0).sum()),
            "unpriced_call_count": int(g["cost"].isna().sum()),
        }

    rows = [{"dimension": "overall", "dimension_value": None, **agg(calls)}]
    for dim, col in (("model", "model_label"), ("route", "route_label"), ("prompt_version", "prompt"),
                     ("user", "segment")):
        for value, g in calls.groupby(col):
            rows.append({"dimension": dim, "dimension_value": value, **agg(g)})
    return pd.DataFrame(rows)


def origin_errors(all_spans: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Failed spans of the window that have no failed child span in the window."""
    w = window(all_spans, start, end)
    errors = w[w["status"] == "error"]
    failed_parents = set(zip(errors["trace_id"], errors["parent_span_id"]))
    keep = [(t, s) not in failed_parents for t, s in zip(errors["trace_id"], errors["span_id"])]
    return errors[keep]


def compare(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str], exact: list[str],
            approx: list[str], rel: float = 1e-9, abs_tol: float = 1e-9) -> None:
    """Same key set; exact integer columns equal; float columns equal within tolerance (NaN == NaN)."""
    a = actual.copy()
    e = expected.copy()
    for k in keys:
        a[k] = a[k].astype(object).where(a[k].notna(), "<null>")
        e[k] = e[k].astype(object).where(e[k].notna(), "<null>")
    a = a.set_index(keys).sort_index()
    e = e.set_index(keys).sort_index()
    assert list(a.index) == list(e.index), f"keys differ:\n{sorted(set(a.index) ^ set(e.index))}"
    for col in exact:
        assert a[col].astype("int64").tolist() == e[col].astype("int64").tolist(), col
    for col in approx:
        av = a[col].astype("float64").to_numpy()
        ev = e[col].astype("float64").to_numpy()
        both_nan = np.isnan(av) & np.isnan(ev)
        ok = both_nan | np.isclose(av, ev, rtol=rel, atol=abs_tol)
        assert ok.all(), f"{col}: {list(zip(a.index[~ok], av[~ok], ev[~ok]))}"
