"""What the observability tables read from the store for one window: the window's requests (the shared
definition, store/traces.py), its spans (light columns), the texts of retrieval / tool / agent model spans, and
pooled step / request durations over several windows (the attribution baselines).

Percentiles over pooled windows are computed in SQL on PostgreSQL (``percentile_cont``) and with pandas
(linear interpolation: the same numbers) on SQLite. No Python loop over spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db, traces
from obs_pipelines.store.query import fetch_frame, window_params

WINDOW = traces.WINDOW
REQUEST_COLUMNS = ("trace_id", "user_id", "session_id", "service_name")
# an agent request's steps are read up to this long after its hour closes (its path belongs to its root's hour)
AGENT_LOOKAHEAD = timedelta(hours=1)

# the HTTP status a client span received, a hint for the error classifier (SQLite's json_extract raises on
# malformed JSON, which an app writing spans directly may store)
STATUS_CODE = {
    True: "COALESCE(attributes->>'http.response.status_code', attributes->>'http.status_code')",
    False: """CASE WHEN json_valid(attributes) THEN COALESCE(json_extract(attributes, '$."http.response.status_code"'),
                                                        json_extract(attributes, '$."http.status_code"')) END""",
}

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


def _times(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
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
    frame = fetch_frame(engine, traces.requests_sql(db.is_postgres(engine), extra=REQUEST_COLUMNS),
                        window_params(start, end))
    frame = _times(frame, "req_start", "req_end")
    frame["is_error"] = pd.to_numeric(frame["is_error"]).fillna(0).astype("int64")
    return frame


def spans(engine: Engine, start: datetime, end: datetime, kinds: tuple[str, ...] = ()) -> pd.DataFrame:
    """The window's spans (of ``kinds`` only, when given), without their texts and attributes (but the HTTP
    status of failed ones)."""
    sql = _SPANS_SQL.replace("{status_code}", STATUS_CODE[db.is_postgres(engine)])
    if kinds:  # kinds are constants of this package, never user input
        sql += " AND kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"
    frame = _times(fetch_frame(engine, sql, window_params(start, end)), "start_time", "end_time")
    frame["duration_ms"] = duration_ms(frame["start_time"], frame["end_time"])
    for col in ("input_tokens", "output_tokens", "cached_input_tokens", "cost_usd"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame


def agent_steps(engine: Engine, start: datetime, end: datetime, trace_ids: pd.Series,
                lookahead: timedelta = AGENT_LOOKAHEAD,
                window_spans: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tool and llm spans (and their texts) of the window's requests, including the spans that start up to
    ``lookahead`` after the window closes: a request's path is whole in the window of its root.
    ``window_spans``: the window's spans already read (``spans(engine, start, end)``): then only the
    lookahead is read from the store."""
    kinds = ("tool", "llm")
    if window_spans is None:
        frame = spans(engine, start, end + lookahead, kinds=kinds)
    else:
        frame = window_spans[window_spans["kind"].isin(kinds)]
        later = spans(engine, end, end + lookahead, kinds=kinds)
        if len(later):
            frame = pd.concat([frame, later], ignore_index=True)
    frame = frame[member(frame["trace_id"], trace_ids)].reset_index(drop=True)
    texts = fetch_frame(engine, _AGENT_TEXTS_SQL, window_params(start, end + lookahead))
    return frame, texts[member(texts["trace_id"], trace_ids)]


def texts(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Input (the query) and attributes (the documents) of the window's retrieval spans."""
    return fetch_frame(engine, _TEXTS_SQL, window_params(start, end))


# ---- durations pooled over several windows (an hour, or its baseline hours) -------------------------------

def _pooled(sql_of_window: str, windows: Sequence[tuple[datetime, datetime]]) -> tuple[sa.TextClause, dict]:
    """``sql_of_window`` (binds :start / :end) once per window, UNION ALL, each with its own binds."""
    parts, params, binds = [], {}, []
    for i, (start, end) in enumerate(windows):
        parts.append(sql_of_window.replace(":start", f":start_{i}").replace(":end", f":end_{i}"))
        params.update({f"start_{i}": db.to_naive_utc(start), f"end_{i}": db.to_naive_utc(end)})
        binds += [sa.bindparam(f"start_{i}", type_=sa.DateTime), sa.bindparam(f"end_{i}", type_=sa.DateTime)]
    return sa.text("\nUNION ALL\n".join(f"SELECT * FROM ({p}) w{i}" for i, p in enumerate(parts))).bindparams(
        *binds), params


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


_PG_MS = "date_part('epoch', t1 - t0) * 1000.0"


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
SELECT {group}, COUNT(*) AS calls,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY {_PG_MS}) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_PG_MS}) AS p95_ms
FROM ({rows.text}) x GROUP BY {group}""").bindparams(*rows._bindparams.values())
        frame = fetch_frame(engine, sql, params)
    else:
        rows, params = _pooled(rows_sql, windows)
        raw = _times(fetch_frame(engine, rows, params), "t0", "t1")
        return _frame_percentiles(raw[keys], duration_ms(raw["t0"], raw["t1"]), keys)
    return _typed(frame, columns)


def _frame_percentiles(keyed: pd.DataFrame, ms: pd.Series, keys: list[str]) -> pd.DataFrame:
    """calls, p50_ms, p95_ms of ``ms`` per ``keys`` (columns of ``keyed``), in pandas (linear interpolation,
    as ``percentile_cont``)."""
    columns = [*keys, "calls", "p50_ms", "p95_ms"]
    if keyed.empty:
        return pd.DataFrame(columns=columns)
    g = keyed.assign(ms=ms).groupby(keys, sort=True, dropna=False)["ms"]
    frame = g.size().rename("calls").to_frame()
    frame["p50_ms"] = g.quantile(0.5)
    frame["p95_ms"] = g.quantile(0.95)
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


def window_step_percentiles(window_spans: pd.DataFrame, window_requests: pd.DataFrame) -> pd.DataFrame:
    """``step_percentiles`` of one window from its spans and requests already read (``spans`` / ``requests``),
    in pandas: the same rows and numbers as the SQLite path, without reading the window again."""
    keys = ["route", "span_name", "span_kind"]
    steps = window_spans[window_spans["parent_span_id"].notna().to_numpy()
                         & member(window_spans["trace_id"], window_requests["trace_id"])]
    route = steps["trace_id"].map(window_requests.set_index("trace_id")["route"])
    keyed = pd.DataFrame({"route": route, "span_name": steps["name"].fillna(traces.NULL_LABEL),
                          "span_kind": steps["kind"].fillna(traces.NULL_LABEL)})
    return _frame_percentiles(keyed, steps["duration_ms"], keys)


def window_route_percentiles(window_requests: pd.DataFrame) -> pd.DataFrame:
    """``route_percentiles`` of one window from its requests already read, in pandas."""
    return _frame_percentiles(window_requests[["route"]],
                              duration_ms(window_requests["req_start"], window_requests["req_end"]), ["route"])


def empty_like(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


__all__ = ["duration_ms", "member", "requests", "route_percentiles", "spans", "step_percentiles", "texts"]
