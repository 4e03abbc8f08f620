"""Engine creation and the store operations every phase uses, identical on SQLite and PostgreSQL.

Plain functions over an `Engine` (no Dagster import), so the CLI, tests and benchmarks use the very
same code as the assets.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.store.schema import SPAN_COLUMNS, metadata, span_arrivals, spans  # noqa: F401

DEFAULT_DB_PATH = Path(".obs_pipelines") / "traces.db"
SQLITE_BUSY_TIMEOUT_S = 30


def default_db_url() -> str:
    return f"sqlite:///{DEFAULT_DB_PATH}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets Dagster runs read while another run writes; the busy timeout makes writers wait
    # for each other instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
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
    """Create every table and index that does not exist yet (safe to call on every run)."""
    meta.create_all(engine, checkfirst=True)


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
    """Rows of `table` with start <= time_column < end, only `columns` if given."""
    cols = [table.c[name] for name in columns] if columns else list(table.c)
    tcol = table.c[time_column]
    query = sa.select(*cols).where(tcol >= to_naive_utc(start), tcol < to_naive_utc(end))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=[c.name for c in cols])
    return frame


def replace_window(
    engine: Engine,
    table: sa.Table,
    start: datetime,
    end: datetime,
    frame: pd.DataFrame,
    time_column: str = "window_start",
) -> int:
    """Atomically replace the rows of `table` in [start, end) by `frame`: re-running a partition
    never duplicates and never leaves a gap (readers see the old or the new window, nothing between)."""
    create_tables(engine, table.metadata)
    records = _frame_records(frame, table)
    tcol = table.c[time_column]
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(tcol >= to_naive_utc(start), tcol < to_naive_utc(end)))
        if records:
            conn.execute(sa.insert(table), records)
    return len(records)


def _frame_records(frame: pd.DataFrame, table: sa.Table) -> list[dict]:
    if frame.empty:
        return []
    known = [c for c in frame.columns if c in table.c]
    sub = frame[known].astype(object).where(frame[known].notna(), None)
    records = sub.to_dict("records")
    for rec in records:
        for key, value in rec.items():
            if isinstance(value, pd.Timestamp):
                rec[key] = to_naive_utc(value.to_pydatetime())
            elif hasattr(value, "item"):  # numpy scalar -> python scalar for every DBAPI driver
                rec[key] = value.item()
    return records


# ---- span writes -------------------------------------------------------------------------------

_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"  # the format SQLAlchemy's SQLite DateTime type reads back


def insert_spans(engine: Engine, rows: Sequence[dict]) -> int:
    """Insert span rows, ignoring (trace_id, span_id) already stored. Returns the number stored.

    Records which hours received new spans in `span_arrivals` (same transaction) so the late-data
    sensor can re-materialize exactly those partitions.
    """
    if not rows:
        return 0
    now = utcnow()
    if is_postgres(engine):
        stored, hours = _insert_spans_postgres(engine, rows, now)
    else:
        stored, hours = _insert_spans_sqlite(engine, rows, now)
    return stored


def _hour(ts: datetime | None) -> datetime | None:
    return ts.replace(minute=0, second=0, microsecond=0) if ts is not None else None


def _insert_spans_sqlite(engine: Engine, rows: Sequence[dict], now: datetime) -> tuple[int, dict]:
    cols = [c for c in SPAN_COLUMNS if c != "ingested_at"]
    placeholders = ",".join("?" * (len(cols) + 1))
    sql = (
        f"INSERT INTO spans ({','.join(cols)},ingested_at) VALUES ({placeholders}) "
        "ON CONFLICT (trace_id, span_id) DO NOTHING"
    )
    now_s = now.strftime(_SQLITE_TS)
    ts_cols = {"start_time", "end_time"}

    def values(row: dict) -> tuple:
        out = []
        for c in cols:
            v = row.get(c)
            if v is None:
                out.append(None)
            elif c in ts_cols:
                out.append(v.strftime(_SQLITE_TS))
            elif c == "attributes":
                out.append(json.dumps(v, ensure_ascii=False, default=str))
            else:
                out.append(v)
        out.append(now_s)
        return tuple(out)

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # Which keys are new decides which hours count as arrivals; one indexed lookup per batch.
        new_hours = _new_span_hours_sqlite(cur, rows)
        cur.executemany(sql, [values(r) for r in rows])
        stored = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else 0
        if stored and new_hours:
            cur.executemany(
                "INSERT INTO span_arrivals (partition_hour, span_count, arrived_at) VALUES (?,?,?)",
                [(h.strftime(_SQLITE_TS), n, now_s) for h, n in sorted(new_hours.items())],
            )
        raw.commit()
    except Exception:
        raw.rollback()
        raise
    finally:
        raw.close()
    return stored, new_hours


def _new_span_hours_sqlite(cur, rows: Sequence[dict]) -> dict[datetime, int]:
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS _batch_keys (trace_id TEXT, span_id TEXT)")
    cur.execute("DELETE FROM _batch_keys")
    cur.executemany(
        "INSERT INTO _batch_keys VALUES (?,?)", [(r["trace_id"], r["span_id"]) for r in rows]
    )
    cur.execute(
        "SELECT b.trace_id, b.span_id FROM _batch_keys b JOIN spans s "
        "ON s.trace_id = b.trace_id AND s.span_id = b.span_id"
    )
    existing = set(cur.fetchall())
    hours: dict[datetime, int] = {}
    seen: set[tuple[str, str]] = set()
    for r in rows:
        key = (r["trace_id"], r["span_id"])
        if key in existing or key in seen:
            continue
        seen.add(key)
        h = _hour(r.get("start_time"))
        if h is not None:
            hours[h] = hours.get(h, 0) + 1
    return hours



def _insert_spans_postgres(engine: Engine, rows: Sequence[dict], now: datetime) -> tuple[int, dict]:
    cols = [c for c in SPAN_COLUMNS if c != "ingested_at"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for r in rows:
        out = []
        for c in cols:
            v = r.get(c)
            if v is None:
                out.append("\\N")
            elif c == "attributes":
                out.append(json.dumps(v, ensure_ascii=False, default=str))
            elif isinstance(v, datetime):
                out.append(v.isoformat())
            else:
                out.append(v)
        writer.writerow(out)
    buf.seek(0)
    col_list = ",".join(cols)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _spans_load (LIKE spans INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        cur.copy_expert(
            f"COPY _spans_load ({col_list}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf
        )
        cur.execute(
            f"""
            WITH ins AS (
                INSERT INTO spans ({col_list}, ingested_at)
                SELECT DISTINCT ON (trace_id, span_id) {col_list}, %s FROM _spans_load
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
    return int(stored), {}


def insert_rows(engine: Engine, table: sa.Table, records: Iterable[dict]) -> int:
    records = list(records)
    if records:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), records)
    return len(records)


def pending_arrivals(engine: Engine, after_id: int) -> list[tuple[int, datetime]]:
    """(id, partition_hour) of arrivals recorded after `after_id`, oldest first."""
    q = (
        sa.select(span_arrivals.c.id, span_arrivals.c.partition_hour)
        .where(span_arrivals.c.id > after_id)
        .order_by(span_arrivals.c.id)
    )
    with engine.connect() as conn:
        return [(int(i), h) for i, h in conn.execute(q).all()]


__all__ = [
    "create_tables",
    "default_db_url",
    "insert_rows",
    "insert_spans",
    "is_postgres",
    "make_engine",
    "pending_arrivals",
    "read_window",
    "replace_window",
    "spans",
    "utcnow",
]
