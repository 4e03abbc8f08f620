"""Hourly and daily rollups of the raw spans: requests, steps, errors, tokens and cost.

Every function reads its own window ``[start, end)`` of ``spans`` (or of an hourly table) and returns a
DataFrame shaped like its table in :mod:`obs_pipelines.monitoring.tables`; :func:`obs_pipelines.store.db.replace_windows` replaces the
window in the table (delete-then-insert in one transaction, so re-runs never duplicate).

Semantics
---------
* **Request (trace) level** -- ``dimension`` ``overall`` and ``route``: the shared definition of a request
  in :mod:`obs_pipelines.store.traces` (observability's ``traces`` table uses the same SQL). One request = one trace, and it
  belongs to the window its root span (``parent_span_id IS NULL``) starts in. Latency = root end - root
  start; route = the root's route (else any route seen on the trace's spans). A trace with no root span in
  the window is counted where its first span is, if it has no root anywhere (looked up in the whole store
  by trace_id, through the primary key) and no span before the window: latency = its last end - its first
  start. A trace is an error when any of its spans in the window is in status ``error`` (like Phoenix's
  cumulative error count). Spans of a trace that start after the window closes do not change its row.
* ``dimension`` ``model`` / ``prompt_version``: over **llm spans** -- every model call is a request to
  that model; latency = the span's duration; error = the span's status. The prompt label is
  ``prompt_name@prompt_version`` (or whichever of the two is set).
* **Steps**: every span starting in the window, by ``span_kind`` and by (kind, ``span_name``).
* **Errors**: failed spans where the error *originated*: a failed span with a failed child span in the
  window is a propagation of that child's error and is not counted again. Classes from
  :func:`obs_pipelines.store.errors.classify_errors` (with the span's HTTP status attribute). By class,
  provider, (provider, class) and model; the denominator of a provider / model row is its spans.
* **Usage**: llm and embedding spans. Cost = the app's ``cost_usd`` when present, else tokens x the price
  table (genai-prices + overrides, :mod:`obs_pipelines.pricing`), joined in SQL from per-model rate rows.
  Route = the span's route, else its trace root's route. User segments: the ``top_n_users`` users by cost
  in the window (ties: tokens, then user id), every other user in ``(other)``, spans without user in
  ``(none)``.
* **Model rows** (request, error and usage rollups) are keyed by the canonical model key
  (:func:`obs_pipelines.pricing.models.model_key`): a failed call carries the request model (``gpt-4o``), a
  successful one the response model (``gpt-4o-2024-08-06``), and both must count in one row (else "error
  rate by model" splits a model in two, one row holding every error). ``model_names`` lists the exact
  names behind the key. Prices are still matched on the exact names.
* Relations built in Python (price rate rows, model keys) reach SQL as one JSON parameter
  (:func:`obs_pipelines.store.pricing_sql.json_relation`), so no number of models can exceed a statement limit.
* Throughput per minute = count / minutes in the window.

Percentiles are exact (linear interpolation between closest ranks, i.e. ``percentile_cont``). On
PostgreSQL each rollup is one SQL statement (GROUPING SETS / UNION ALL for the dimensions, percentiles with
``percentile_cont``); on SQLite the same SQL does the trace-level grouping and pandas computes the
percentiles (``quantile``, linear interpolation) on the few needed columns. No Python loops over rows.

Daily rollups are derived from the hourly tables: counts, sums, errors, tokens, cost, max latency and the
mean latency (weighted by ``latency_count``) merge exactly. Percentiles cannot be merged from hourly
percentiles, so **the daily latency percentile columns (p50 / p90 / p95 / p99) are recomputed exactly from
the day's spans** with the same queries over the day window; everything else comes from the hourly tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.monitoring.tables import (
    DAILY_TABLES,
    HOURLY_TABLES,
    NULL_LABEL,
    OTHER_LABEL,
    column_names,
    error_rollup_daily,
    error_rollup_hourly,
    request_rollup_daily,
    request_rollup_hourly,
    step_rollup_daily,
    step_rollup_hourly,
    usage_rollup_daily,
    usage_rollup_hourly,
)
from obs_pipelines.pricing import PriceTable
from obs_pipelines.pricing.models import model_keys, names_by_key
from obs_pipelines.store import db, pricing_sql, traces
from obs_pipelines.store.errors import ERROR_CLASSES, STATUS_CODE_SQL, classify_errors
from obs_pipelines.store.percentiles import (
    grouped_percentiles,
    percentiles,
    pg_ms,
    pg_percentiles,
    unpack_pg_percentiles,
)
from obs_pipelines.store.query import (
    bind_window,
    fetch_frame,
    read_window,
    run_concurrently,
    window_has_spans,
    window_params,
)
from obs_pipelines.store.schema import MODEL_CALL_KINDS_SQL

QUANTILES = (0.5, 0.9, 0.95, 0.99)
PCT_COLUMNS = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms")
STAT_COLUMNS = (*PCT_COLUMNS, "latency_max_ms", "latency_mean_ms", "latency_count")
DAY = timedelta(days=1)

# ---- SQL shared by both dialects ----------------------------------------------------------------

_WINDOW = traces.WINDOW

# One row per request (trace) of the window: the shared definition (store/traces.py)
_TRACES_SQL = traces.requests_sql(postgres=False)
_PG_TRACES_SQL = traces.requests_sql(postgres=True)

_PROMPT_LABEL = f"""CASE WHEN prompt_name IS NOT NULL AND prompt_version IS NOT NULL
                     THEN prompt_name || '@' || prompt_version
                     ELSE COALESCE(prompt_version, prompt_name, '{NULL_LABEL}') END"""

_LLM_CALLS_SQL = f"""
SELECT COALESCE(model, '{NULL_LABEL}') AS model,
       {_PROMPT_LABEL} AS prompt,
       start_time AS req_start, end_time AS req_end,
       CASE WHEN status = 'error' THEN 1 ELSE 0 END AS is_error
FROM spans
WHERE {_WINDOW} AND kind = 'llm'
"""

_NO_MODEL_KEYS = "SELECT CAST(NULL AS text) AS model, CAST(NULL AS text) AS model_key WHERE false"

_STEPS_SQL = f"""
SELECT COALESCE(kind, '{NULL_LABEL}') AS span_kind, COALESCE(name, '{NULL_LABEL}') AS span_name,
       start_time AS req_start, end_time AS req_end,
       CASE WHEN status = 'error' THEN 1 ELSE 0 END AS is_error
FROM spans
WHERE {_WINDOW}
"""

# ---- PostgreSQL: percentiles in the database -----------------------------------------------------

_PG_LATENCY = pg_ms("req_start", "req_end")
_PG_STATS = f"""COUNT(*) AS n, SUM(is_error) AS error_count, COUNT(latency_ms) AS latency_count,
       {pg_percentiles("latency_ms", QUANTILES)} AS pct,
       MAX(latency_ms) AS latency_max_ms, AVG(latency_ms) AS latency_mean_ms"""

# {model_keys}: the relation (model, model_key) of the window's llm models (pricing_sql.json_relation)
_PG_REQUEST_SQL = f"""
WITH req AS (
    SELECT route, is_error, {_PG_LATENCY} AS latency_ms FROM ({_PG_TRACES_SQL}) r
), calls AS (
    SELECT COALESCE(mk.model_key, c.model) AS model, prompt, is_error, {_PG_LATENCY} AS latency_ms
    FROM ({_LLM_CALLS_SQL}) c LEFT JOIN ({{model_keys}}) mk ON mk.model = c.model
)
SELECT CASE WHEN GROUPING(route) = 1 THEN 'overall' ELSE 'route' END AS dimension,
       route AS dimension_value, {_PG_STATS}
FROM req GROUP BY GROUPING SETS ((), (route))
UNION ALL
SELECT CASE WHEN GROUPING(model) = 0 THEN 'model' ELSE 'prompt_version' END AS dimension,
       CASE WHEN GROUPING(model) = 0 THEN model ELSE prompt END AS dimension_value, {_PG_STATS}
FROM calls GROUP BY GROUPING SETS ((model), (prompt))
"""

_PG_STEP_SQL = f"""
SELECT CASE WHEN GROUPING(span_name) = 1 THEN 'span_kind' ELSE 'span_name' END AS dimension,
       span_kind, CASE WHEN GROUPING(span_name) = 1 THEN NULL ELSE span_name END AS span_name,
       {_PG_STATS}
FROM (SELECT span_kind, span_name, is_error, {_PG_LATENCY} AS latency_ms FROM ({_STEPS_SQL}) s) x
GROUP BY GROUPING SETS ((span_kind), (span_kind, span_name))
"""


def _pg_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Unpack the percentile arrays of a PostgreSQL stats result."""
    return unpack_pg_percentiles(frame, "pct", PCT_COLUMNS)


# ---- SQLite / pandas: the same numbers from the fetched columns ---------------------------------


def _latency_ms(frame: pd.DataFrame) -> pd.Series:
    start = pd.to_datetime(frame["req_start"], format="ISO8601")
    end = pd.to_datetime(frame["req_end"], format="ISO8601")
    return ((end - start) / pd.Timedelta(milliseconds=1)).astype("float64")


def latency_stats(frame: pd.DataFrame, by: list[str] | None, value: str = "latency_ms",
                  error: str = "is_error") -> pd.DataFrame:
    """count, error_count, latency_count, exact p50/p90/p95/p99 (linear), max and mean of ``value``
    per group of ``by`` (one overall row when ``by`` is None, even for an empty frame)."""
    if not by:
        values = frame[value].astype("float64")
        row = {
            "n": len(frame),
            "error_count": int(frame[error].sum()) if len(frame) else 0,
            "latency_count": int(values.notna().sum()),
            **dict(zip(PCT_COLUMNS, percentiles(values, QUANTILES), strict=True)),
            "latency_max_ms": values.max(),
            "latency_mean_ms": values.mean(),
        }
        return pd.DataFrame([row])
    if frame.empty:
        return pd.DataFrame(columns=[*by, "n", "error_count", *STAT_COLUMNS])
    g = frame.groupby(by, sort=True, dropna=False)
    out = g.agg(n=(value, "size"), error_count=(error, "sum"), latency_count=(value, "count"),
                latency_max_ms=(value, "max"), latency_mean_ms=(value, "mean"))
    return out.join(grouped_percentiles(g[value], QUANTILES, PCT_COLUMNS)).reset_index()


# ---- model keys ------------------------------------------------------------------------------------


def _key_labels(models: pd.Series) -> pd.Series:
    """Canonical model key of each model label (the missing-model label stays as it is)."""
    labels = models.astype("object")
    return model_keys(labels.where(labels != NULL_LABEL)).where(labels != NULL_LABEL, NULL_LABEL)


def _with_model_names(frame: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """``model_names`` of the model rows of ``frame`` (keyed by ``dimension_value``), from the exact names
    seen in the window; null on the other rows."""
    by_key = names_by_key(n for n in names.dropna().unique() if n != NULL_LABEL)
    is_model = frame["dimension"] == "model"
    frame["model_names"] = frame["dimension_value"].map(by_key).where(is_model, None)
    return frame


def _union_names(lists: pd.Series) -> str | None:
    """Union of comma-separated name lists (a daily row from its hours)."""
    names = {n for value in lists.dropna() for n in str(value).split(", ") if n}
    return ", ".join(sorted(names)) if names else None


# ---- request rollup ------------------------------------------------------------------------------


def request_stats(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Request counts, errors and exact latency statistics of [start, end) per dimension (any window
    length: the daily rollup calls it over a day for its percentiles). Model rows are per canonical model
    key, with the exact names in ``model_names``."""
    params = window_params(start, end)
    if db.is_postgres(engine):
        # by exact model name first (one read of the window less than looking the names up beforehand); the
        # rows are then relabelled with the canonical keys, unless two names of the window share a key:
        # then their calls must be grouped together, and the statistics are recomputed keyed in SQL
        stats = _pg_stats(fetch_frame(engine, _PG_REQUEST_SQL.replace("{model_keys}", _NO_MODEL_KEYS), params))
        model_rows = stats.index[(stats["dimension"] == "model") & (stats["dimension_value"] != NULL_LABEL)]
        names = stats.loc[model_rows, "dimension_value"].astype("object")
        keys = model_keys(names)
        if keys.duplicated().any():
            relation = pd.DataFrame({"model": names, "model_key": keys})
            keys_sql, keys_params = pricing_sql.json_relation(relation, {"model": "text", "model_key": "text"}, "model_keys", True)
            stats = _pg_stats(fetch_frame(engine, _PG_REQUEST_SQL.replace("{model_keys}", keys_sql),
                                          {**params, **keys_params}))
        else:
            stats.loc[model_rows, "dimension_value"] = keys
    else:
        traces = fetch_frame(engine, _TRACES_SQL, params)
        traces["latency_ms"] = _latency_ms(traces)
        calls = fetch_frame(engine, _LLM_CALLS_SQL, params)
        calls["latency_ms"] = _latency_ms(calls)
        names = pd.Series(calls["model"].unique(), dtype="object")
        calls["model"] = _key_labels(calls["model"])
        parts = [
            latency_stats(traces, None).assign(dimension="overall", dimension_value=None),
            latency_stats(traces, ["route"]).rename(columns={"route": "dimension_value"}).assign(dimension="route"),
            latency_stats(calls, ["model"]).rename(columns={"model": "dimension_value"}).assign(dimension="model"),
            latency_stats(calls, ["prompt"]).rename(columns={"prompt": "dimension_value"})
            .assign(dimension="prompt_version"),
        ]
        stats = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    stats = _with_model_names(stats, names)
    stats = stats.rename(columns={"n": "request_count"})
    return _finish_counts(stats, "request_count")


def request_rollup(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly (or any window) request rollup: overall, by route, by model, by prompt version."""
    stats = request_stats(engine, start, end)
    return _shape(stats, request_rollup_hourly, start, end, "request_count")


# ---- step rollup ---------------------------------------------------------------------------------


def step_stats(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Span counts, errors and exact latency statistics of [start, end) by kind and by (kind, name)."""
    params = window_params(start, end)
    if db.is_postgres(engine):
        stats = _pg_stats(fetch_frame(engine, _PG_STEP_SQL, params))
    else:
        steps = fetch_frame(engine, _STEPS_SQL, params)
        steps["latency_ms"] = _latency_ms(steps)
        stats = pd.concat(
            [
                latency_stats(steps, ["span_kind"]).assign(dimension="span_kind", span_name=None),
                latency_stats(steps, ["span_kind", "span_name"]).assign(dimension="span_name"),
            ],
            ignore_index=True,
        )
    stats = stats.rename(columns={"n": "span_count"})
    stats["dimension_value"] = np.where(stats["dimension"] == "span_kind", stats["span_kind"], stats["span_name"])
    return _finish_counts(stats, "span_count")


def step_rollup(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Hourly (or any window) step rollup: latency per span kind and per span name."""
    return _shape(step_stats(engine, start, end), step_rollup_hourly, start, end, "span_count")


# ---- error rollup --------------------------------------------------------------------------------

_ERROR_SPANS_SQL = f"""
SELECT trace_id, span_id, parent_span_id, kind, provider, model, error_type,
       SUBSTR(error_message, 1, 2000) AS error_message, {{status_code}} AS status_code
FROM spans WHERE {_WINDOW} AND status = 'error'
"""
_SPAN_COUNTS_SQL = f"""
SELECT provider, model, COUNT(*) AS span_count FROM spans WHERE {_WINDOW} GROUP BY provider, model
"""


def _error_counts(origins: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    return origins.groupby(by).agg(error_count=("trace_id", "size"), example_trace_id=("trace_id", "max")).reset_index()


def _label(values: pd.Series) -> pd.Series:
    return values.astype("object").where(values.notna(), NULL_LABEL)


def error_rollup(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Origin errors of [start, end): overall, by error class, by provider, by (provider, class), by model
    (canonical key, see :func:`obs_pipelines.pricing.models.model_key`)."""
    params = window_params(start, end)
    error_sql = _ERROR_SPANS_SQL.replace("{status_code}", STATUS_CODE_SQL[db.is_postgres(engine)])
    fetched = run_concurrently(engine, {"errors": lambda: fetch_frame(engine, error_sql, params),
                                    "counts": lambda: fetch_frame(engine, _SPAN_COUNTS_SQL, params)})
    errors, counts = fetched["errors"], fetched["counts"]
    counts["span_count"] = pd.to_numeric(counts["span_count"])
    counts["provider"] = _label(counts["provider"])
    counts["model_key"] = _key_labels(_label(counts["model"]))
    providers = counts.groupby("provider", as_index=False)["span_count"].sum()
    models = counts.groupby("model_key", as_index=False)["span_count"].sum()
    total = int(counts["span_count"].sum())

    # a failed span with a failed child is that child's error propagating: count the origin only
    parent_keys = errors["trace_id"].astype(str) + "/" + errors["parent_span_id"].astype(str)
    own_keys = errors["trace_id"].astype(str) + "/" + errors["span_id"].astype(str)
    origins = errors[~own_keys.isin(set(parent_keys[errors["parent_span_id"].notna()]))].copy()
    origins["error_class"] = classify_errors(origins)
    origins["provider"] = _label(origins["provider"])
    origins["model_key"] = _key_labels(_label(origins["model"]))

    overall = pd.DataFrame([{
        "dimension": "overall", "dimension_value": None, "error_class": None, "provider": None,
        "error_count": len(origins), "span_count": total,
        "example_trace_id": origins["trace_id"].max() if len(origins) else None,
    }])
    by_class = (
        _error_counts(origins, "error_class").set_index("error_class")
        .reindex(list(ERROR_CLASSES)).reset_index().rename(columns={"index": "error_class"})
    )
    by_class["error_count"] = by_class["error_count"].fillna(0)
    by_class = by_class.assign(dimension="error_class", dimension_value=by_class["error_class"],
                               provider=None, span_count=total)
    by_provider = providers.merge(_error_counts(origins, "provider"), on="provider", how="outer")
    by_provider = by_provider.assign(dimension="provider", dimension_value=by_provider["provider"], error_class=None)
    pc = _error_counts(origins, ["provider", "error_class"]).merge(providers, on="provider", how="left")
    pc = pc.assign(dimension="provider_error_class",
                   dimension_value=pc["provider"].astype(str) + "/" + pc["error_class"].astype(str))
    by_model = models.merge(_error_counts(origins, "model_key"), on="model_key", how="outer")
    by_model = by_model.assign(dimension="model", dimension_value=by_model.pop("model_key"), error_class=None,
                               provider=None)
    by_model = _with_model_names(by_model, counts["model"])
    out = pd.concat([p for p in (overall, by_class, by_provider, pc, by_model) if not p.empty], ignore_index=True)
    out["error_count"] = out["error_count"].fillna(0)
    out["span_count"] = out["span_count"].fillna(0)
    return _shape(out, error_rollup_hourly, start, end, None)


# ---- usage rollup --------------------------------------------------------------------------------

_USAGE_SUMS = """SUM(call_count) AS call_count, SUM(input_tokens) AS input_tokens,
       SUM(output_tokens) AS output_tokens, SUM(cached_input_tokens) AS cached_input_tokens,
       SUM(cost_usd) AS cost_usd, SUM(reported_cost_usd) AS reported_cost_usd,
       SUM(computed_cost_usd) AS computed_cost_usd, SUM(unpriced_call_count) AS unpriced_call_count"""
def _usage_sql(rates_sql: str, postgres: bool) -> str:
    prompt = _PROMPT_LABEL.replace("prompt_", "s.prompt_")
    with_sql = f"""
WITH p AS ({rates_sql}),
c AS (
    SELECT COALESCE(s.model, '{NULL_LABEL}') AS model,
           s.route AS span_route,
           CASE WHEN s.route IS NULL THEN s.trace_id END AS route_trace_id,
           {prompt} AS prompt,
           s.user_id AS user_id,
           COALESCE(s.input_tokens, 0) AS input_tokens,
           COALESCE(s.output_tokens, 0) AS output_tokens,
           COALESCE(s.cached_input_tokens, 0) AS cached_input_tokens,
           s.cost_usd AS reported,
           {pricing_sql.COMPUTED_COST} AS computed
    FROM spans s
    LEFT JOIN p ON {pricing_sql.RATE_JOIN}
    WHERE s.start_time >= :start AND s.start_time < :end AND s.kind IN {MODEL_CALL_KINDS_SQL}
),
g0 AS (
    -- pre-aggregate the calls to (model, route, prompt, user): every dimension below is a sum over g;
    -- calls without a route keep their trace id here so that the root's route is looked up once per
    -- trace, after the aggregation, through the primary key
    SELECT model, span_route, route_trace_id, prompt, user_id,
           COUNT(*) AS call_count, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
           SUM(cached_input_tokens) AS cached_input_tokens, SUM(COALESCE(reported, computed)) AS cost_usd,
           SUM(reported) AS reported_cost_usd, SUM(CASE WHEN reported IS NULL THEN computed END) AS computed_cost_usd,
           SUM(CASE WHEN reported IS NULL AND computed IS NULL THEN 1 ELSE 0 END) AS unpriced_call_count
    FROM c GROUP BY model, span_route, route_trace_id, prompt, user_id
),
g AS (
    SELECT model,
           COALESCE(span_route,
                    (SELECT MIN(r.route) FROM spans r
                     WHERE r.trace_id = g0.route_trace_id AND r.parent_span_id IS NULL),
                    '{NULL_LABEL}') AS route,
           prompt, user_id, call_count, input_tokens, output_tokens, cached_input_tokens, cost_usd,
           reported_cost_usd, computed_cost_usd, unpriced_call_count
    FROM g0
),
ranked AS (
    SELECT user_id,
           ROW_NUMBER() OVER (ORDER BY SUM(COALESCE(cost_usd, 0)) DESC,
                                       SUM(input_tokens + output_tokens) DESC, user_id) AS rn
    FROM g WHERE user_id IS NOT NULL GROUP BY user_id
),
seg AS (
    -- the top users as an IN list (a hashed set): a join of g with every ranked user made SQLite loop over
    -- both, quadratic in the window's users (200,000 spans: 6.6 s for the usage rollup, 20,000: 0.34 s)
    SELECT g.*, CASE WHEN g.user_id IS NULL THEN '{NULL_LABEL}'
                     WHEN g.user_id IN (SELECT user_id FROM ranked WHERE rn <= :top_n) THEN g.user_id
                     ELSE '{OTHER_LABEL}' END AS segment
    FROM g
)"""
    if postgres:  # one pass over the pre-aggregate for every dimension
        return with_sql + f"""
SELECT CASE GROUPING(model, route, prompt, segment)
            WHEN 15 THEN 'overall' WHEN 7 THEN 'model' WHEN 11 THEN 'route'
            WHEN 13 THEN 'prompt_version' ELSE 'user' END AS dimension,
       CASE GROUPING(model, route, prompt, segment)
            WHEN 15 THEN NULL WHEN 7 THEN model WHEN 11 THEN route
            WHEN 13 THEN prompt ELSE segment END AS dimension_value,
       {_USAGE_SUMS}
FROM seg GROUP BY GROUPING SETS ((), (model), (route), (prompt), (segment))
"""
    return with_sql + f"""
SELECT 'overall' AS dimension, NULL AS dimension_value, {_USAGE_SUMS} FROM g
UNION ALL SELECT 'model', model, {_USAGE_SUMS} FROM g GROUP BY model
UNION ALL SELECT 'route', route, {_USAGE_SUMS} FROM g GROUP BY route
UNION ALL SELECT 'prompt_version', prompt, {_USAGE_SUMS} FROM g GROUP BY prompt
UNION ALL SELECT 'user', segment, {_USAGE_SUMS} FROM seg GROUP BY segment
"""


def usage_rollup(engine: Engine, start: datetime, end: datetime, prices: PriceTable,
                 top_n_users: int = 20) -> pd.DataFrame:
    """Tokens and cost of [start, end) by model, route, prompt version and user segment."""
    params = window_params(start, end)
    postgres = db.is_postgres(engine)
    rates_sql, rate_params = pricing_sql.rates_relation(engine, prices, [(start, end)])
    stmt = bind_window(_usage_sql(rates_sql, postgres)).bindparams(sa.bindparam("top_n", type_=sa.Integer))
    out = fetch_frame(engine, stmt, {**params, **rate_params, "top_n": int(top_n_users)})
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "unpriced_call_count", "call_count"):
        out[col] = pd.to_numeric(out[col]).fillna(0).astype("int64")
    for col in ("cost_usd", "reported_cost_usd", "computed_cost_usd"):
        out[col] = pd.to_numeric(out[col]).astype("float64").fillna(0.0)
    out = _usage_by_model_key(out)
    out["price_version"] = prices.version
    return _shape(out, usage_rollup_hourly, start, end, None)


_USAGE_SUM_COLUMNS = ["call_count", "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd",
                      "reported_cost_usd", "computed_cost_usd", "unpriced_call_count"]


def _usage_by_model_key(usage: pd.DataFrame) -> pd.DataFrame:
    """Merge the per-exact-model rows of the usage query into one row per canonical model key (prices are
    joined on the exact names, in SQL; usage sums merge exactly)."""
    is_model = usage["dimension"] == "model"
    exact = usage[is_model]
    merged = (exact.assign(dimension_value=_key_labels(exact["dimension_value"]))
              .groupby(["dimension", "dimension_value"], as_index=False)[_USAGE_SUM_COLUMNS].sum())
    merged = _with_model_names(merged, exact["dimension_value"])
    return pd.concat([usage[~is_model], merged], ignore_index=True)


# ---- daily rollups (from the hourly tables) ------------------------------------------------------


def _read_hourly(engine: Engine, table: sa.Table, day_start: datetime) -> pd.DataFrame:
    day_start = db.to_naive_utc(day_start)
    return read_window(engine, table, day_start, day_start + DAY, time_column="window_start")


def _merge_latency(hourly: pd.DataFrame, keys: list[str], count_col: str, **extra: tuple) -> pd.DataFrame:
    """Counts, errors, max and mean latency of ``hourly`` merged per ``keys`` (+ ``extra`` named
    aggregations)."""
    h = hourly.copy()
    h["_lat_sum"] = h["latency_mean_ms"].astype("float64") * h["latency_count"]
    g = h.groupby(keys, dropna=False, sort=True)
    out = g.agg(**{count_col: (count_col, "sum"), "error_count": ("error_count", "sum"),
                   "latency_count": ("latency_count", "sum"), "latency_max_ms": ("latency_max_ms", "max"),
                   "_lat_sum": ("_lat_sum", "sum")}, **extra).reset_index()
    out["latency_mean_ms"] = np.where(out["latency_count"] > 0,
                                      out["_lat_sum"] / out["latency_count"].where(out["latency_count"] > 0, 1),
                                      np.nan)
    return out.drop(columns="_lat_sum")


def _with_day_percentiles(merged: pd.DataFrame, day_stats: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    fill = "\x00null"
    left = merged.assign(**{k: merged[k].astype("object").where(merged[k].notna(), fill) for k in keys})
    right = day_stats[[*keys, *PCT_COLUMNS]]
    right = right.assign(**{k: right[k].astype("object").where(right[k].notna(), fill) for k in keys})
    out = left.merge(right, on=keys, how="left")
    for k in keys:
        out[k] = out[k].where(out[k] != fill, None)
    return out


def daily_request_rollup(engine: Engine, day_start: datetime) -> pd.DataFrame:
    """Daily request rollup: counts, errors, max and mean latency summed / merged from the hourly table;
    the percentile columns recomputed exactly from the day's spans (hourly percentiles do not merge)."""
    day_start = db.to_naive_utc(day_start)
    hourly = _read_hourly(engine, request_rollup_hourly, day_start)
    keys = ["dimension", "dimension_value"]
    if hourly.empty:
        return _shape(pd.DataFrame(columns=keys), request_rollup_daily, day_start, day_start + DAY, "request_count")
    merged = _merge_latency(hourly, keys, "request_count", model_names=("model_names", _union_names))
    out = _with_day_percentiles(merged, request_stats(engine, day_start, day_start + DAY), keys)
    return _shape(_finish_counts(out, "request_count"), request_rollup_daily, day_start, day_start + DAY,
                  "request_count")


def daily_step_rollup(engine: Engine, day_start: datetime) -> pd.DataFrame:
    """Daily step rollup: counts / errors / max / mean from the hourly table, percentiles recomputed
    exactly from the day's spans."""
    day_start = db.to_naive_utc(day_start)
    hourly = _read_hourly(engine, step_rollup_hourly, day_start)
    keys = ["dimension", "dimension_value", "span_kind", "span_name"]
    if hourly.empty:
        return _shape(pd.DataFrame(columns=keys), step_rollup_daily, day_start, day_start + DAY, "span_count")
    merged = _merge_latency(hourly, keys, "span_count")
    out = _with_day_percentiles(merged, step_stats(engine, day_start, day_start + DAY), keys)
    return _shape(_finish_counts(out, "span_count"), step_rollup_daily, day_start, day_start + DAY, "span_count")


def daily_error_rollup(engine: Engine, day_start: datetime) -> pd.DataFrame:
    """Daily error rollup: every count summed from the hourly table."""
    day_start = db.to_naive_utc(day_start)
    hourly = _read_hourly(engine, error_rollup_hourly, day_start)
    keys = ["dimension", "dimension_value", "error_class", "provider"]
    if hourly.empty:
        return _shape(pd.DataFrame(columns=keys), error_rollup_daily, day_start, day_start + DAY, None)
    out = hourly.groupby(keys, dropna=False, sort=True).agg(
        error_count=("error_count", "sum"), span_count=("span_count", "sum"),
        example_trace_id=("example_trace_id", "max"), model_names=("model_names", _union_names)).reset_index()
    return _shape(out, error_rollup_daily, day_start, day_start + DAY, None)


def daily_usage_rollup(engine: Engine, day_start: datetime) -> pd.DataFrame:
    """Daily usage rollup: tokens and cost summed from the hourly table. User segments are summed per
    label: a user's daily row holds the hours where they were in that hour's top N, the rest of their usage
    is in ``(other)`` (totals stay exact). ``price_version`` lists the versions the hours used."""
    day_start = db.to_naive_utc(day_start)
    hourly = _read_hourly(engine, usage_rollup_hourly, day_start)
    keys = ["dimension", "dimension_value"]
    if hourly.empty:
        return _shape(pd.DataFrame(columns=keys), usage_rollup_daily, day_start, day_start + DAY, None)
    out = hourly.groupby(keys, dropna=False, sort=True).agg(
        **{c: (c, "sum") for c in _USAGE_SUM_COLUMNS},
        price_version=("price_version", lambda s: ", ".join(sorted(set(s.dropna())))),
        model_names=("model_names", _union_names),
    ).reset_index()
    return _shape(out, usage_rollup_daily, day_start, day_start + DAY, None)


# ---- shaping and writing ---------------------------------------------------------------------------


def _finish_counts(stats: pd.DataFrame, count_col: str) -> pd.DataFrame:
    stats[count_col] = pd.to_numeric(stats[count_col]).fillna(0).astype("int64")
    stats["error_count"] = pd.to_numeric(stats["error_count"]).fillna(0).astype("int64")
    stats["latency_count"] = pd.to_numeric(stats["latency_count"]).fillna(0).astype("int64")
    for col in (*PCT_COLUMNS, "latency_max_ms", "latency_mean_ms"):
        stats[col] = pd.to_numeric(stats[col], errors="coerce").astype("float64")
    return stats


def _shape(frame: pd.DataFrame, table: sa.Table, start: datetime, end: datetime,
           count_col: str | None) -> pd.DataFrame:
    """Add window columns, throughput, error rate and computed_at; order and sort like the table."""
    if frame.empty:  # no rows (a day without traffic): the table's columns only, nothing to derive
        return pd.DataFrame(columns=column_names(table))
    out = frame.copy()
    start, end = db.to_naive_utc(start), db.to_naive_utc(end)
    minutes = (end - start).total_seconds() / 60.0
    out["window_start"] = start
    out["window_end"] = end
    if count_col is not None:
        out["throughput_per_min"] = out[count_col].astype("float64") / minutes
        out["error_rate"] = _rate(out["error_count"], out[count_col])
    elif "span_count" in out and "error_count" in out:
        out["error_rate"] = _rate(out["error_count"], out["span_count"])
        for col in ("error_count", "span_count"):
            out[col] = pd.to_numeric(out[col]).fillna(0).astype("int64")
    out["computed_at"] = db.utcnow()
    cols = column_names(table)
    for col in cols:
        if col not in out:
            out[col] = None
    out = out[cols]
    order = {"overall": 0}
    out = out.assign(_o=out["dimension"].map(order).fillna(1)).sort_values(
        ["_o", "dimension", "dimension_value"], na_position="first", kind="stable"
    ).drop(columns="_o")
    return out.reset_index(drop=True)


def _rate(num: pd.Series, den: pd.Series) -> pd.Series:
    num = pd.to_numeric(num).astype("float64")
    den = pd.to_numeric(den).astype("float64")
    return (num / den.where(den > 0)).astype("float64")


# The rollups of a window without spans depend on nothing but the window (its start and end, the time of
# computation, the price table's version): computed once per process and dialect, then re-dated, so that
# each further empty hour of a backfill costs one index probe instead of seven queries.
_EMPTY_WINDOW_ROLLUPS: dict[tuple, dict[str, pd.DataFrame]] = {}


def _no_spans(frames: Mapping[str, pd.DataFrame]) -> bool:
    """The computed rollups saw no span at all (the error rollup's overall row counts every span)."""
    overall = frames["error"].loc[frames["error"]["dimension"] == "overall", "span_count"]
    return frames["step"].empty and len(overall) == 1 and int(overall.iloc[0]) == 0


def _redated(template: Mapping[str, pd.DataFrame], start: datetime, end: datetime,
             prices: PriceTable) -> dict[str, pd.DataFrame]:
    now = db.utcnow()
    frames = {}
    for kind, frame in template.items():
        out = frame.copy()
        for column, value in (("window_start", db.to_naive_utc(start)), ("window_end", db.to_naive_utc(end)),
                              ("computed_at", now)):
            # the template's dtype, so a re-dated frame equals a computed one (pandas would infer datetime64)
            dtype = frame[column].dtype if column in frame else None
            out[column] = pd.Series([value] * len(out), index=out.index, dtype=dtype)
        if "price_version" in out:
            out["price_version"] = prices.version
        frames[kind] = out
    return frames


def hourly_rollups(engine: Engine, start: datetime, end: datetime, prices: PriceTable,
                   top_n_users: int = 20) -> dict[str, pd.DataFrame]:
    """All hourly rollups of [start, end), keyed like ``HOURLY_TABLES``."""
    empty_key = None
    if not window_has_spans(engine, start, end):
        empty_key = (engine.dialect.name, db.to_naive_utc(end) - db.to_naive_utc(start))
        template = _EMPTY_WINDOW_ROLLUPS.get(empty_key)
        if template is not None:
            return _redated(template, start, end, prices)
    frames = run_concurrently(engine, {
        "request": lambda: request_rollup(engine, start, end),
        "step": lambda: step_rollup(engine, start, end),
        "error": lambda: error_rollup(engine, start, end),
        "usage": lambda: usage_rollup(engine, start, end, prices, top_n_users),
    })
    if empty_key is not None and _no_spans(frames):  # (no span arrived between the probe and the queries)
        _EMPTY_WINDOW_ROLLUPS[empty_key] = {kind: frame.copy() for kind, frame in frames.items()}
    return frames


def daily_rollups(engine: Engine, day_start: datetime) -> dict[str, pd.DataFrame]:
    """All daily rollups of the day starting at ``day_start``, keyed like ``DAILY_TABLES``."""
    return run_concurrently(engine, {
        "request": lambda: daily_request_rollup(engine, day_start),
        "step": lambda: daily_step_rollup(engine, day_start),
        "error": lambda: daily_error_rollup(engine, day_start),
        "usage": lambda: daily_usage_rollup(engine, day_start),
    })


def write_hourly_rollups(engine: Engine, start: datetime, end: datetime, prices: PriceTable,
                         top_n_users: int = 20) -> dict[str, int]:
    """Compute and write every hourly rollup of [start, end); rows written per rollup."""
    frames = hourly_rollups(engine, start, end, prices, top_n_users)
    written = db.replace_windows(engine, start, end, {HOURLY_TABLES[k]: f for k, f in frames.items()})
    return {k: written[HOURLY_TABLES[k].name] for k in frames}


def write_daily_rollups(engine: Engine, day_start: datetime) -> dict[str, int]:
    """Compute and write every daily rollup of the day starting at ``day_start``."""
    frames = daily_rollups(engine, day_start)
    end = db.to_naive_utc(day_start) + DAY
    written = db.replace_windows(engine, day_start, end, {DAILY_TABLES[k]: f for k, f in frames.items()})
    return {k: written[DAILY_TABLES[k].name] for k in frames}


__all__ = [
    "QUANTILES",
    "daily_error_rollup",
    "daily_request_rollup",
    "daily_rollups",
    "daily_step_rollup",
    "daily_usage_rollup",
    "error_rollup",
    "hourly_rollups",
    "latency_stats",
    "request_rollup",
    "request_stats",
    "step_rollup",
    "step_stats",
    "usage_rollup",
    "write_daily_rollups",
    "write_hourly_rollups",
]

