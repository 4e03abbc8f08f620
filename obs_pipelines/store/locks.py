"""Transactions that hold a lock, alike on SQLite and PostgreSQL.

SQLite has one writer at a time: a transaction that takes the write lock first (BEGIN IMMEDIATE /
EXCLUSIVE, waiting on the busy timeout) is serialised with every other writer, so no finer lock is needed.
PostgreSQL writers run side by side: transaction-scoped advisory locks serialise the ones that touch the
same thing (released by commit or rollback, so a killed run never leaves one behind). Keys include the
current schema, so stores side by side in one database (search_path) never wait on each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

_SCHEMA_LOCK_KEY = 0x6F627331  # "obs1": the advisory lock class of schema upgrades
_SCHEMA = "coalesce(current_schema(), '')"
_LOCK_SCHEMA = sa.text(f"SELECT pg_advisory_xact_lock(:key, hashtext({_SCHEMA}))")
_LOCK_WINDOW = sa.text(f"SELECT pg_advisory_xact_lock(hashtext({_SCHEMA} || '.' || :table), hashtext(:window))")


@contextmanager
def begin(engine: Engine, sqlite_mode: str = "IMMEDIATE") -> Iterator[Connection]:
    """A connection in a transaction (committed on exit, rolled back on error); on SQLite it holds the write
    lock from its first statement, so what it reads stays true and its writes land as one."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"BEGIN {sqlite_mode}")
        yield conn


def lock_schema(conn: Connection) -> None:
    """Serialise schema upgrades of this store (PostgreSQL; on SQLite `begin` already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_SCHEMA, {"key": _SCHEMA_LOCK_KEY})


def lock_window(conn: Connection, table: str, start: datetime, end: datetime) -> None:
    """Serialise replacements of one table's window (PostgreSQL; on SQLite `begin` already does). Taken
    before the delete: under READ COMMITTED the delete then sees the rows the previous holder committed."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK_WINDOW, {"table": table, "window": f"{start.isoformat()}/{end.isoformat()}"})
