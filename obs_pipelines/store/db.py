"""Engine creation and the store operations every phase uses, identical on SQLite and PostgreSQL.

Plain functions over an `Engine` (no Dagster import), so the CLI, tests and benchmarks use the very
same code as the assets.
"""

from __future__ import annotations

import io
import json
import operator
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store import bulk, locks, migrate
from obs_pipelines.store.schema import SPAN_COLUMNS, metadata, span_arrivals, spans, window_writes  # noqa: F401

DEFAULT_DB_PATH = Path(".obs_pipelines") / "traces.db"
SQLITE_BUSY_TIMEOUT_S = 30
SQLITE_WRITE_CACHE_KIB = 131072  # the (trace_id, span_id) index of 2M spans fits


def default_db_url() -> str:
    return f"sqlite:///{DEFAULT_DB_PATH}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets Dagster runs read while another run writes; the busy timeout makes writers wait
    # for each other instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    # switching a new file to WAL needs a moment alone with it, and SQLite answers "database is locked"
    # at once (no busy wait) when many processes open a fresh store together: retry for a while
    for attempt in range(200):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 199:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@lru_cache(maxsize=16)
def make_engine(db_url: str) -> Engine:
    """One pooled engine per URL per process."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_tables(engine: Engine, meta: sa.MetaData = metadata) -> None:
    """Bring the store to the newest schema migration (every phase's tables), then create the tables of
    `meta` the migrations do not make (ad-hoc tables of tests and scripts). Safe to call on every run and
    from many processes at once: the upgrade runs once, under a lock; later calls cost a set lookup."""
    migrate.ensure_tables(engine, meta.sorted_tables)


def db_upgrade(db_url: str) -> str:
    """Upgrade the store at `db_url` to the newest migration (`obs-pipelines db upgrade`); its revision."""
    return migrate.upgrade(make_engine(db_url))


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def read_window(
    engine: Engine,
    table: sa.Table,
    start: datetime,
    end: datetime,
    columns: Sequence[str] | None = None,
    time_column: str = "start_time",
) -> pd.DataFrame:
    """Rows of `table` with start <= time_column < end, only `columns` if given, typed: the store's one window
    reader, ``store.query.read_window`` (which builds on this module, hence the import here)."""
    from obs_pipelines.store import query

    return query.read_window(engine, table, start, end, columns, time_column)


def replace_window(
    engine: Engine,
    table: sa.Table,
    start: datetime,
    end: datetime,
    frame: pd.DataFrame,
    time_column: str = "window_start",
) -> int:
    """Atomically replace the rows of `table` in [start, end) by `frame` (see `replace_windows`)."""
    return replace_windows(engine, start, end, {table: frame}, time_column)[table.name]


def replace_windows(
    engine: Engine,
    start: datetime,
    end: datetime,
    frames: Mapping[sa.Table, pd.DataFrame],
    time_column: str = "window_start",
) -> dict[str, int]:
    """Replace the rows in [start, end) of every table in `frames` by its frame, all in ONE transaction:
    re-running a partition never duplicates and never leaves a gap, and a crash leaves every table of the
    window old or every table new. Returns the rows written per table name.

    Concurrent replacements of one window are serialised (a lock per table and window, taken for every
    table first, in name order, so two runs never wait on each other crosswise); each derived table's
    unique key on its grain refuses what would still duplicate."""
    migrate.ensure_tables(engine, frames)
    start, end = to_naive_utc(start), to_naive_utc(end)
    # rows are converted before the transaction (COPY text / plain tuples, store/bulk.py): the locks are held for
    # the delete and the insert only
    writes = sorted((bulk.prepare(t, f, engine.dialect.name) for t, f in frames.items()),
                    key=lambda w: w.table.fullname)
    if not writes:
        return {}
    with locks.begin(engine) as conn:
        for write in writes:
            locks.lock_window(conn, write.table.fullname, start, end)
        for write in writes:
            conn.execute(sa.delete(write.table).where(*_window_clause(write.table, start, end, time_column)))
            write.write(conn)
        _stamp(conn, start, end, writes)
    return {w.table.name: w.count for w in writes}


def _stamp(conn: sa.Connection, start: datetime, end: datetime, writes: Sequence[bulk.PreparedRows]) -> None:
    """When each table's window was written (``window_writes``, in the write's transaction and under its locks):
    steps that read the table fingerprint their inputs by it (store/fingerprints.py). A table published under
    another name (``info["published_as"]``: eval_scores, a view over two tables) is stamped under that name."""
    rows: dict[str, int] = {}
    for write in writes:
        name = write.table.info.get("published_as", write.table.name)
        rows[name] = rows.get(name, 0) + write.count
    stamp_windows(conn, start, end, rows)


def stamp_windows(conn: sa.Connection, start: datetime, end: datetime, rows: Mapping[str, int]) -> None:
    """Stamp the window [start, end) of each table in ``rows`` (name -> rows now held) as written now; a
    writer other than replace_windows calls it in its own transaction."""
    conn.execute(sa.delete(window_writes).where(window_writes.c.table_name.in_(sorted(rows)),
                                                window_writes.c.window_start >= start, window_writes.c.window_start < end))
    now = utcnow()
    conn.execute(sa.insert(window_writes), [{"table_name": name, "window_start": start, "window_end": end,
                                             "row_count": count, "written_at": now} for name, count in rows.items()])


def _window_clause(table: sa.Table, start: datetime, end: datetime, time_column: str) -> list:
    """Which rows of `table` are the window's: time_column in [start, end), or for a table without a time column
    (``info["window_range"] = (column, to_range)``) its column in the range `to_range(start, end)` gives."""
    if "window_range" in table.info:
        column, to_range = table.info["window_range"]
        low, high = to_range(start, end)
        return [table.c[column] >= low, table.c[column] < high]
    return [table.c[time_column] >= start, table.c[time_column] < end]


# ---- span writes -------------------------------------------------------------------------------
#
# The hot path of ingest (see bench/bench_ingest.py): values are serialized by orjson (C), rows that
# repeat inside a batch are dropped in Python, and the database does the rest in one statement per
# batch. `prepare_spans` (picklable result, runs in ingest's worker processes) and
# `write_prepared_spans` (runs where the connection is) split the work; `insert_spans` does both.

_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # the format SQLAlchemy's SQLite DateTime type reads back
_INSERT_COLS: tuple[str, ...] = tuple(c for c in SPAN_COLUMNS if c != "ingested_at")
_SCALAR_COLS: tuple[str, ...] = tuple(c for c in _INSERT_COLS if c != "attributes")
_TS_COLS = frozenset({"start_time", "end_time"})
_get_scalars = operator.itemgetter(*_SCALAR_COLS)
_ORJSON_OPTS = orjson.OPT_NON_STR_KEYS


def _json_text(value) -> str:
    """JSON text of an attributes value (orjson; the stdlib for what orjson refuses, e.g. >64-bit ints)."""
    try:
        return orjson.dumps(value, default=str, option=_ORJSON_OPTS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, ensure_ascii=False, default=str)


def _sqlite_ts(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = to_naive_utc(v)
        return v.isoformat(" ", "microseconds")  # always 6 digits: string order == time order
    return str(v)


def insert_spans(engine: Engine, rows: Sequence[dict]) -> int:
    """Insert span rows, ignoring (trace_id, span_id) already stored. Returns the number stored.

    Records which hours received new spans in `span_arrivals` (same transaction) so the late-data
    sensor can re-materialize exactly those partitions.
    """
    if not rows:
        return 0
    return write_prepared_spans(engine, prepare_spans(engine.dialect.name, rows))


@dataclass
class PreparedSpans:
    """Span rows serialized for one dialect's bulk write (picklable: ingest builds it in worker
    processes, the writing process only sends it). sqlite: `data` is the parameter tuples, `keys`
    and `hours` go with them; postgresql: `data` is the COPY text of the load table."""

    dialect: str
    count: int
    data: object
    keys: list | None = None
    hours: list | None = None


def prepare_spans(dialect: str, rows: Sequence[dict]) -> PreparedSpans:
    rows = _unique(rows)
    if dialect == "postgresql":
        return PreparedSpans(dialect, len(rows), _pg_copy_data(rows))
    return PreparedSpans(
        dialect,
        len(rows),
        _sqlite_values(rows),
        keys=[(r["trace_id"], r["span_id"]) for r in rows],
        hours=[_hour(r.get("start_time")) for r in rows],
    )


def write_prepared_spans(engine: Engine, prepared: PreparedSpans) -> int:
    """Write what `prepare_spans` made for this engine's dialect. Returns the number stored."""
    if not prepared.count:
        return 0
    if prepared.dialect != engine.dialect.name:
        raise ValueError(f"spans prepared for {prepared.dialect}, engine is {engine.dialect.name}")
    now = utcnow()
    if prepared.dialect == "postgresql":
        return _insert_spans_postgres(engine, prepared.data, now)
    return _insert_spans_sqlite(engine, prepared, now)


def _unique(rows: Sequence[dict]) -> Sequence[dict]:
    """First occurrence of each (trace_id, span_id) in the batch (ON CONFLICT cannot see its own batch
    on PostgreSQL)."""
    seen: set = set()
    add = seen.add
    out = []
    append = out.append
    for r in rows:
        key = (r["trace_id"], r["span_id"])
        if key not in seen:
            add(key)
            append(r)
    return out if len(out) != len(rows) else rows


def _hour(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = to_naive_utc(ts)
    return ts.replace(minute=0, second=0, microsecond=0)


def _insert_spans_sqlite(engine: Engine, prepared: PreparedSpans, now: datetime) -> int:
    cols = _INSERT_COLS
    now_s = _sqlite_ts(now)
    # ingested_at is the same for the whole batch: a literal (our own timestamp text, no quotes in it)
    # instead of copying every parameter tuple to append it
    placeholders = ",".join("?" * len(cols))
    sql = (
        f"INSERT INTO spans ({','.join(cols)},ingested_at) VALUES ({placeholders},'{now_s}') "
        "ON CONFLICT (trace_id, span_id) DO NOTHING"
    )
    values, hours_of = prepared.data, prepared.hours
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # bulk writes touch random pages of the (trace_id, span_id) index (~64 MiB per million spans): a
        # 128 MiB page cache (default 2 MiB) keeps them in memory
        cur.execute(f"PRAGMA cache_size=-{SQLITE_WRITE_CACHE_KIB}")
        # checkpoint the WAL every 64 MiB instead of 4 MiB: far fewer fsyncs and page rewrites in bulk loads
        cur.execute("PRAGMA wal_autocheckpoint=16384")
        cur.execute("BEGIN IMMEDIATE")  # take the write lock first: the existence check stays true
        existing = _existing_keys_sqlite(cur, prepared.keys)
        if existing:
            keep = [i for i, k in enumerate(prepared.keys) if k not in existing]
            values = [values[i] for i in keep]
            hours_of = [hours_of[i] for i in keep]
        hours: dict[datetime, int] = {}
        for h in hours_of:
            if h is not None:
                hours[h] = hours.get(h, 0) + 1
        stored = 0
        if values:
            cur.executemany(sql, values)
            stored = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else 0
        if stored and hours:
            cur.executemany(
                "INSERT INTO span_arrivals (partition_hour, span_count, arrived_at) VALUES (?,?,?)",
                [(_sqlite_ts(h), n, now_s) for h, n in sorted(hours.items())],
            )
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    return stored


def _sqlite_values(rows: Sequence[dict]) -> list[tuple]:
    ts_idx = [i for i, c in enumerate(_SCALAR_COLS) if c in _TS_COLS]
    out = []
    append = out.append
    for r in rows:
        try:
            vals = list(_get_scalars(r))
            attrs = r["attributes"]
        except KeyError:
            vals = [r.get(c) for c in _SCALAR_COLS]
            attrs = r.get("attributes")
        for i in ts_idx:
            v = vals[i]
            if v is not None:
                vals[i] = (
                    v.isoformat(" ", "microseconds")
                    if type(v) is datetime and v.tzinfo is None
                    else _sqlite_ts(v)
                )
        vals.append(None if attrs is None else _json_text(attrs))
        append(tuple(vals))
    return out


def _existing_keys_sqlite(cur, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Keys of the batch already stored: one indexed lookup per distinct trace id (few per batch)."""
    trace_ids = list({k[0] for k in keys})
    existing: set[tuple[str, str]] = set()
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i : i + 500]
        cur.execute(
            f"SELECT trace_id, span_id FROM spans WHERE trace_id IN ({','.join('?' * len(chunk))})", chunk
        )
        existing.update(cur.fetchall())
    return existing


def _pg_cast(col: str) -> str:
    if col in _TS_COLS:
        # naive values are UTC (the session is set to UTC below); aware values are converted
        return f"((r->>{_SCALAR_COLS.index(col)})::timestamptz AT TIME ZONE 'UTC')"
    sqltype = spans.c[col].type
    if isinstance(sqltype, sa.BigInteger):
        return f"(r->>{_SCALAR_COLS.index(col)})::bigint"
    if isinstance(sqltype, sa.Float):
        return f"(r->>{_SCALAR_COLS.index(col)})::float8"
    return f"(r->>{_SCALAR_COLS.index(col)})"


_PG_SELECT = ", ".join(_pg_cast(c) for c in _SCALAR_COLS)


def _pg_copy_data(rows: Sequence[dict]) -> bytes:
    """COPY text of (r jsonb, a json): r = the scalar columns as one JSON array, a = attributes (kept
    as json so key order is preserved). JSON has no raw tab / newline, so the only COPY escaping
    needed is doubling backslashes, done once for the whole batch."""
    dumps = orjson.dumps
    parts = []
    append = parts.append
    for r in rows:
        try:
            scalars = _get_scalars(r)
            attrs = r["attributes"]
        except KeyError:
            scalars = tuple(r.get(c) for c in _SCALAR_COLS)
            attrs = r.get("attributes")
        try:
            line = dumps(scalars)
        except (TypeError, orjson.JSONEncodeError):
            line = json.dumps(scalars, default=str).encode()
        append(line + b"\t" + (b"\\N" if attrs is None else _json_text(attrs).encode()))
    append(b"")
    data = b"\n".join(parts)
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\").replace(b"\t\\\\N\n", b"\t\\N\n")
    return data


def _insert_spans_postgres(engine: Engine, data: bytes, now: datetime) -> int:
    cols = ",".join(_SCALAR_COLS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _spans_json_load (r jsonb, a json) ON COMMIT DELETE ROWS"
        )
        cur.copy_expert("COPY _spans_json_load (r, a) FROM STDIN", io.BytesIO(data))
        cur.execute(
            f"""
            WITH ins AS (
                INSERT INTO spans ({cols}, attributes, ingested_at)
                SELECT {_PG_SELECT}, a, %s FROM _spans_json_load
                ON CONFLICT (trace_id, span_id) DO NOTHING
                RETURNING start_time
            ), per_hour AS (
                SELECT date_trunc('hour', start_time) AS h, count(*) AS n FROM ins
                WHERE start_time IS NOT NULL GROUP BY 1
            ), arrivals AS (
                INSERT INTO span_arrivals (partition_hour, span_count, arrived_at)
                SELECT h, n, %s FROM per_hour
            )
            SELECT coalesce(sum(n), 0), (SELECT count(*) FROM ins) FROM per_hour
            """,
            (now, now),
        )
        _, stored = cur.fetchone()
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    return int(stored)


def insert_rows(engine: Engine, table: sa.Table, records: Iterable[dict]) -> int:
    records = list(records)
    if records:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), records)
    return len(records)


def last_arrival_id(engine: Engine) -> int:
    """Id of the newest arrival visible now (0 when none): a rollup records it before reading spans, so
    an arrival with a larger id may hold spans that rollup did not see."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(span_arrivals.c.id), 0))).scalar_one())


def pending_arrivals(engine: Engine, after_id: int) -> list[tuple[int, datetime, datetime]]:
    """(id, partition_hour, arrived_at) of arrivals recorded after `after_id`, oldest first."""
    q = (
        sa.select(span_arrivals.c.id, span_arrivals.c.partition_hour, span_arrivals.c.arrived_at)
        .where(span_arrivals.c.id > after_id)
        .order_by(span_arrivals.c.id)
    )
    with engine.connect() as conn:
        return [(int(i), h, a) for i, h, a in conn.execute(q).all()]


__all__ = [
    "create_tables",
    "db_upgrade",
    "default_db_url",
    "insert_rows",
    "insert_spans",
    "is_postgres",
    "make_engine",
    "last_arrival_id",
    "pending_arrivals",
    "prepare_spans",
    "PreparedSpans",
    "read_window",
    "replace_window",
    "replace_windows",
    "spans",
    "utcnow",
    "write_prepared_spans",
]
