"""What the observability tables read from the store for one window: the window's requests (the shared
definition, store/traces.py), per-trace aggregates of its spans, the spans the tables need one by one (light
columns), the texts of retrieval / tool / agent model spans, the calls priced and summed in the database, and
pooled step / request durations over several windows (the attribution baselines).

On PostgreSQL the work is SQL (aggregates, ``percentile_cont``, call pricing) and wide reads stream through
COPY; SQLite reads the spans and computes the same numbers with pandas (linear interpolation, as
``percentile_cont``). No Python loop over spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.observability import span_stats
from obs_pipelines.observability.tables import COUNTED_KINDS, TIMED_KINDS
from obs_pipelines.store import db, pricing_sql, traces
from obs_pipelines.store.errors import STATUS_CODE_SQL
from obs_pipelines.store.percentiles import grouped_percentiles, pg_ms, pg_percentiles, unpack_pg_percentiles
from obs_pipelines.store.query import bind_window, fetch_frame, fetch_text_frame, window_params
from obs_pipelines.store.schema import MODEL_CALL_KINDS_SQL

WINDOW = traces.WINDOW
REQUEST_COLUMNS = ("trace_id", "user_id", "session_id", "service_name")
# an agent request's steps are read up to this long after its hour closes (its path belongs to its root's hour)
AGENT_LOOKAHEAD = timedelta(hours=1)
AGENT_KINDS = ("tool", "llm")

_SPANS_SQL = f"""
SELECT trace_id, span_id, parent_span_id, name, kind, start_time, end_time, status, error_type,
       SUBSTR(error_message, 1, 2000) AS error_message,
       CASE WHEN status = 'error' THEN {{status_code}} END AS status_code,
       model, provider, prompt_name, prompt_version, input_tokens, output_tokens, cached_input_tokens, cost_usd,
       user_id, route
FROM spans WHERE {WINDOW}
"""
# texts the retrieval log reads: retrieval spans with their documents
_TEXTS_SQL = f"""
SELECT trace_id, span_id, kind, SUBSTR(input, 1, 4000) AS input,
       CASE WHEN kind = 'llm' THEN SUBSTR(output, 1, 4000) END AS output,
       CASE WHEN kind IN ('retrieval', 'reranker') THEN attributes END AS attributes
FROM spans
WHERE {WINDOW} AND kind = 'retrieval'
"""

_AGENT_TEXTS_SQL = f"""
SELECT trace_id, span_id, kind, SUBSTR(input, 1, 4000) AS input,
       CASE WHEN kind = 'llm' THEN SUBSTR(output, 1, 4000) END AS output
FROM spans
WHERE {WINDOW} AND (kind = 'tool'
    OR (kind = 'llm' AND trace_id IN (SELECT trace_id FROM spans WHERE {WINDOW} AND kind = 'tool')))
"""


def parse_times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """SQLite returns times as ISO strings: parse them (PostgreSQL's datetimes pass through)."""
    for col in columns:
        frame[col] = pd.to_datetime(frame[col], format="ISO8601") if len(frame) else pd.to_datetime(frame[col])
    return frame


def member(values: pd.Series, of) -> np.ndarray:
    """``values.isin(of)`` as a boolean array, through a hash index of ``of``'s distinct values (several times
    faster than ``Series.isin`` on the string columns of a window)."""
    return pd.Index(pd.unique(pd.Series(of))).get_indexer(values) >= 0


def duration_ms(start: pd.Series, end: pd.Series) -> pd.Series:
    return ((end - start) / pd.Timedelta(milliseconds=1)).astype("float64")


def requests(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The window's requests: trace_id, route, req_start, req_end, is_error, user_id, session_id, service_name."""
    frame = fetch_text_frame(engine, traces.requests_sql(db.is_postgres(engine), extra=REQUEST_COLUMNS),
                             window_params(start, end))
    frame = parse_times(frame, "req_start", "req_end")
    frame["is_error"] = pd.to_numeric(frame["is_error"]).fillna(0).astype("int64")
    return frame


def spans(engine: Engine, start: datetime, end: datetime, kinds: tuple[str, ...] = (), failed: bool = False,
          trace_ids: Sequence[str] | None = None, tool_llm_until: datetime | None = None) -> pd.DataFrame:
    """The window's spans, without their texts and attributes (but the HTTP status of failed ones): all of
    them, or only those of ``kinds``, every failed span (``failed``) and the llm spans of the requests with a
    tool call before ``tool_llm_until`` (an agent's path), as asked; only those of ``trace_ids`` when given."""
    sql = _SPANS_SQL.replace("{status_code}", STATUS_CODE_SQL[db.is_postgres(engine)])
    # kinds are constants of this package, never user input
    wanted = ["kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"] if kinds else []
    if failed:
        wanted.append("status = 'error'")
    if tool_llm_until is not None:
        wanted.append("(kind = 'llm' AND trace_id IN (SELECT trace_id FROM spans WHERE start_time >= :start "
                      "AND start_time < :tools_end AND kind = 'tool'))")
    if wanted:
        sql += " AND (" + " OR ".join(wanted) + ")"
    params: dict = dict(window_params(start, end))
    binds = []
    if tool_llm_until is not None:
        params["tools_end"] = db.to_naive_utc(tool_llm_until)
        binds.append(sa.bindparam("tools_end", type_=sa.DateTime))
    if trace_ids is not None:
        sql += " AND trace_id IN :trace_ids"
        params["trace_ids"] = [str(t) for t in trace_ids]
        binds.append(sa.bindparam("trace_ids", expanding=True))
    stmt = bind_window(sql).bindparams(*binds) if binds else bind_window(sql)
    frame = parse_times(fetch_text_frame(engine, stmt, params), "start_time", "end_time")
    frame["duration_ms"] = duration_ms(frame["start_time"], frame["end_time"])
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


# ---- per-request aggregates of the window's spans ---------------------------------------------------------

def _count_case(kind: str) -> str:
    if kind == "other":  # whatever kind no other column counts (a null kind too)
        listed = ", ".join(f"'{k}'" for k in COUNTED_KINDS if k != "other")
        return f"COUNT(*) FILTER (WHERE kind IS NULL OR kind NOT IN ({listed})) AS other_spans"
    return f"COUNT(*) FILTER (WHERE kind = '{kind}') AS {kind}_spans"


_TIMED = ", ".join(f"'{k}'" for k in TIMED_KINDS)
# one pass: spans per kind, tokens and the time per step kind. That time is the length of the union of the
# kind's intervals: sorted by start, each span adds the part of it that ends after every earlier span of its
# kind (a point before that running maximum end is inside the earlier span that reaches it, which started no
# later): one window pass. Its keys compare bytes (COLLATE "C" sorts several times faster than a locale);
# date_part's double precision is several times cheaper than EXTRACT's numeric.
_PG_AGGREGATES_SQL = f"""
SELECT trace_id, COUNT(*) AS span_count, {", ".join(_count_case(k) for k in COUNTED_KINDS)},
       COALESCE(SUM(input_tokens), 0) AS input_tokens, COALESCE(SUM(output_tokens), 0) AS output_tokens,
       COALESCE(SUM(cached_input_tokens), 0) AS cached_input_tokens,
       {", ".join(f"COALESCE(SUM(ms) FILTER (WHERE kind = '{k}'), 0) AS {k}_ms" for k in TIMED_KINDS)}
FROM (
    SELECT trace_id, kind, input_tokens, output_tokens, cached_input_tokens,
           GREATEST(date_part('epoch', end_time - GREATEST(start_time, COALESCE(
               MAX(end_time) OVER (PARTITION BY trace_id COLLATE "C", kind COLLATE "C" ORDER BY start_time
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), start_time))), 0) * 1000.0 AS ms
    FROM spans WHERE {WINDOW}
) w
GROUP BY trace_id
"""
_LIGHT_SQL = f"""
SELECT trace_id, span_id, parent_span_id, name, kind, start_time, end_time, input_tokens, output_tokens,
       cached_input_tokens
FROM spans WHERE {WINDOW}
"""


def light_spans(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """The window's spans, only what the per-trace and per-step statistics need (SQLite's path to them)."""
    light = parse_times(fetch_frame(engine, _LIGHT_SQL, window_params(start, end)), "start_time", "end_time")
    for col in span_stats.TOKEN_COLUMNS:
        light[col] = pd.to_numeric(light[col], errors="coerce").astype("float64")
    light["duration_ms"] = duration_ms(light["start_time"], light["end_time"])
    return light


def trace_aggregates(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Per trace of the window's spans: span_count, spans per kind, token sums and the time per step kind
    (``span_stats.AGGREGATE_COLUMNS``). In SQL on PostgreSQL; in pandas over the spans on SQLite."""
    params = window_params(start, end)
    if db.is_postgres(engine):
        frame = fetch_text_frame(engine, _PG_AGGREGATES_SQL, params)
        if frame.empty:
            return span_stats.span_aggregates(frame)
        for col in (*span_stats.COUNT_COLUMNS, *span_stats.TOKEN_COLUMNS):
            frame[col] = pd.to_numeric(frame[col]).astype("int64")
        for col in span_stats.TIME_COLUMNS:
            frame[col] = pd.to_numeric(frame[col]).astype("float64")
        return frame[list(span_stats.AGGREGATE_COLUMNS)]
    return span_stats.span_aggregates(light_spans(engine, start, end))


def window_statistics(light: pd.DataFrame, window_requests: pd.DataFrame) -> dict:
    """From one light read of a window (``light_spans``) and its requests, in pandas: what
    ``trace_aggregates``, ``step_percentiles`` / ``route_percentiles`` of the window and ``wrapping_steps``
    read in SQL (the same rows and numbers): SQLite reads the window once instead of four times."""
    keys = ["route", "span_name", "span_kind"]
    steps = light[light["parent_span_id"].notna().to_numpy() & member(light["trace_id"], window_requests["trace_id"])]
    route = steps["trace_id"].map(window_requests.set_index("trace_id")["route"])
    keyed = pd.DataFrame({"route": route, "span_name": steps["name"].fillna(traces.NULL_LABEL),
                          "span_kind": steps["kind"].fillna(traces.NULL_LABEL)})
    children = pd.MultiIndex.from_frame(light.loc[light["parent_span_id"].notna(), ["trace_id", "parent_span_id"]])
    parents = light[pd.MultiIndex.from_frame(light[["trace_id", "span_id"]]).isin(children)]
    return {
        "aggregates": span_stats.span_aggregates(light),
        "steps_now": _frame_percentiles(keyed, steps["duration_ms"], keys),
        "routes_now": _frame_percentiles(window_requests[["route"]], duration_ms(
            window_requests["req_start"], window_requests["req_end"]), ["route"]),
        "wrapping": set(zip(parents["name"].fillna(traces.NULL_LABEL), parents["kind"].fillna(traces.NULL_LABEL),
                             strict=True)),
    }


_WRAPPING_SQL = f"""
SELECT DISTINCT COALESCE(p.name, '{traces.NULL_LABEL}') AS span_name, COALESCE(p.kind, '{traces.NULL_LABEL}') AS span_kind
FROM spans p
WHERE p.start_time >= :start AND p.start_time < :end AND EXISTS (
    SELECT 1 FROM spans c
    WHERE c.trace_id = p.trace_id AND c.parent_span_id = p.span_id AND c.start_time >= :start AND c.start_time < :end)
"""


def wrapping_steps(engine: Engine, start: datetime, end: datetime) -> set[tuple[str, str]]:
    """(name, kind) of the window's spans that have child spans in the window: steps whose time repeats
    their children's (an agent or chain span)."""
    frame = fetch_frame(engine, _WRAPPING_SQL, window_params(start, end))
    return set(zip(frame["span_name"], frame["span_kind"], strict=True)) if len(frame) else set()


def agent_texts(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Inputs of the tool spans of [start, end) and outputs of the llm spans of the requests that called tools."""
    return fetch_text_frame(engine, _AGENT_TEXTS_SQL, window_params(start, end))


def agent_steps(engine: Engine, start: datetime, end: datetime, trace_ids: pd.Series,
                lookahead: timedelta = AGENT_LOOKAHEAD, window_spans: pd.DataFrame | None = None,
                later: pd.DataFrame | None = None, texts: pd.DataFrame | None = None
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tool and llm spans (and their texts) of the window's requests, including the spans that start up to
    ``lookahead`` after the window closes: a request's path is whole in the window of its root.
    Whatever is already read is not read again: ``window_spans`` (the window's spans, at least its tool and
    llm ones), ``later`` (the tool and llm spans of the lookahead), ``texts`` (``agent_texts`` of the window
    and the lookahead)."""
    kinds = AGENT_KINDS
    if window_spans is None:
        frame = spans(engine, start, end + lookahead, kinds=kinds)
    else:
        frame = window_spans[window_spans["kind"].isin(kinds)]
        later = spans(engine, end, end + lookahead, kinds=kinds) if later is None else later
        if len(later):
            frame = pd.concat([frame, later], ignore_index=True)
    frame = frame[member(frame["trace_id"], trace_ids)].reset_index(drop=True)
    texts = agent_texts(engine, start, end + lookahead) if texts is None else texts
    return frame, texts[member(texts["trace_id"], trace_ids)]


def texts(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Input (the query) and attributes (the documents) of the window's retrieval spans."""
    return fetch_text_frame(engine, _TEXTS_SQL, window_params(start, end))


# ---- the llm / embedding calls of several windows (the cost attribution's baseline) ------------------------

def _calls_sql(postgres: bool) -> str:
    # each call with its request's route and user (the shared request definition, joined in the database)
    return f"""
SELECT :start AS window_start, s.trace_id, s.kind, s.model, s.provider, s.prompt_name, s.prompt_version,
       s.input_tokens, s.output_tokens, s.cached_input_tokens, s.cost_usd, s.start_time, s.user_id,
       r.route AS request_route, r.user_id AS request_user
FROM spans s LEFT JOIN ({traces.requests_sql(postgres, extra=("trace_id", "user_id"))}) r ON r.trace_id = s.trace_id
WHERE s.start_time >= :start AND s.start_time < :end AND s.kind IN {MODEL_CALL_KINDS_SQL}
"""


def window_calls(engine: Engine, windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """The llm / embedding calls of each window that has any, as (calls, requests): the calls' columns
    ``calls_of`` and the price table read, and their requests' trace_id, route and user_id. One query."""
    if not windows:
        return []
    stmt, params = _pooled(_calls_sql(db.is_postgres(engine)), windows)
    frame = fetch_text_frame(engine, stmt, params)
    if frame.empty:
        return []
    frame = parse_times(frame, "start_time")
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    out = []
    for _, part in frame.groupby(frame["window_start"].astype(str), sort=True):
        requests = (part.loc[part["request_route"].notna(), ["trace_id", "request_route", "request_user"]]
                    .drop_duplicates("trace_id")
                    .rename(columns={"request_route": "route", "request_user": "user_id"}))
        out.append((part.drop(columns=["window_start", "request_route", "request_user"]).reset_index(drop=True),
                    requests.reset_index(drop=True)))
    return out


# ---- priced calls aggregated in the database (PostgreSQL) ---------------------------------------------------

_TRACE_PROMPT = ("CASE WHEN s.prompt_name IS NOT NULL OR s.prompt_version IS NOT NULL "
                 "THEN COALESCE(s.prompt_name, '') || ':' || COALESCE(s.prompt_version, '') END")
_CALL_PROMPT = f"""CASE WHEN s.prompt_name IS NOT NULL AND s.prompt_version IS NOT NULL
                     THEN s.prompt_name || '@' || s.prompt_version
                     ELSE COALESCE(s.prompt_version, s.prompt_name, '{traces.NULL_LABEL}') END"""


def _priced_calls(rates_sql: str) -> str:
    # the window's llm / embedding calls, each priced as PriceTable.compute_costs prices it
    return f"""p AS ({rates_sql}), c AS (
    SELECT s.trace_id, s.kind, s.model, s.user_id, {_TRACE_PROMPT} AS trace_prompt, {_CALL_PROMPT} AS prompt,
           COALESCE(s.input_tokens, 0) AS input_tokens, COALESCE(s.output_tokens, 0) AS output_tokens,
           COALESCE(s.cost_usd, {pricing_sql.COMPUTED_COST}) AS cost
    FROM spans s LEFT JOIN p ON {pricing_sql.RATE_JOIN}
    WHERE s.start_time >= :start AND s.start_time < :end AND s.kind IN {MODEL_CALL_KINDS_SQL}
)"""


def trace_calls(engine: Engine, start: datetime, end: datetime, prices) -> pd.DataFrame:
    """PostgreSQL: per trace of the window's calls, cost_usd and the sorted distinct models and prompt
    versions of its llm calls (what ``requests.traces_frame`` computes from the calls in pandas)."""
    rates_sql, rate_params = pricing_sql.rates_relation(engine, prices, [(start, end)])
    sql = f"""WITH {_priced_calls(rates_sql)}
SELECT trace_id, COALESCE(SUM(cost), 0) AS cost_usd,
       string_agg(DISTINCT model COLLATE "C", ', ' ORDER BY model COLLATE "C") FILTER (WHERE kind = 'llm') AS models,
       string_agg(DISTINCT trace_prompt COLLATE "C", ', ' ORDER BY trace_prompt COLLATE "C")
           FILTER (WHERE kind = 'llm') AS prompt_versions
FROM c GROUP BY trace_id"""
    frame = fetch_text_frame(engine, sql, {**window_params(start, end), **rate_params})
    frame["cost_usd"] = pd.to_numeric(frame["cost_usd"]).astype("float64")
    return frame


def call_groups(engine: Engine, windows: Sequence[tuple[datetime, datetime]], prices) -> list[pd.DataFrame]:
    """PostgreSQL: the llm / embedding calls of each window that has any, summed per (request route, request
    user, model, call user, prompt version): calls, tokens, cost. One query; ``attribution.calls_of_groups``
    turns them into what ``attribution.calls_of`` makes of the calls one by one."""
    if not windows:
        return []
    rates_sql, rate_params = pricing_sql.rates_relation(engine, prices, windows)
    per_window = f"""WITH {_priced_calls(rates_sql)}
SELECT :start AS window_start, r.route AS request_route, r.user_id AS request_user, c.model, c.user_id, c.prompt,
       COUNT(*) AS calls, SUM(c.input_tokens) AS input_tokens, SUM(c.output_tokens) AS output_tokens,
       COALESCE(SUM(c.cost), 0) AS cost
FROM c LEFT JOIN ({traces.requests_sql(True, extra=("trace_id", "user_id"))}) r ON r.trace_id = c.trace_id
GROUP BY r.route, r.user_id, c.model, c.user_id, c.prompt"""
    stmt, params = _pooled(per_window, windows)
    frame = fetch_text_frame(engine, stmt, {**params, **rate_params})
    for col in ("calls", "input_tokens", "output_tokens", "cost"):
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return [part.drop(columns="window_start").reset_index(drop=True)
            for _, part in frame.groupby(frame["window_start"].astype(str), sort=True)]


# ---- durations pooled over several windows (an hour, or its baseline hours) -------------------------------

def _pooled(sql_of_window: str, windows: Sequence[tuple[datetime, datetime]]) -> tuple[sa.TextClause, dict]:
    """``sql_of_window`` (binds :start / :end) once per window, UNION ALL, each with its own binds."""
    parts, params = [], {}
    for i, (start, end) in enumerate(windows):
        parts.append(sql_of_window.replace(":start", f":start_{i}").replace(":end", f":end_{i}"))
        params.update({f"start_{i}": db.to_naive_utc(start), f"end_{i}": db.to_naive_utc(end)})
    return sa.text("\nUNION ALL\n".join(f"SELECT * FROM ({p}) w{i}" for i, p in enumerate(parts))).bindparams(
        *_window_binds(params)), params


def _window_binds(params: dict) -> list[sa.BindParameter]:
    """The window bounds of ``_pooled``'s params as typed binds (a statement that wraps its SQL needs them too)."""
    return [sa.bindparam(name, type_=sa.DateTime) for name in params]


def _step_rows_sql(postgres: bool) -> str:
    # the steps of the window's requests: every span but the root (the root is the request itself)
    return f"""
SELECT r.route AS route, COALESCE(s.name, '{traces.NULL_LABEL}') AS span_name,
       COALESCE(s.kind, '{traces.NULL_LABEL}') AS span_kind, s.start_time AS t0, s.end_time AS t1
FROM spans s JOIN ({traces.requests_sql(postgres, extra=("trace_id",))}) r ON r.trace_id = s.trace_id
WHERE s.start_time >= :start AND s.start_time < :end AND s.parent_span_id IS NOT NULL
"""


def _request_rows_sql(postgres: bool) -> str:
    return f"SELECT route, req_start AS t0, req_end AS t1 FROM ({traces.requests_sql(postgres)}) r"


_QUANTILES, _PCT_COLUMNS = (0.5, 0.95), ("p50_ms", "p95_ms")


def _percentiles(engine: Engine, rows_sql: str, keys: list[str],
                 windows: Sequence[tuple[datetime, datetime]]) -> pd.DataFrame:
    """calls, p50_ms, p95_ms of the durations (t1 - t0) per ``keys``, pooled over ``windows``."""
    columns = [*keys, "calls", "p50_ms", "p95_ms"]
    if not windows:
        return pd.DataFrame(columns=columns)
    group = ", ".join(keys)
    if db.is_postgres(engine):
        rows, params = _pooled(rows_sql, windows)
        sql = sa.text(f"""
SELECT {group}, COUNT(*) AS calls, {pg_percentiles(pg_ms("t0", "t1"), _QUANTILES)} AS pct
FROM ({rows.text}) x GROUP BY {group}""").bindparams(*_window_binds(params))
        frame = unpack_pg_percentiles(fetch_frame(engine, sql, params), "pct", _PCT_COLUMNS)
    else:
        rows, params = _pooled(rows_sql, windows)
        raw = parse_times(fetch_frame(engine, rows, params), "t0", "t1")
        return _frame_percentiles(raw[keys], duration_ms(raw["t0"], raw["t1"]), keys)
    return _typed(frame, columns)


def _frame_percentiles(keyed: pd.DataFrame, ms: pd.Series, keys: list[str]) -> pd.DataFrame:
    """calls, p50_ms, p95_ms of ``ms`` per ``keys`` (columns of ``keyed``), in pandas (the store's percentile
    engine: linear interpolation, as ``percentile_cont``)."""
    columns = [*keys, "calls", "p50_ms", "p95_ms"]
    if keyed.empty:
        return pd.DataFrame(columns=columns)
    g = keyed.assign(ms=ms).groupby(keys, sort=True, dropna=False)["ms"]
    frame = g.size().rename("calls").to_frame().join(grouped_percentiles(g, _QUANTILES, _PCT_COLUMNS))
    return _typed(frame.reset_index(), columns)


def _typed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame["calls"] = pd.to_numeric(frame["calls"]).astype("int64")
    for col in ("p50_ms", "p95_ms"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame[columns]


def step_percentiles(engine: Engine, windows: Sequence[tuple[datetime, datetime]]) -> pd.DataFrame:
    """Per (route, span_name, span_kind): calls, p50_ms, p95_ms of the steps of the windows' requests."""
    return _percentiles(engine, _step_rows_sql(db.is_postgres(engine)), ["route", "span_name", "span_kind"], windows)


def route_percentiles(engine: Engine, windows: Sequence[tuple[datetime, datetime]]) -> pd.DataFrame:
    """Per route: requests (calls), p50_ms, p95_ms of the request latency over the windows."""
    return _percentiles(engine, _request_rows_sql(db.is_postgres(engine)), ["route"], windows)


def empty_like(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


__all__ = ["duration_ms", "member", "requests", "route_percentiles", "spans", "step_percentiles", "texts",
           "trace_aggregates", "window_calls", "wrapping_steps", "agent_texts", "light_spans",
           "window_statistics", "trace_calls", "call_groups"]
