"""Running analytic queries against the store: window binds, PostgreSQL session settings, rows straight into a
DataFrame, and THE COPY reader (``copy_query``: a PostgreSQL query streamed as CSV to a parser). Every phase
reads its windows through here."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, BinaryIO, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import db

# Per-transaction PostgreSQL settings for the analytic queries:
# - JIT compilation costs seconds on these one-shot aggregate queries (their estimated cost crosses
#   jit_optimize_above_cost) and saves nothing;
# - the default 4MB work_mem sends the sorts behind the percentiles to disk, and makes the planner pick
#   sorting over hashing for the usage pre-aggregate;
# - a window is a large, physically contiguous slice of spans (start_time correlates with the heap
#   order), for which the planner picks a plain index scan that visits the slice tuple by tuple; a bitmap
#   heap scan reads each page once, in order, so reading an hour costs the same in a store of 1 day or
#   of 30 days. (Primary-key lookups still use the index, through a bitmap.)
# - cheaper parallel workers: the llm-call branch of the request rollup then scans in parallel too.
PG_SESSION_SETTINGS = (
    "SET LOCAL jit = off",
    "SET LOCAL work_mem = '128MB'",
    "SET LOCAL enable_indexscan = off",
    "SET LOCAL parallel_setup_cost = 100",
    "SET LOCAL parallel_tuple_cost = 0.01",
)


def bind_window(sql: str) -> sa.TextClause:
    """A text query whose ``:start`` / ``:end`` are bound as DateTime (SQLite compares them as text in the
    format SQLAlchemy stores)."""
    clause = sa.text(sql)
    binds = [sa.bindparam(k, type_=sa.DateTime) for k in ("start", "end") if f":{k}" in sql]
    return clause.bindparams(*binds) if binds else clause


def window_params(start: datetime, end: datetime) -> dict[str, datetime]:
    return {"start": db.to_naive_utc(start), "end": db.to_naive_utc(end)}


def apply_session_settings(conn: sa.Connection) -> None:
    """The analytic settings above, for the current transaction (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":  # one round trip for all of them
        conn.exec_driver_sql("; ".join(PG_SESSION_SETTINGS))


def fetch_frame(engine: Engine, sql: str | sa.TextClause, params: Mapping) -> pd.DataFrame:
    """Run a text query (``:start`` / ``:end`` bound as DateTime) and return its rows as a DataFrame.

    Rows are taken from the DBAPI cursor as plain tuples (building SQLAlchemy Row objects and handing
    them to pandas costs several times more on large windows). No type processing: on SQLite, times come
    back as ISO strings."""
    stmt = bind_window(sql) if isinstance(sql, str) else sql
    with engine.connect() as conn:
        apply_session_settings(conn)
        result = conn.execute(stmt, dict(params))
        columns = list(result.keys())
        rows = result.cursor.fetchall() if result.cursor is not None else []
        return pd.DataFrame.from_records(rows, columns=columns)


def read_window(engine: Engine, table: sa.Table | str, start: datetime, end: datetime,
                columns: Sequence[str] | None = None, time_column: str = "start_time", *, where: str | None = None,
                params: Mapping | None = None, typed: bool = True) -> pd.DataFrame:
    """THE window reader: the rows of ``table`` whose ``time_column`` is in [start, end), only ``columns`` if
    given (in that order; every column otherwise), only those matching ``where`` (SQL, its binds in ``params``)
    if given.

    ``typed``: values as SQLAlchemy types them (times are datetimes on SQLite too, JSON is decoded). Otherwise
    (a table named by a string is always read so; ``columns`` may then be SQL expressions ``x AS y``) the values
    the driver returns, as ``fetch_frame`` gives them: on SQLite times are ISO text."""
    if typed and isinstance(table, sa.Table) and where is None:
        cols = [table.c[name] for name in columns] if columns else list(table.c)
        tcol = table.c[time_column]
        query = sa.select(*cols).where(tcol >= db.to_naive_utc(start), tcol < db.to_naive_utc(end))
        with engine.connect() as conn:
            return pd.DataFrame(conn.execute(query).all(), columns=[c.name for c in cols])
    if typed:
        raise ValueError("a typed window read takes a Table and no where clause")
    name = table.name if isinstance(table, sa.Table) else table
    sql = (f"SELECT {', '.join(columns) if columns else '*'} FROM {name} "
           f"WHERE {time_column} >= :start AND {time_column} < :end" + (f" AND ({where})" if where else ""))
    return fetch_frame(engine, sql, {**window_params(start, end), **(params or {})})


# what COPY writes for NULL: no value the apps send looks like it, and PostgreSQL quotes a text equal to it (a
# reader that tells quoted from unquoted values keeps it a text; pandas' reads it as NULL)
COPY_NULL = "<obs_pipelines:null>"
_COPY_BUFFER = 1 << 20

T = TypeVar("T")


def copy_query(engine: Engine, sql: str | sa.TextClause, params: Mapping, read: Callable[[BinaryIO], T]) -> T:
    """THE COPY reader (PostgreSQL only): run a text query (``:start`` / ``:end`` bound as DateTime, expanding
    IN lists rendered from ``params``) under the analytic session settings as ``COPY (query) TO STDOUT`` in CSV
    with a header, NULL written as ``COPY_NULL``, and return what ``read`` makes of the CSV stream. The stream is
    read while the server still produces it (a thread writes the COPY into a pipe), so parsing overlaps the
    query instead of following it."""
    stmt = bind_window(sql) if isinstance(sql, str) else sql
    with engine.connect() as conn:
        apply_session_settings(conn)
        # the values bound into the statement: an expanding IN list is rendered from them
        compiled = stmt.bindparams(**params).compile(dialect=conn.dialect,
                                                     compile_kwargs={"render_postcompile": True})
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            query = cursor.mogrify(compiled.string, compiled.construct_params()).decode()
            copy = f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true, NULL '{COPY_NULL}')"
            return _read_copy(cursor, copy, read)
        finally:
            cursor.close()


def _read_copy(cursor: Any, copy: str, read: Callable[[BinaryIO], T]) -> T:
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(write_fd, "wb", buffering=_COPY_BUFFER) as sink:
                cursor.copy_expert(copy, sink, size=_COPY_BUFFER)
        except BaseException as exc:  # re-raised below: a truncated stream must not pass for data
            failure.append(exc)

    producer = threading.Thread(target=produce, name="copy-read", daemon=True)
    producer.start()
    try:
        with open(read_fd, "rb", buffering=_COPY_BUFFER) as source:
            result = read(source)
    except Exception as exc:
        producer.join()
        if failure:  # the query failed: its error, not the parser's
            raise failure[0] from exc
        raise
    producer.join()
    if failure:
        raise failure[0]
    return result


def _text_frame(source: BinaryIO) -> pd.DataFrame:
    return pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[COPY_NULL], engine="c")


def fetch_text_frame(engine: Engine, sql: str | sa.TextClause, params: Mapping) -> pd.DataFrame:
    """``fetch_frame`` for wide reads (many rows of span columns), every column as text (NaN where NULL):
    the caller converts its numbers and times, as it does for SQLite's ISO strings.

    On PostgreSQL the rows are streamed by ``copy_query`` as CSV and parsed by pandas' C reader: about twice as
    fast as DBAPI tuples, whose per-value Python objects (datetimes above all) dominate a large read. On SQLite
    this is ``fetch_frame``."""
    stmt = bind_window(sql) if isinstance(sql, str) else sql
    if not db.is_postgres(engine):
        return fetch_frame(engine, stmt, params)
    return copy_query(engine, stmt, params, _text_frame)


_HAS_SPANS_SQL = "SELECT 1 FROM spans WHERE start_time >= :start AND start_time < :end LIMIT 1"


def window_has_spans(engine: Engine, start: datetime, end: datetime) -> bool:
    """Whether any span starts in [start, end): one probe of the start_time index (an empty hour is then
    answered without reading it)."""
    with engine.connect() as conn:
        return conn.execute(bind_window(_HAS_SPANS_SQL), window_params(start, end)).first() is not None


def run_concurrently(engine: Engine, tasks: Mapping[str, Callable[[], Any]], max_workers: int = 8) -> dict[str, Any]:
    """Run the reads of a window, keyed like ``tasks``. On PostgreSQL they run concurrently, each on its own
    connection: the work is in the server, and the queries of a window then share its cores instead of taking
    turns (this process mostly waits on them). On SQLite the work is pandas' (it holds the GIL): in turn."""
    if not db.is_postgres(engine) or len(tasks) < 2:
        return {k: fn() for k, fn in tasks.items()}
    with ThreadPoolExecutor(max_workers=min(len(tasks), max_workers), thread_name_prefix="window-read") as pool:
        futures = {k: pool.submit(fn) for k, fn in tasks.items()}
        return {k: f.result() for k, f in futures.items()}
