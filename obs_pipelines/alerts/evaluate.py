"""A rule over a table's rows -> one result per (window, group): value, threshold, samples, passed.

Pure pandas: the frames come from `source.py` (the rule's table over the windows judged plus the history the
rule needs), the results go to the asset checks and the alert sensor. A result whose group has too few samples
(or an anomaly without enough baseline) is not judged (``judged`` False, ``passed`` True): it neither fires nor
counts as a good window for a recovery.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom

from obs_pipelines.alerts.rules import AnomalyRule, BurnRateRule, EvalScoreRule, ThresholdRule

HOUR = timedelta(hours=1)
MAD_SCALE = 1.4826  # MAD x this estimates the standard deviation of normal data
COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
RESULT_COLUMNS = ["window_start", "window_end", "group_key", "group", "value", "threshold", "samples",
                  "judged", "passed", "baseline"]


@dataclass
class RuleResult:
    """One rule's verdict on one group in one window."""

    rule: str
    window_start: datetime
    window_end: datetime
    group: dict[str, Any]
    value: float | None
    threshold: float | None
    samples: float | None
    judged: bool
    passed: bool
    baseline: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def group_key(self) -> str:
        return group_key(self.group)


def group_key(group: dict[str, Any]) -> str:
    """A stable text key of a group (``{}`` for overall)."""
    return json.dumps(group, sort_keys=True, default=str)


def history_needed(rule) -> timedelta:
    """How far before the first judged window the rule reads rows."""
    if isinstance(rule, AnomalyRule):
        if rule.baseline == "same_hour_previous_days":
            return timedelta(days=rule.baseline_windows)
        if rule.baseline == "both":
            return max(timedelta(days=rule.baseline_windows), rule.trailing_hours * HOUR)
        return rule.baseline_windows * HOUR
    if isinstance(rule, BurnRateRule):
        return max(w.long_hours for w in rule.windows) * HOUR
    return timedelta(0)


def hour_starts(start: datetime, end: datetime) -> list[datetime]:
    out, t = [], start
    while t < end:
        out.append(t)
        t += HOUR
    return out


# ---- grouping ---------------------------------------------------------------------------------------------
def grouped(rule, frame: pd.DataFrame) -> pd.DataFrame:
    """The rule's rows with a ``group_key`` column (and ``group`` dicts): rollup tables by their
    dimension / dimension_value pair, other tables by plain columns. ``where`` filters first."""
    frame = exploded(rule, frame.copy())
    for column, value in getattr(rule, "where", {}).items():
        frame = frame[frame[column].astype(str) == str(value)]
    group_by = rule.group_by
    dimension = getattr(rule, "dimension", None)
    if dimension is not None:  # one dimension's rows, grouped by plain columns (the dimension names its value)
        frame = frame[frame["dimension"] == dimension]
        if dimension not in frame.columns:
            frame[dimension] = frame["dimension_value"]
        else:  # a column of that name, null on rows written before it existed (score rollups before 0014)
            frame[dimension] = frame[dimension].where(frame[dimension].notna(), frame["dimension_value"])
    if isinstance(group_by, str) and "dimension" in frame.columns and dimension is None:
        frame = frame[frame["dimension"] == group_by]
        if group_by == "overall":
            groups = [{} for _ in range(len(frame))]
        else:
            groups = [{group_by: v} for v in frame["dimension_value"]]
    else:
        columns = [group_by] if isinstance(group_by, str) and group_by != "overall" else (
            [] if group_by == "overall" else list(group_by))
        groups = ([dict(zip(columns, values, strict=True))
                   for values in zip(*(frame[c].tolist() for c in columns), strict=True)] if columns
                  else [{} for _ in range(len(frame))])
    frame["group"] = groups
    frame["group_key"] = [group_key(g) for g in groups]
    frame["window_start"] = pd.to_datetime(frame["window_start"])
    if getattr(rule, "aggregate", None):
        frame = _aggregated(rule, frame)
    return frame


def _object(text) -> dict:
    if isinstance(text, dict):
        return text
    try:
        found = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def exploded(rule, frame: pd.DataFrame) -> pd.DataFrame:
    """The rule's ``explode``: each row once per key of its JSON-object column, the key in the named column and
    its value in the object's column (rows without the object drop out)."""
    for key, column in getattr(rule, "explode", {}).items():
        if column not in frame.columns:
            return frame.iloc[0:0].assign(**{key: pd.Series(dtype=object)})
        pairs = frame[column].map(lambda v: list(_object(v).items()))
        frame = frame.assign(_pairs=pairs).explode("_pairs")
        frame = frame[frame["_pairs"].notna()]
        frame = frame.assign(**{key: [p[0] for p in frame["_pairs"]], column: [p[1] for p in frame["_pairs"]]})
        frame = frame.drop(columns="_pairs").reset_index(drop=True)
    return frame


def _aggregated(rule, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per window and group: the metric aggregated over the table's items, ``_rows`` counted."""
    values = pd.to_numeric(frame[rule.metric].map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce")
    frame = frame.assign(_m=values)
    keys = ["window_start", "group_key"]
    out = frame.groupby(keys, as_index=False).agg(_m=("_m", "count" if rule.aggregate == "count" else rule.aggregate),
                                                  _rows=("_m", "size"), group=("group", "first"))
    return out.rename(columns={"_m": rule.metric})


def metric_values(rule, rows: pd.DataFrame) -> pd.Series:
    """The rule's metric: a column, or a ratio of two columns (``cost_usd / call_count``; 0 / 0 is null)."""
    if rule.metric in rows.columns:
        return pd.to_numeric(rows[rule.metric], errors="coerce")
    numerator, denominator = (part.strip() for part in rule.metric.split("/"))
    den = pd.to_numeric(rows[denominator], errors="coerce")
    return pd.to_numeric(rows[numerator], errors="coerce") / den.where(den != 0)


def _samples(rule, rows: pd.DataFrame) -> pd.Series:
    if getattr(rule, "aggregate", None):
        return rows["_rows"].astype(float)
    if rule.sample_column:
        return pd.to_numeric(rows[rule.sample_column], errors="coerce").fillna(0)
    return pd.Series(np.inf, index=rows.index)


# ---- the rule kinds ---------------------------------------------------------------------------------------
def evaluate_threshold(rule: ThresholdRule, frame: pd.DataFrame, start: datetime, end: datetime) -> list[RuleResult]:
    rows = grouped(rule, frame)
    rows = rows[(rows["window_start"] >= start) & (rows["window_start"] < end)]
    values = metric_values(rule, rows)
    samples = _samples(rule, rows)
    results = []
    for (_idx, row), value, n in zip(rows.iterrows(), values, samples, strict=True):
        judged = bool(n >= rule.min_samples and pd.notna(value))
        breached = judged and COMPARE[rule.comparison](value, rule.threshold)
        results.append(RuleResult(rule.name, row["window_start"].to_pydatetime(),
                                  row["window_start"].to_pydatetime() + HOUR, row["group"],
                                  None if pd.isna(value) else float(value), rule.threshold,
                                  None if np.isinf(n) else float(n), judged, not breached))
    return results


def baseline_times(rule: AnomalyRule, t: pd.Timestamp) -> list[pd.Timestamp]:
    """The windows a value at ``t`` is compared with: the same hour of previous days, the trailing hours, or
    both (an hour in both lists counts once)."""
    days = [t - timedelta(days=d) for d in range(1, rule.baseline_windows + 1)]
    if rule.baseline == "same_hour_previous_days":
        return days
    hours = [t - h * HOUR for h in range(1, (rule.trailing_hours if rule.baseline == "both"
                                             else rule.baseline_windows) + 1)]
    return hours if rule.baseline == "trailing_hours" else list(dict.fromkeys(hours + days))


def _binomial_p_value(value: float, n: float, base_values: np.ndarray, base_n: np.ndarray, up: bool) -> float:
    """How unlikely the window's count is if its rate were the history's pooled rate (counts = rate x samples).
    A history without a single event counts half an event, so a first error is not infinitely surprising."""
    events = float(np.sum(base_values * base_n))
    total = float(np.sum(base_n))
    p0 = min(max(events, 0.5) / total, 1 - 1e-9) if total > 0 else 0.5
    k = int(round(value * n))
    if up:
        return float(binom.sf(k - 1, int(round(n)), p0))
    return float(binom.cdf(k, int(round(n)), p0))


def evaluate_anomaly(rule: AnomalyRule, frame: pd.DataFrame, start: datetime, end: datetime) -> list[RuleResult]:
    """Each window's value against its own group's history (``baseline_times``): it breaks when the change goes
    the rule's direction AND passes the statistical bar (robust z beyond ``mad_factor``, or a binomial p-value
    under ``max_p_value``) AND both practical bars (``min_ratio`` x the median, ``min_abs_change`` away).
    A window or history window counts only with ``min_samples``; fewer than ``min_baseline_windows`` history
    windows: "not enough history" (not judged, the reason in ``detail``)."""
    rows = grouped(rule, frame)
    rows = rows.assign(_value=metric_values(rule, rows), _n=_samples(rule, rows))
    history = {(k, t): (v, n) for k, t, v, n in zip(rows["group_key"], rows["window_start"], rows["_value"], rows["_n"],
                                                          strict=True)}
    judged_rows = rows[(rows["window_start"] >= start) & (rows["window_start"] < end)]
    results = []
    offsets: dict[pd.Timestamp, list[pd.Timestamp]] = {}
    for t, key, group, value, n in zip(judged_rows["window_start"], judged_rows["group_key"], judged_rows["group"],
                                       judged_rows["_value"], judged_rows["_n"], strict=True):
        if t not in offsets:
            offsets[t] = baseline_times(rule, t)
        base = [history[(key, b)] for b in offsets[t] if (key, b) in history]
        base = [(v, m) for v, m in base if pd.notna(v) and m >= rule.min_samples]
        base_values = np.array([v for v, _ in base], dtype=float)
        detail: dict[str, Any] = {"baseline_windows": int(len(base_values))}
        if pd.isna(value) or n < rule.min_samples:
            detail["not_judged"] = f"fewer than {rule.min_samples} samples"
        elif len(base_values) < rule.min_baseline_windows:
            detail["not_judged"] = (f"not enough history: {len(base_values)} of {rule.min_baseline_windows} "
                                    "baseline windows")
        judged = "not_judged" not in detail
        median = float(np.median(base_values)) if len(base_values) else None
        breached, threshold = False, None
        if judged:
            breached, threshold = _judge(rule, float(value), float(n), median, base_values,
                                         np.array([n for _, n in base], dtype=float), detail)
        results.append(RuleResult(rule.name, t.to_pydatetime(), t.to_pydatetime() + HOUR, group,
                                  None if pd.isna(value) else float(value), threshold,
                                  None if np.isinf(n) else float(n), judged, not breached, baseline=median,
                                  detail=detail))
    return results


def _judge(rule: AnomalyRule, value: float, n: float, median: float, base_values: np.ndarray, base_n: np.ndarray,
           detail: dict) -> tuple[bool, float]:
    """Whether ``value`` breaks the rule's bars against its history, and the threshold to show (the value the
    practical bars ask for in the rule's direction; ``detail`` gets the statistic and the bars)."""
    change = value - median
    up = rule.direction == "up" or (rule.direction == "both" and change >= 0)
    moved_far = (change > 0 if up else change < 0) and abs(change) >= rule.min_abs_change and (
        value >= median * rule.min_ratio if up else value <= median / rule.min_ratio)
    # the practical bar as a distance from the median (a ratio of a negative median bars nothing)
    bar = max(rule.min_abs_change, abs(median) * ((rule.min_ratio - 1) if up else (1 - 1 / rule.min_ratio)))
    if rule.test == "binomial" and np.isfinite(n) and np.all(np.isfinite(base_n)):
        p_value = _binomial_p_value(value, n, base_values, base_n, up)
        detail["p_value"] = p_value
        significant = p_value < rule.max_p_value
    else:
        scale = MAD_SCALE * float(np.median(np.abs(base_values - median)))
        # the history's spread is that of statistics over its windows' sample sizes: an hour with fewer samples
        # varies more (a mean or a percentile of n samples varies as 1 / sqrt(n)), so its band widens
        typical_n = float(np.median(base_n)) if len(base_n) and np.all(np.isfinite(base_n)) else n
        if np.isfinite(n) and 0 < n < typical_n:
            scale *= float(np.sqrt(typical_n / n))
        # a history without spread (MAD 0): any change is infinitely far; the practical bars then decide
        z = abs(change) / scale if scale > 0 else (np.inf if change else 0.0)
        detail["robust_z"] = float(z)
        significant = z > rule.mad_factor
        bar = max(bar, rule.mad_factor * scale)
    detail.update({"min_ratio": rule.min_ratio, "min_abs_change": rule.min_abs_change})
    return bool(moved_far and significant), (median + bar if up else median - bar)


def met_flag(value: Any) -> bool:
    """An SLO window's ``met`` as a bool, however the database returned it: True / False, 1 / 0, 1.0 / 0.0
    (SQLite, once a null in the column makes pandas read it as float), "true" / "false", "1" / "0"."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "0.0", "f", "no")
    return bool(value)


def evaluate_burn_rate(rule: BurnRateRule, frame: pd.DataFrame, start: datetime, end: datetime) -> list[RuleResult]:
    """Burn rate over the last N hours = share of bad hours / (1 - target), from the SLO status table's
    ``met`` column; the rule breaks in a window when, for some pair, both the long and the short window burn
    at least ``factor``. The value reported is the short window's burn rate of the worst pair."""
    rows = frame[frame["slo_name"] == rule.slo].copy()
    rows["window_start"] = pd.to_datetime(rows["window_start"])
    met = rows.set_index("window_start")["met"]
    target = float(rows["target"].iloc[0]) if len(rows) else None
    group = {"slo": rule.slo}
    results = []
    for t in hour_starts(start, end):
        ts = pd.Timestamp(t)
        if target is None or ts not in met.index or pd.isna(met.get(ts)):
            results.append(RuleResult(rule.name, t, t + HOUR, group, None, None, None, False, True))
            continue
        budget = max(1.0 - target, 1e-9)

        def burn(hours: int, ts: pd.Timestamp = ts, budget: float = budget) -> tuple[float, int]:
            span = met[(met.index > ts - hours * HOUR) & (met.index <= ts)].dropna()
            bad = sum(not met_flag(m) for m in span)
            return (bad / len(span) / budget if len(span) else 0.0), len(span)

        breached, detail = False, {}
        for w in rule.windows:
            long_burn, _ = burn(w.long_hours)
            short_burn, _ = burn(w.short_hours)
            detail[f"burn_{w.long_hours}h"] = long_burn
            detail[f"burn_{w.short_hours}h"] = short_burn
            if long_burn >= w.factor and short_burn >= w.factor:
                breached = True
        first = rule.windows[0]
        results.append(RuleResult(rule.name, t, t + HOUR, group, float(detail[f"burn_{first.short_hours}h"]),
                                  first.factor, None, True, not breached, detail=detail))
    return results


def evaluate_eval_score(rule: EvalScoreRule, frame: pd.DataFrame, start: datetime, end: datetime) -> list[RuleResult]:
    """Per hour and group: the mean score, or the share of scores below ``cut``."""
    rows = frame[frame[rule.scorer_column] == rule.scorer].copy()
    rows["_t"] = pd.to_datetime(rows[rule.time_column]).dt.floor("h")
    rows = rows[(rows["_t"] >= start) & (rows["_t"] < end)]
    rows["_score"] = pd.to_numeric(rows[rule.score_column], errors="coerce")
    rows = rows[rows["_score"].notna()]
    results = []
    keys = ["_t", *rule.group_by]
    for key, part in rows.groupby(keys, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        t = key[0].to_pydatetime()
        group = dict(zip(rule.group_by, key[1:], strict=False))  # (the keys after the window's)
        scores = part["_score"]
        value = float(scores.mean()) if rule.statistic == "mean" else float((scores < rule.cut).mean())
        judged = len(scores) >= rule.min_samples
        breached = judged and COMPARE[rule.comparison](value, rule.threshold)
        results.append(RuleResult(rule.name, t, t + HOUR, group, value, rule.threshold, float(len(scores)),
                                  judged, not breached))
    return results


EVALUATORS = {
    "threshold": evaluate_threshold,
    "anomaly": evaluate_anomaly,
    "burn_rate": evaluate_burn_rate,
    "eval_score": evaluate_eval_score,
}


def evaluate(rule, frame: pd.DataFrame, start: datetime, end: datetime) -> list[RuleResult]:
    """Results of ``rule`` for the hours in [start, end) (``frame`` also holds the history it needs)."""
    if frame.empty:
        return []
    return EVALUATORS[rule.kind](rule, frame, start, end)


def by_window(results: list[RuleResult]) -> dict[datetime, list[RuleResult]]:
    out: dict[datetime, list[RuleResult]] = {}
    for r in results:
        out.setdefault(r.window_start, []).append(r)
    return out
