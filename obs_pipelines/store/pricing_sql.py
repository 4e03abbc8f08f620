"""Call costs in SQL: the price table's rate rows as a relation, the join that finds a call's rate row and the
cost expression. Every phase that prices calls in the database uses these (monitoring's usage rollup,
observability's traces and cost attribution), so they price a call exactly as ``PriceTable.compute_costs``
does in pandas: the app's ``cost_usd`` when present, else tokens x the rate row of the call's (provider, model),
time and input-token tier."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.pricing import PriceTable
from obs_pipelines.store import db
from obs_pipelines.store.query import fetch_frame
from obs_pipelines.store.schema import MODEL_CALL_KINDS_SQL

# the distinct (provider, model) of a window's calls that need a price (binds :start / :end)
PAIRS_SQL = f"""
SELECT DISTINCT provider, model FROM spans
WHERE start_time >= :start AND start_time < :end AND kind IN {MODEL_CALL_KINDS_SQL} AND cost_usd IS NULL
  AND model IS NOT NULL
"""
# the rate rows' columns and their SQL types (PostgreSQL spelling; SQLite reads JSON values as they are)
RATE_COLUMNS = {"provider_key": "text", "model": "text", "t0": "timestamp", "t1": "timestamp", "in_lo": "bigint",
                "in_hi": "bigint", "rate_input": "double precision", "rate_cached": "double precision",
                "rate_output": "double precision", "rate_request": "double precision"}
# a call ``s`` (a span) LEFT JOIN its rate row ``p``: at most one row matches
RATE_JOIN = """s.cost_usd IS NULL AND p.model = s.model AND p.provider_key = COALESCE(s.provider, '')
               AND s.start_time >= p.t0 AND s.start_time < p.t1
               AND COALESCE(s.input_tokens, 0) > p.in_lo AND COALESCE(s.input_tokens, 0) <= p.in_hi"""
_CACHED = ("CASE WHEN COALESCE(s.cached_input_tokens, 0) > COALESCE(s.input_tokens, 0) "
           "THEN COALESCE(s.input_tokens, 0) ELSE COALESCE(s.cached_input_tokens, 0) END")
# the computed cost of a call with a rate row (NULL without one)
COMPUTED_COST = f"""CASE WHEN p.model IS NOT NULL THEN
                (COALESCE(s.input_tokens, 0) - {_CACHED}) * p.rate_input + {_CACHED} * p.rate_cached
                + COALESCE(s.output_tokens, 0) * p.rate_output + p.rate_request
           END"""


def json_relation(frame: pd.DataFrame, columns: Mapping[str, str], param: str,
                  postgres: bool) -> tuple[str, dict[str, str]]:
    """``frame`` as a relation in SQL, whatever its size: the rows travel as ONE bound parameter holding a
    JSON array, unpacked by ``json_to_recordset`` (PostgreSQL) / ``json_each`` (SQLite). An inline
    relation (UNION ALL of one-row SELECTs, VALUES with a parameter per cell) breaks on large inputs:
    SQLite allows 500 terms in a compound SELECT and 32,766 parameters.

    ``columns`` maps column -> PostgreSQL type. Timestamps are sent as naive UTC text in the spans'
    storage format (``YYYY-MM-DD HH:MM:SS.ffffff``), so on SQLite they compare with ``start_time`` as text.
    Returns the SELECT and its parameters."""
    data = frame[list(columns)].astype("object")
    for col, sql_type in columns.items():
        if sql_type == "timestamp":
            data[col] = [None if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S.%f") for v in data[col]]
    data = data.where(data.notna(), None)
    # stdlib json: floats keep their exact repr; .item() turns numpy scalars into Python ones
    payload = json.dumps([dict(zip(columns, row, strict=True)) for row in data.itertuples(index=False, name=None)],
                         default=lambda v: v.item())
    if postgres:
        defs = ", ".join(f"{c} {t}" for c, t in columns.items())
        sql = f"SELECT * FROM json_to_recordset(CAST(:{param} AS json)) AS {param}_rows({defs})"
    else:
        cols = ", ".join(f"json_extract(value, '$.{c}') AS {c}" for c in columns)
        sql = f"SELECT {cols} FROM json_each(:{param})"
    return sql, {param: payload}


def rates_relation(engine: Engine, prices: PriceTable,
                   windows: Sequence[tuple[datetime, datetime]]) -> tuple[str, dict[str, str]]:
    """The rate rows of the calls of ``windows`` as a relation (``json_relation``, parameter ``rates``)."""
    pairs: set = set()
    for start, end in windows:
        found = fetch_frame(engine, PAIRS_SQL, {"start": db.to_naive_utc(start), "end": db.to_naive_utc(end)})
        pairs |= set(found.itertuples(index=False, name=None))
    first = db.to_naive_utc(min(s for s, _ in windows))
    last = db.to_naive_utc(max(e for _, e in windows))
    rates = prices.rate_rows(sorted(pairs, key=str), first, last)
    return json_relation(rates, RATE_COLUMNS, "rates", db.is_postgres(engine))
