"""``prompt_version_comparison_daily``: per route and prompt name, each version of the day against the version
before it (in version order) over the same day: calls, latency p50 / p95, cost per call, error rate, output
tokens, with sample sizes and significance tests, so a prompt update that changed behaviour is caught.

Tests (two-sided): Mann-Whitney U (scipy) on latency, cost per call and output tokens of the calls; Fisher's
exact test on the error counts. A version, or its predecessor, with fewer than ``comparison_min_samples``
calls is marked ``insufficient_samples``, not judged. Otherwise the verdict is ``regression`` when a test
below ``comparison_alpha`` says the new version is slower (p95), costlier per call or fails more often,
``changed`` when the only significant differences go the other way or are in output length (a prompt whose
answers became six times shorter changed, whatever its latency did), else ``no_change``. Quality scores
(mean_score) come once the online evals phase publishes them; the column is null until then.
"""

from __future__ import annotations

import re
from datetime import datetime
from itertools import pairwise

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.observability import reading
from obs_pipelines.pricing import PriceTable
from obs_pipelines.store.query import fetch_frame, window_params
from obs_pipelines.store.traces import NULL_LABEL, WINDOW

_SQL = f"""
SELECT COALESCE(route, '{NULL_LABEL}') AS route, COALESCE(prompt_name, '{NULL_LABEL}') AS prompt_name,
       COALESCE(prompt_version, '{NULL_LABEL}') AS prompt_version, start_time, end_time, status, model, provider,
       input_tokens, output_tokens, cached_input_tokens, cost_usd
FROM spans
WHERE {WINDOW} AND kind = 'llm' AND (prompt_name IS NOT NULL OR prompt_version IS NOT NULL)
"""
KEYS = ["route", "prompt_name"]
COLUMNS = ["route", "prompt_name", "prompt_version", "previous_version", "calls", "previous_calls",
           "latency_p50_ms", "latency_p95_ms", "previous_latency_p95_ms", "cost_per_call_usd",
           "previous_cost_per_call_usd", "error_rate", "previous_error_rate", "output_tokens_mean",
           "previous_output_tokens_mean", "latency_p_value", "cost_p_value", "error_p_value",
           "output_tokens_p_value", "mean_score", "verdict", "reasons"]


def version_order(version: str) -> tuple:
    """Natural order: "2" < "10", "v1.2" < "v1.10"."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|\D+", str(version)))


def _mwu(a: pd.Series, b: pd.Series) -> float:
    a, b = a.dropna().to_numpy(), b.dropna().to_numpy()
    if len(a) == 0 or len(b) == 0 or (np.all(a == a[0]) and np.all(b == a[0])):
        return 1.0
    from scipy import stats  # lazily: scipy costs ~0.4 s of every code-location load

    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _fisher(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    from scipy import stats

    return float(stats.fisher_exact([[errors_a, n_a - errors_a], [errors_b, n_b - errors_b]]).pvalue)


def _summary(calls: pd.DataFrame) -> dict:
    return {"calls": len(calls), "latency_p50_ms": float(calls["latency_ms"].quantile(0.5)),
            "latency_p95_ms": float(calls["latency_ms"].quantile(0.95)),
            "cost_per_call_usd": float(calls["cost"].mean()), "error_rate": float(calls["is_error"].mean()),
            "output_tokens_mean": float(calls["output_tokens"].mean())}


def _compare(new: pd.DataFrame, old: pd.DataFrame, min_samples: int, alpha: float) -> dict:
    a, b = _summary(new), _summary(old)
    row = {**a, **{f"previous_{k}": b[k] for k in ("calls", "latency_p95_ms", "cost_per_call_usd", "error_rate",
                                                  "output_tokens_mean")}}
    if a["calls"] < min_samples or b["calls"] < min_samples:
        return {**row, "verdict": "insufficient_samples",
                "reasons": f"fewer than {min_samples} calls ({a['calls']} vs {b['calls']})"}
    row["latency_p_value"] = _mwu(new["latency_ms"], old["latency_ms"])
    row["cost_p_value"] = _mwu(new["cost"], old["cost"])
    row["output_tokens_p_value"] = _mwu(new["output_tokens"], old["output_tokens"])
    row["error_p_value"] = _fisher(int(new["is_error"].sum()), a["calls"], int(old["is_error"].sum()), b["calls"])
    worse, other = [], []
    for name, p, up, judged in (
            ("latency p95", row["latency_p_value"], a["latency_p95_ms"] > b["latency_p95_ms"], True),
            ("cost per call", row["cost_p_value"], a["cost_per_call_usd"] > b["cost_per_call_usd"], True),
            ("error rate", row["error_p_value"], a["error_rate"] > b["error_rate"], True),
            ("output tokens", row["output_tokens_p_value"], a["output_tokens_mean"] > b["output_tokens_mean"], False)):
        if p < alpha:
            (worse if up and judged else other).append(f"{name} {'up' if up else 'down'} (p={p:.2g})")
    verdict = "regression" if worse else "changed" if other else "no_change"
    return {**row, "verdict": verdict, "reasons": "; ".join(worse + other) or None}


def prompt_comparison(engine: Engine, day_start: datetime, day_end: datetime, prices: PriceTable,
                      min_samples: int, alpha: float) -> pd.DataFrame:
    """``prompt_version_comparison_daily`` rows (without window columns): versions with a predecessor."""
    calls = fetch_frame(engine, _SQL, window_params(day_start, day_end))
    if calls.empty:
        return pd.DataFrame(columns=COLUMNS)
    calls = reading.parse_times(calls, "start_time", "end_time")
    calls["latency_ms"] = reading.duration_ms(calls["start_time"], calls["end_time"])
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        calls[col] = pd.to_numeric(calls[col], errors="coerce").astype("float64")
    calls["cost"] = prices.compute_costs(calls).fillna(0.0)
    calls["is_error"] = (calls["status"] == "error").astype("int64")
    rows = []
    for (route, name), group in calls.groupby(KEYS, sort=True):
        versions = sorted(group["prompt_version"].unique(), key=version_order)
        by_version = dict(tuple(group.groupby("prompt_version")))
        for previous, version in pairwise(versions):
            rows.append({"route": route, "prompt_name": name, "prompt_version": version,
                         "previous_version": previous,
                         **_compare(by_version[version], by_version[previous], min_samples, alpha)})
    return pd.DataFrame(rows, columns=COLUMNS)
