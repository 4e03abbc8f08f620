"""The cause of a breach, per rule family: what the alert's group did in its window against its baseline
windows, per value of the dimensions where that family's causes live, ranked by ``contributors``.

| family | items read (the group's, one window at a time) | dimensions |
|---|---|---|
| latency | spans (steps) or requests | the step (leaf span name); for a step group: span name, route, provider, model |
| error | failed spans where the error originated, classified | error class, provider, model, failing step, route |
| cost | llm / embedding calls, priced | prompt version, model, user, route, provider; volume vs unit cost |
| quality | eval scores of the scorer | prompt version, model, route, the response's retrieval; then the day's failure cluster of inputs when it explains the drop |
| agent | agent_paths rows (the observability phase's; a tool group: the requests calling the tool, looping when their loop repeats it) | the looping tool (with its repeated path), the repeated path (with its tool) |
| retrieval | retrieval spans and their documents | the retriever step, route; the top-score shift |

Baseline: the rule's own (an anomaly rule's ``baseline``: the same window on the previous N days, the N windows
just before, or both); for other rules the same window on each of the previous ``baseline_days`` days (the
observability phase's setting) that has items, or when none has, that many windows just before. Each window is
read, reduced to per-value aggregates and dropped (memory is one window's items), the window itself is kept
for the exemplars.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import contributors
from obs_pipelines.alerts.scope import keep_group, span_filter
from obs_pipelines.pricing.models import model_keys
from obs_pipelines.store.errors import classify_errors
from obs_pipelines.store.query import bind_window, fetch_frame, fetch_text_frame, read_window, window_params
from obs_pipelines.store.schema import MODEL_CALL_KINDS_SQL
from obs_pipelines.store.traces import NULL_LABEL

DEFAULT_BASELINE_WINDOWS = 7
NO_RETRIEVAL = "no retrieval"


@dataclass
class Context:
    """What a family's reader needs besides the window: the store, the rule, the breached group, the price
    table, the observability settings (baseline_days, low_score_threshold) and the in-memory diagnosis."""

    engine: Engine
    rule: Any
    group: dict[str, Any]
    prices: Any = None
    settings: Any = None
    diagnosis: Any = None
    breached_start: datetime | None = None  # the diagnosis (in-memory observability tables) is for this window

    @property
    def metric(self) -> str:
        return str(getattr(self.rule, "metric", "") or "").lower()

    def setting(self, name: str, default):
        return getattr(self.settings, name, default) if self.settings is not None else default


@dataclass
class Reading:
    """One window of the group: its items (one row per call, failed span, step, score, path or retrieval),
    the group's volume and, for the statistics of a percentile family, the group's statistic."""

    items: pd.DataFrame
    volume: float
    stat: float | None = None
    extra: dict = field(default_factory=dict)


# ---- reading helpers ------------------------------------------------------------------------------------
def _times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for col in columns:
        frame[col] = pd.to_datetime(frame[col], format="ISO8601") if len(frame) else pd.to_datetime(frame[col])
    return frame


def _numbers(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for col in columns:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def _label(values: pd.Series) -> pd.Series:
    return values.astype("object").where(values.notna(), NULL_LABEL).astype(str)


def _spans(ctx: Context, start: datetime, end: datetime, columns: str, where: str = "",
           group: dict | None = None) -> pd.DataFrame:
    """Spans of the window (``where``: extra SQL) in the group's span columns."""
    filt, params = span_filter(ctx.group if group is None else group)
    sql = f"SELECT {columns} FROM spans WHERE start_time >= :start AND start_time < :end{where}{filt}"
    return fetch_text_frame(ctx.engine, sql, {**window_params(start, end), **params})


def _count_spans(ctx: Context, start: datetime, end: datetime) -> float:
    filt, params = span_filter(ctx.group)
    frame = fetch_frame(ctx.engine, f"SELECT COUNT(*) AS n FROM spans WHERE start_time >= :start "
                                    f"AND start_time < :end{filt}", {**window_params(start, end), **params})
    return float(frame["n"].iloc[0]) if len(frame) else 0.0


def _prompt(frame: pd.DataFrame) -> pd.Series:
    name, version = frame["prompt_name"], frame["prompt_version"]
    joined = name.fillna("").astype(str) + "@" + version.fillna("").astype(str)
    return joined.where(name.notna() & version.notna(), version.fillna(name).fillna(NULL_LABEL)).astype(str)


def _documents(attributes) -> tuple[int, float]:
    """Documents returned and the top score, from a retrieval span's attributes (``retrieval.documents``)."""
    if isinstance(attributes, str | bytes):
        try:
            attributes = orjson.loads(attributes)
        except orjson.JSONDecodeError:
            return 0, np.nan
    docs = attributes.get("retrieval.documents") if isinstance(attributes, dict) else None
    docs = [d for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []
    scores = [d.get("score") for d in docs]
    scores = [float(s) for s in scores if type(s) in (int, float)]
    return len(docs), (max(scores) if scores else np.nan)


# ---- the families ---------------------------------------------------------------------------------------
class Family:
    """A family of rules: how a window of the group is read, which dimensions hold its causes, how they are
    ranked and which items show the breach."""

    dimensions: dict[str, str] = {}  # dimension -> items column
    group_columns: dict[str, str] = {}  # group dimension -> items column (filtered after reading)
    mean = False  # the metric is an amount per item: only the unit change counts

    def read(self, ctx: Context, start: datetime, end: datetime) -> Reading | None:
        raise NotImplementedError

    def per_item(self, ctx: Context) -> bool:
        """The rule's metric is per item (a ratio such as cost per call or an error rate, a mean): more items
        do not move it, only the per-item change counts."""
        rule = ctx.rule
        return self.mean or "/" in str(getattr(rule, "metric", "")) or getattr(rule, "aggregate", None) == "mean" \
            or "rate" in ctx.metric or "mean" in ctx.metric

    def amount(self, ctx: Context, items: pd.DataFrame) -> pd.Series:
        raise NotImplementedError

    def split_volume(self, dimension: str) -> bool:
        return True

    def aggregates(self, ctx: Context, reading: Reading) -> tuple[pd.DataFrame, tuple[float, float]]:
        items = reading.items
        amount = self.amount(ctx, items)
        parts = []
        for dim, column in self.dimensions.items():
            if dim in ctx.group or column not in items.columns:
                continue
            g = amount.groupby(items[column].to_numpy())
            part = pd.DataFrame({"dimension": dim, "value": g.sum().index.astype(str), "amount": g.sum().to_numpy(),
                                 "volume": g.size().to_numpy().astype("float64")})
            if not self.split_volume(dim):
                part["volume"] = np.nan
            parts.append(part)
        per_value = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=contributors.COLUMNS)
        return per_value, (float(amount.sum()), float(reading.volume))

    def summarize(self, ctx: Context, reading: Reading) -> Any:
        """What a baseline window keeps of its reading (its items are dropped)."""
        return self.aggregates(ctx, reading)

    def cause(self, ctx: Context, now: Reading, baseline: list) -> list[dict]:
        per_now, totals_now = self.aggregates(ctx, now)
        per_base, totals_base = _mean_aggregates(baseline)
        found = contributors.additive(per_now, per_base, totals_now, totals_base, mean=self.per_item(ctx),
                                      order=tuple(self.dimensions))
        return found or self.pinned(ctx, totals_now, totals_base)

    def pinned(self, ctx: Context, totals_now: tuple[float, float], totals_base: tuple[float, float]) -> list[dict]:
        """When the group pins every dimension of the family (a route's retriever step), the cause is the group
        itself: its figure per item now against the baseline."""
        if any(d not in ctx.group for d in self.dimensions) or not totals_now[1] or not totals_base[1]:
            return []
        dim = next(d for d in self.dimensions if d in ctx.group)
        now, base = totals_now[0] / totals_now[1], totals_base[0] / totals_base[1]
        if now == base:
            return []
        return [{"dimension": dim, "value": str(ctx.group[dim]), "share": 1.0, "baseline_share": 1.0,
                 "now": contributors.round_figure(now), "baseline": contributors.round_figure(base), "driver": "unit"}]

    def exemplars(self, ctx: Context, now: Reading, cause: list[dict]) -> list[str]:
        raise NotImplementedError


def _mean_aggregates(parts: list[tuple[pd.DataFrame, tuple[float, float]]]
                     ) -> tuple[pd.DataFrame, tuple[float, float]]:
    """The mean baseline window: per-value amounts and volumes summed over the windows, divided by their count."""
    if not parts:
        return pd.DataFrame(columns=contributors.COLUMNS), (0.0, 0.0)
    k = len(parts)
    frames = [p for p, _ in parts if len(p)]
    if frames:
        stacked = pd.concat(frames, ignore_index=True)
        per = stacked.groupby(["dimension", "value"], as_index=False).agg(
            amount=("amount", "sum"), volume=("volume", lambda v: v.sum(min_count=1)))
        per[["amount", "volume"]] = per[["amount", "volume"]] / k
    else:
        per = pd.DataFrame(columns=contributors.COLUMNS)
    return per, (sum(t[0] for _, t in parts) / k, sum(t[1] for _, t in parts) / k)


def _on_top(items: pd.DataFrame, dimensions: dict[str, str], cause: list[dict]) -> pd.DataFrame:
    """The items of the top contributor (the whole group's when there is none, or it is not an item column)."""
    if cause and dimensions.get(cause[0]["dimension"]) in items.columns:
        column = dimensions[cause[0]["dimension"]]
        top = items[items[column].astype(str) == cause[0]["value"]]
        if len(top):
            return top
    return items


def _ids(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["trace_id"].astype(str)))


class Cost(Family):
    dimensions = {"prompt_version": "prompt", "model": "model_key", "user": "user", "route": "route",
                  "provider": "provider_label"}
    group_columns = {"model": "model"}

    def read(self, ctx, start, end):
        calls = _spans(ctx, start, end, "trace_id, kind, model, provider, prompt_name, prompt_version, user_id, "
                                        "route, input_tokens, output_tokens, cached_input_tokens, cost_usd, "
                                        "start_time", f" AND kind IN {MODEL_CALL_KINDS_SQL}")
        calls = keep_group(calls, ctx.group, self.group_columns)
        if calls.empty:
            return None
        calls = _numbers(_times(calls, "start_time"), "input_tokens", "output_tokens", "cached_input_tokens",
                         "cost_usd")
        priced = ctx.prices.compute_costs(calls) if ctx.prices is not None else calls["cost_usd"]
        calls = calls.assign(cost=priced.fillna(0.0), prompt=_prompt(calls),
                             model_key=model_keys(calls["model"]).fillna(NULL_LABEL).astype(str),
                             user=_label(calls["user_id"]), route=_label(calls["route"]),
                             provider_label=_label(calls["provider"]))
        return Reading(calls, float(len(calls)))

    def amount(self, ctx, items):
        metric = ctx.metric
        for column in ("input_tokens", "output_tokens"):
            if column in metric:
                return items[column].fillna(0.0)
        if "token" in metric:
            return items["input_tokens"].fillna(0.0) + items["output_tokens"].fillna(0.0)
        return items["cost"]

    def exemplars(self, ctx, now, cause):
        # the costliest calls, of the top contributor first
        top = _on_top(now.items, self.dimensions, cause)
        return _ids(top.assign(_a=self.amount(ctx, top)).sort_values(["_a", "trace_id"], ascending=[False, True]))


class Errors(Family):
    dimensions = {"error_class": "error_class", "provider": "provider_label", "model": "model_key",
                  "span": "name_label", "route": "route_label"}
    group_columns = {"model": "model", "error_class": "error_class", "route": "route", "provider": "provider",
                     "span_kind": "kind", "span_name": "name", "prompt_version": "prompt_version"}

    def split_volume(self, dimension):
        return False  # the group's spans are not split by error class: each value is judged on all of them

    def read(self, ctx, start, end):
        # every failed span of the window (an error's origin is a failed span without a failed child)
        failed = _spans(ctx, start, end, "trace_id, span_id, parent_span_id, name, kind, provider, model, route, "
                                         "prompt_version, error_type, SUBSTR(error_message, 1, 500) AS error_message",
                        " AND status = 'error'", group={})
        volume = _count_spans(ctx, start, end)
        if not volume:
            return None
        if len(failed):
            parents = pd.MultiIndex.from_frame(failed[["trace_id", "parent_span_id"]].dropna())
            failed = failed[~pd.MultiIndex.from_frame(failed[["trace_id", "span_id"]]).isin(parents)]
            failed = failed.assign(error_class=classify_errors(failed).to_numpy())
            failed = keep_group(failed, ctx.group, self.group_columns)
        failed = failed.assign(provider_label=_label(failed["provider"]), route_label=_label(failed["route"]),
                               name_label=_label(failed["name"]),
                               model_key=model_keys(failed["model"]).fillna(NULL_LABEL).astype(str)
                               if len(failed) else failed["model"])
        return Reading(failed, volume)

    def amount(self, ctx, items):
        return pd.Series(1.0, index=items.index)

    def exemplars(self, ctx, now, cause):
        # failing traces of the group, of the top cause first (newest ids first: deterministic)
        top = _on_top(now.items, self.dimensions, cause)
        return _ids(top.sort_values("trace_id"))


_PERCENTILE = re.compile(r"p(\d{2})")


class Latency(Family):
    """A percentile of the group's items: its steps' (a step group) or its requests' durations."""

    STEP_DIMS = ("span_kind", "span_name", "provider", "model", "prompt_version")
    group_columns = {"model": "model"}

    def quantile(self, ctx) -> float | None:
        found = _PERCENTILE.search(ctx.metric)
        if found:
            return int(found.group(1)) / 100
        return None if "mean" in ctx.metric else 0.95

    def _stat(self, ctx, values: pd.Series) -> float:
        q = self.quantile(ctx)
        values = values.dropna()
        if values.empty:
            return np.nan
        return float(values.mean()) if q is None else float(np.percentile(values.to_numpy(), q * 100))

    def step_level(self, ctx) -> bool:
        return any(d in ctx.group for d in self.STEP_DIMS)

    def read(self, ctx, start, end):
        spans = _spans(ctx, start, end, "trace_id, span_id, parent_span_id, name, kind, route, provider, model, "
                                        "start_time, end_time")
        spans = keep_group(spans, ctx.group, self.group_columns)
        if spans.empty:
            return None
        spans = _times(spans, "start_time", "end_time")
        spans["ms"] = (spans["end_time"] - spans["start_time"]) / pd.Timedelta(milliseconds=1)
        spans["name"], spans["route"] = _label(spans["name"]), _label(spans["route"])
        spans["model_key"] = model_keys(spans["model"]).fillna(NULL_LABEL).astype(str)
        spans["provider"] = _label(spans["provider"])
        if self.step_level(ctx):
            items = spans
        else:  # the group's requests are its root spans; its steps are the leaf spans (a wrapper repeats them)
            items = spans[spans["parent_span_id"].isna()]
            parents = pd.MultiIndex.from_frame(spans[["trace_id", "parent_span_id"]].dropna())
            leaves = spans[spans["parent_span_id"].notna().to_numpy()
                           & ~pd.MultiIndex.from_frame(spans[["trace_id", "span_id"]]).isin(parents)]
            if items.empty:
                return None
            return Reading(items, float(len(items)), self._stat(ctx, items["ms"]), {"steps": leaves})
        return Reading(items, float(len(items)), self._stat(ctx, items["ms"]), {"steps": items})

    def _per_value(self, ctx, reading: Reading) -> pd.DataFrame:
        steps = reading.extra["steps"]
        dims = ({"span_name": "name", "route": "route", "provider": "provider", "model": "model_key"}
                if self.step_level(ctx) else {"span": "name"})
        parts = []
        for dim, column in dims.items():
            if dim in ctx.group or steps.empty:
                continue
            stats = steps.groupby(column)["ms"].apply(lambda v: self._stat(ctx, v))
            parts.append(pd.DataFrame({"dimension": dim, "value": stats.index.astype(str), "stat": stats.to_numpy()}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dimension", "value", "stat"])

    def summarize(self, ctx, reading):
        return self._per_value(ctx, reading), reading.stat

    def cause(self, ctx, now, baseline):
        if not baseline:
            return []
        per_base = pd.concat([per for per, _ in baseline], ignore_index=True)
        # the typical baseline window: the median of each value's statistic over the windows
        per_base = per_base.groupby(["dimension", "value"], as_index=False)["stat"].median()
        group_base = float(np.nanmedian([stat for _, stat in baseline]))
        return contributors.shifts(self._per_value(ctx, now), per_base, float(now.stat), group_base,
                                   order=("span", "span_name", "route", "provider", "model"))

    def exemplars(self, ctx, now, cause):
        # the slowest traces that contain the slow step
        steps = now.extra["steps"]
        dims = {"span": "name", "span_name": "name", "route": "route", "provider": "provider", "model": "model_key"}
        top = _on_top(steps, dims, cause)
        return _ids(top.sort_values(["ms", "trace_id"], ascending=[False, True]))


class Retrieval(Family):
    dimensions = {"span_name": "name", "route": "route"}

    def read(self, ctx, start, end):
        spans = _spans(ctx, start, end, "trace_id, span_id, name, route, status, attributes",
                       " AND kind = 'retrieval'")
        if spans.empty:
            return None
        docs = [_documents(a) for a in spans["attributes"].tolist()]
        spans = spans.drop(columns="attributes").assign(
            documents=[d[0] for d in docs], top_score=[d[1] for d in docs],
            name=_label(spans["name"]), route=_label(spans["route"]))
        return Reading(spans, float(len(spans)))

    mean = True  # a rate of flags or a mean score: both an amount per retrieval

    def amount(self, ctx, items):
        metric = ctx.metric
        if "empty" in metric or "no_documents" in metric:
            return (items["documents"] == 0).astype("float64")
        if "low_score" in metric or "below" in metric:
            low = ctx.setting("low_score_threshold", 0.5)
            return ((items["documents"] > 0) & (items["top_score"] < low)).astype("float64")
        if "error" in metric:
            return (items["status"] == "error").astype("float64")
        if "documents" in metric:
            return items["documents"].astype("float64")
        return items["top_score"].fillna(0.0)

    def summarize(self, ctx, reading):
        return self.aggregates(ctx, reading), _top_scores(reading.items, self.dimensions)

    def cause(self, ctx, now, baseline):
        found = super().cause(ctx, now, [aggregates for aggregates, _ in baseline])
        # the score shift of each retriever step / route named: mean top score now and in the baseline
        scores_now = _top_scores(now.items, self.dimensions)
        scores_base = (pd.concat([s for _, s in baseline]).groupby(level=[0, 1]).sum()
                       if baseline else scores_now.iloc[0:0])
        for entry in found:
            key = (entry["dimension"], entry["value"])
            entry["top_score_now"] = _mean_of(scores_now, key)
            entry["top_score_baseline"] = _mean_of(scores_base, key)
        return found

    def exemplars(self, ctx, now, cause):
        # the retrievals of the top step that show it: empty first, then the lowest top score
        top = _on_top(now.items, self.dimensions, cause)
        order = top.assign(_s=top["top_score"].where(top["documents"] > 0, -np.inf))
        return _ids(order.sort_values(["_s", "trace_id"]))


def _top_scores(items: pd.DataFrame, dimensions: dict[str, str]) -> pd.DataFrame:
    """Per (dimension, value): the sum and count of the retrievals' top scores."""
    parts = []
    for dim, column in dimensions.items():
        scored = items[items["top_score"].notna()]
        g = scored.groupby(scored[column].astype(str))["top_score"]
        parts.append(pd.DataFrame({"dimension": dim, "value": g.sum().index, "total": g.sum().to_numpy(),
                                   "n": g.size().to_numpy()}))
    return pd.concat(parts, ignore_index=True).groupby(["dimension", "value"]).sum()


def _mean_of(scores: pd.DataFrame, key: tuple[str, str]) -> float | None:
    if key not in scores.index or not scores.loc[key, "n"]:
        return None
    return round(float(scores.loc[key, "total"] / scores.loc[key, "n"]), 4)


class Quality(Family):
    dimensions = {"prompt_version": "prompt_version", "model": "model", "route": "route",
                  "retrieval": "retrieval", "span_kind": "span_kind"}
    group_columns = {"route": "route", "model": "model", "prompt_version": "prompt_version",
                     "span_kind": "span_kind", "scorer": "scorer"}
    mean = True

    def read(self, ctx, start, end):
        rule = ctx.rule
        # an eval_score rule names its table and columns; a rule on a score rollup reads the scores behind it
        own = rule.kind == "eval_score"
        table = rule.table if own else "eval_scores"
        time_column = rule.time_column if own else "window_start"
        scorer_column = rule.scorer_column if own else "scorer"
        score_column = rule.score_column if own else "score"
        scorer = ctx.group.get("scorer") or getattr(rule, "scorer", None) or getattr(rule, "where", {}).get("scorer")
        if scorer is None:
            return None
        sql = (f"SELECT trace_id, route, model, prompt_version, span_kind, {scorer_column} AS scorer, "
               f"{score_column} AS score FROM {table} WHERE {time_column} >= :start AND {time_column} < :end "
               f"AND {scorer_column} = :scorer")  # names from the validated rule
        scores = fetch_frame(ctx.engine, sql, {**window_params(start, end), "scorer": str(scorer)})
        scores = _numbers(scores, "score")
        scores = keep_group(scores[scores["score"].notna()], ctx.group, self.group_columns)
        if scores.empty:
            return None
        for col in ("route", "model", "prompt_version", "span_kind"):
            scores[col] = _label(scores[col])
        scores["retrieval"] = self._retrieval(ctx, start, end, scores)
        return Reading(scores.reset_index(drop=True), float(len(scores)))

    def _retrieval(self, ctx, start, end, scores: pd.DataFrame) -> list[str]:
        """What the response's request retrieved: no documents, documents all below the low-score threshold
        (the observability setting), documents, or no retrieval at all."""
        spans = _spans(ctx, start, end, "trace_id, attributes", " AND kind = 'retrieval'",
                       group={k: v for k, v in ctx.group.items() if k == "route"})
        low = ctx.setting("low_score_threshold", 0.5)
        label: dict[str, str] = {}
        rank = {"no documents": 0, "low top score": 1, "documents": 2}
        for trace_id, attributes in zip(spans["trace_id"].astype(str), spans["attributes"].tolist(), strict=True):
            n, top = _documents(attributes)
            found = "no documents" if n == 0 else ("low top score" if top < low else "documents")
            if trace_id not in label or rank[found] < rank[label[trace_id]]:  # a request's worst retrieval
                label[trace_id] = found
        return [label.get(t, NO_RETRIEVAL) for t in scores["trace_id"].astype(str)]

    def amount(self, ctx, items):
        rule = ctx.rule
        if getattr(rule, "statistic", "mean") == "share_below" and getattr(rule, "cut", None) is not None:
            return (items["score"] < float(rule.cut)).astype("float64")
        return items["score"]

    def cause(self, ctx, now, baseline):
        # the contributors, then the day's failure cluster of the group when it explains the drop
        found = super().cause(ctx, now, baseline)
        cluster = failure_cluster(ctx, ctx.breached_start, now)
        return found + [cluster] if cluster else found

    def exemplars(self, ctx, now, cause):
        # the lowest-scoring responses, of the top contributor first
        top = _on_top(now.items, self.dimensions, cause)
        return _ids(top.sort_values(["score", "trace_id"]))


# a failure cluster explains a quality drop when its inputs fail at least this many times as often as their
# share of the traffic (lift = share of the day's failures / share of its traffic; 1 = the app's usual rate).
# A ratio of shares: unit-free, the same for any app and volume
CLUSTER_MIN_LIFT = 2.0
CLUSTERS_TABLE = "failure_clusters_daily"


def failure_cluster(ctx: Context, start: datetime | None, now: Reading | None = None) -> dict | None:
    """The top cluster of failing inputs (online_evals' ``failure_clusters_daily``) of the breached window's day
    that explains the group's drop: its failures come mostly from the group's route (when the group has one) and
    include the alert's scorer, it fails at least ``CLUSTER_MIN_LIFT`` times its share of the traffic, and within
    a route its requests fail at least ``CLUSTER_MIN_LIFT`` times as often as the route's requests of the day do
    (else its lift is the route's: all the route's questions, or a topic failing at the route's rate); of those,
    the largest share of the day's failures. The clusters are the day's: the cluster must also explain the
    breached hour (``_hour_lift``): in the group's responses of the hour, those whose input carries the cluster's
    terms fail at least ``CLUSTER_MIN_LIFT`` times as often as the others. None when the day has no cluster rows
    (the daily asset has not run for it yet) or none explains the drop."""
    from obs_pipelines.alerts.source import table_exists  # source imports this module

    if start is None or not table_exists(ctx.engine, CLUSTERS_TABLE):
        return None
    day = pd.Timestamp(start).floor("D").to_pydatetime()
    rows = read_window(ctx.engine, CLUSTERS_TABLE, day, day + timedelta(days=1),
                       ("label", "failure_share", "traffic_share", "lift", "top_route", "top_route_share", "top_scorers",
                        "top_terms", "failure_count", "traffic_count", "cluster"), time_column="window_start", typed=False)
    if rows.empty:
        return None
    rows = _numbers(rows, "failure_share", "traffic_share", "lift", "top_route_share", "failure_count", "cluster")
    scorer = ctx.group.get("scorer") or getattr(ctx.rule, "scorer", None) or getattr(ctx.rule, "where", {}).get("scorer")
    route = ctx.group.get("route")
    keep = rows["lift"] >= CLUSTER_MIN_LIFT
    if route is not None:
        keep &= rows["top_route"].astype(str) == str(route)
    if scorer is not None:
        keep &= np.array([str(scorer) in _scorers(t) for t in rows["top_scorers"].tolist()], dtype=bool)
    found = rows[keep.to_numpy()].sort_values(["failure_share", "cluster"], ascending=[False, True])
    route_rate = None
    if route is not None and len(found):
        # within a route the cluster must fail more often than the route does: its lift against the whole app
        # may be only the route's (a cluster of all the route's questions, or a topic failing at the route's rate)
        requests, failing = _route_day(ctx, day, day + timedelta(days=1), str(route))
        if not requests:
            return None
        route_rate = failing / requests
        rate = pd.to_numeric(found["failure_count"], errors="coerce") / pd.to_numeric(found["traffic_count"],
                                                                                       errors="coerce")
        found = found.assign(_rate=rate)[(rate >= CLUSTER_MIN_LIFT * route_rate).to_numpy()]
    if found.empty or now is None or scorer is None:
        return None
    hour = None
    for _, candidate in found.iterrows():  # the largest share of the day's failures that explains the hour
        hour = _hour_lift(ctx, now, str(scorer), _terms(candidate["top_terms"]), start)
        if hour is not None:
            top = candidate
            break
    if hour is None:
        return None
    entry = {"dimension": "input_cluster", "value": str(top["label"]), "day": f"{day:%Y-%m-%d}",
             "failure_share": contributors.round_figure(float(top["failure_share"])),
             "traffic_share": contributors.round_figure(float(top["traffic_share"])),
             "lift": contributors.round_figure(float(top["lift"])), "top_route": top["top_route"],
             "failure_count": int(top["failure_count"])}
    if route_rate is not None:
        entry.update(failure_rate=contributors.round_figure(float(top["_rate"])),
                     route_failure_rate=contributors.round_figure(route_rate))
    entry.update(hour)
    return entry


def _terms(text) -> list[str]:
    try:
        found = orjson.loads(text) if isinstance(text, str | bytes) and text else []
    except orjson.JSONDecodeError:
        return []
    return [str(t).lower() for t in found if str(t).strip()] if isinstance(found, list) else []


def _hour_lift(ctx: Context, now: Reading, scorer: str, terms: list[str], start: datetime) -> dict | None:
    """Whether the cluster explains the breached hour: of the group's responses of the hour, those whose request
    input carries one of the cluster's terms fail (a root score under its rule's threshold) at least
    ``CLUSTER_MIN_LIFT`` times as often as the others, one failing at least. Their failure rates, or None."""
    ids = sorted(set(now.items["trace_id"].astype(str)))
    if not terms or not ids:
        return None
    params = {**window_params(start, start + timedelta(hours=1)), "scorer": scorer, "ids": ids}
    scores = fetch_frame(ctx.engine, bind_window(
        "SELECT trace_id, passed FROM eval_scores WHERE window_start >= :start AND window_start < :end "
        "AND scorer = :scorer AND span_kind = 'root' AND passed IS NOT NULL AND trace_id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True)), params)
    inputs = fetch_frame(ctx.engine, bind_window(
        "SELECT trace_id, input FROM spans WHERE parent_span_id IS NULL AND trace_id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids})
    if scores.empty or inputs.empty:
        return None
    pattern = re.compile("|".join(rf"\b{re.escape(t)}\b" for t in terms))
    text_of = dict(zip(inputs["trace_id"].astype(str), inputs["input"].fillna("").astype(str).str.lower(), strict=True))
    inside = np.array([bool(pattern.search(text_of.get(t, ""))) for t in scores["trace_id"].astype(str)])
    failing = ~scores["passed"].astype(str).str.lower().isin(["true", "1", "1.0"]).to_numpy()
    if not inside.any() or not failing[inside].any():
        return None
    rate_in = float(failing[inside].mean())
    rate_out = float(failing[~inside].mean()) if (~inside).any() else 0.0
    if rate_in < CLUSTER_MIN_LIFT * rate_out:
        return None
    return {"hour_failure_rate": contributors.round_figure(rate_in), "hour_others_failure_rate": contributors.round_figure(rate_out)}


def _route_day(ctx: Context, start: datetime, end: datetime, route: str) -> tuple[float, float]:
    """The route's requests of the day and those failing (a root score under its rule's threshold), counted as
    the clusters count them (online_evals/failing_inputs.py; negative feedback aside)."""
    params = {**window_params(start, end), "route": route}
    requests = fetch_frame(ctx.engine, "SELECT COUNT(*) AS n FROM spans WHERE start_time >= :start "
                                       "AND start_time < :end AND parent_span_id IS NULL AND route = :route", params)
    failing = fetch_frame(ctx.engine, "SELECT COUNT(DISTINCT trace_id) AS n FROM eval_scores WHERE window_start >= "
                                      ":start AND window_start < :end AND route = :route AND span_kind = 'root' "
                                      "AND passed IS NOT NULL AND NOT passed", params)
    return float(requests["n"].iloc[0]), float(failing["n"].iloc[0])


def _scorers(text) -> set[str]:
    try:
        found = orjson.loads(text) if isinstance(text, str | bytes) and text else {}
    except orjson.JSONDecodeError:
        return set()
    return {str(k) for k in found} if isinstance(found, dict) else set()


class Agents(Family):
    dimensions = {"tool": "tool", "loop": "loop", "route": "route"}

    def split_volume(self, dimension):
        return dimension == "route"

    def read(self, ctx, start, end):
        from obs_pipelines.alerts import source  # the stored table, else the diagnosis' in-memory rows

        rows = source.observability_rows(ctx.engine, "agent_paths", start, end,
                                         ctx.diagnosis if start == ctx.breached_start else None)
        if rows.empty:
            return None
        rows = keep_group(rows, ctx.group, {"route": "route"})
        if rows.empty:
            return None
        rows = rows.assign(loop_detected=rows["loop_detected"].astype(str).str.lower().isin(["true", "1", "1.0"]),
                           route=_label(rows["route"]))
        if "tool" in ctx.group:
            # a route x tool group: the requests that called the tool, looping when their loop repeats it
            flags = [_tool_flag(t, str(ctx.group["tool"])) for t in rows.get("tool_loops", pd.Series(
                [None] * len(rows), index=rows.index)).tolist()]
            rows = rows.assign(tool_loops=flags)
            rows = rows[rows["tool_loops"].notna()]
            rows = rows.assign(loop_detected=rows["tool_loops"].astype(float) > 0)
            if rows.empty:
                return None
        named = [_loop_names(e) for e in rows["loop_evidence"].tolist()]
        rows = rows.assign(tool=[n[0] for n in named], loop=[n[1] for n in named])
        return Reading(rows.reset_index(drop=True), float(len(rows)))

    def amount(self, ctx, items):
        column = str(getattr(ctx.rule, "metric", "") or "")
        if column in items.columns and column != "loop_detected":
            return pd.to_numeric(items[column], errors="coerce").fillna(0.0)
        return items["loop_detected"].astype("float64")

    def aggregates(self, ctx, reading):
        # a path names its loop's tool and repeated path; paths without a loop are not a value of those
        per_value, totals = super().aggregates(ctx, reading)
        return per_value[per_value["value"] != ""], totals

    def cause(self, ctx, now, baseline):
        # each tool named with its most frequent repeated path, each path with its tool: the on-call reads both
        found = super().cause(ctx, now, baseline)
        looping = now.items[now.items["loop_detected"] & (now.items["loop"] != "")]
        path_of = looping.groupby("tool")["loop"].agg(lambda v: v.value_counts().index[0]).to_dict() \
            if len(looping) else {}
        tool_of = looping.groupby("loop")["tool"].agg(lambda v: v.value_counts().index[0]).to_dict() \
            if len(looping) else {}
        for entry in found:
            if entry["dimension"] == "tool" and entry["value"] in path_of:
                entry["path"] = path_of[entry["value"]]
            elif entry["dimension"] == "loop" and entry["value"] in tool_of:
                entry["tool"] = tool_of[entry["value"]]
        return found

    def exemplars(self, ctx, now, cause):
        # the looping traces, of the top tool / path first, the longest paths first
        rows = now.items[now.items["loop_detected"]]
        top = _on_top(rows, self.dimensions, cause)
        return _ids(top.assign(_n=pd.to_numeric(top["tool_calls"], errors="coerce"))
                    .sort_values(["_n", "trace_id"], ascending=[False, True]))


def _tool_flag(tool_loops, tool: str) -> float | None:
    """The tool's flag in an agent_paths row's tool_loops (1: the loop repeats it), None when not called."""
    try:
        found = orjson.loads(tool_loops) if isinstance(tool_loops, str | bytes) and tool_loops else {}
    except orjson.JSONDecodeError:
        return None
    value = found.get(tool) if isinstance(found, dict) else None
    return None if value is None else float(value)


def _loop_names(evidence) -> tuple[str, str]:
    """The looping tool and the repeated path of an agent_paths row's loop_evidence."""
    if not isinstance(evidence, str) or not evidence:
        return "", ""
    try:
        found = orjson.loads(evidence)
    except orjson.JSONDecodeError:
        return "", ""
    call, cycle = found.get("repeated_call"), found.get("repeated_cycle")
    if isinstance(call, dict) and call.get("tool"):
        return str(call["tool"]), f"{call['tool']} (same arguments) repeated"
    if isinstance(cycle, dict) and cycle.get("cycle"):
        names = [str(n) for n in cycle["cycle"]]
        return names[0], " > ".join(names) + " repeated"
    if "repeated_output" in found:
        return NULL_LABEL, "similar model outputs repeated"
    return "", ""


FAMILIES: dict[str, Family] = {"cost": Cost(), "error": Errors(), "latency": Latency(), "retrieval": Retrieval(),
                               "quality": Quality(), "agent": Agents()}


# ---- baselines and the whole cause --------------------------------------------------------------------
def baseline_plan(ctx: Context) -> tuple[int, int, bool]:
    """(previous days, trailing windows, fall back to trailing windows when no previous day has items): the
    rule's own baseline (an anomaly rule's ``baseline``), else the observability phase's ``baseline_days``."""
    rule = ctx.rule
    mode = getattr(rule, "baseline", None)
    n = int(getattr(rule, "baseline_windows", None) or ctx.setting("baseline_days", DEFAULT_BASELINE_WINDOWS))
    if mode == "trailing_hours":
        return 0, n, False
    if mode == "both":
        return n, int(getattr(rule, "trailing_hours", n)), False
    return n, 0, True


def baseline_windows(read: Callable[[datetime, datetime], Any], start: datetime, end: datetime,
                     plan: tuple[int, int, bool]) -> list:
    """``read`` (None for a window without items) of the baseline windows that have items: the same window on
    each previous day, the windows just before, or the days falling back to the windows before."""
    days, trailing, fallback = plan
    found = [r for d in range(1, days + 1) if (r := read(start - timedelta(days=d), end - timedelta(days=d)))
             is not None]
    if fallback and not found:
        trailing = days
    length = end - start
    return found + [r for k in range(1, trailing + 1) if (r := read(start - k * length, end - k * length)) is not None]


# the baseline windows' summaries, shared by the alerts of one run (consecutive hours of a range share most of
# their baseline windows); small (per-value sums), bounded, and re-read after a few minutes (late spans)
_SUMMARIES: dict[tuple, tuple[float, Any]] = {}
MAX_SUMMARIES = 2048
SUMMARY_TTL_SECONDS = 300.0


def _rule_key(rule) -> tuple:
    return tuple(str(getattr(rule, name, "")) for name in ("kind", "table", "metric", "scorer", "statistic", "cut",
                                                           "aggregate", "where"))


@dataclass
class Breach:
    """A breach's cause (ranked contributors) and the window's reading the exemplars are picked from."""

    family: str
    cause: list[dict]
    now: Reading | None
    ctx: Context | None


def diagnose(ctx: Context, family: str, start: datetime, end: datetime) -> Breach:
    impl = FAMILIES.get(family)
    if impl is None:
        return Breach(family, [], None, ctx)
    ctx.breached_start = start
    now = impl.read(ctx, start, end)
    if now is None:
        return Breach(family, [], None, ctx)

    def summary(s: datetime, e: datetime):  # a baseline window: read, summarized, its items dropped
        key = (str(ctx.engine.url), family, _rule_key(ctx.rule), json.dumps(ctx.group, sort_keys=True, default=str),
               s, e)
        found = _SUMMARIES.get(key)
        if found is None or time.monotonic() - found[0] > SUMMARY_TTL_SECONDS:
            reading = impl.read(ctx, s, e)
            found = (time.monotonic(), None if reading is None else impl.summarize(ctx, reading))
            _SUMMARIES[key] = found
            while len(_SUMMARIES) > MAX_SUMMARIES:
                _SUMMARIES.pop(next(iter(_SUMMARIES)))
        return found[1]

    baseline = baseline_windows(summary, start, end, baseline_plan(ctx))
    return Breach(family, impl.cause(ctx, now, baseline), now, ctx)


def exemplars(breach: Breach) -> list[str]:
    """The window's items that show the breach, best first (trace ids)."""
    if breach.now is None:
        return []
    return FAMILIES[breach.family].exemplars(breach.ctx, breach.now, breach.cause)
