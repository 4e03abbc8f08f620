"""Operations that revisions share. Frozen semantics: a revision that ran must do the same when it runs again
on another store, so change a helper only by adding a new one."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrate import GRAIN_KEY_PREFIX, GRAIN_KEY_SUFFIX


def grain_key_name(table: str) -> str:
    return f"{GRAIN_KEY_PREFIX}{table}{GRAIN_KEY_SUFFIX}"


def _grain_expressions(dimensions: Sequence[str]) -> list[str]:
    # a unique index takes NULLs for distinct values (SQLite, PostgreSQL < 15 NULLS NOT DISTINCT): the
    # dimensions are compared as coalesce(col, '') so the 'overall' row (null dimension_value) is unique too
    return ["window_start", *(f"coalesce({d}, '')" for d in dimensions)]


def add_grain_key(table: str, dimensions: Sequence[str], newest_first: str = "computed_at") -> None:
    """A unique key on a derived table's grain: window_start + its (text) dimension columns.

    Rows that already break it (left by concurrent runs before the key existed) are deleted first, keeping
    per grain the row with the newest `newest_first`; the copies are results of the same computation."""
    grain = ", ".join(_grain_expressions(dimensions))
    row_id = "ctid" if op.get_bind().dialect.name == "postgresql" else "rowid"
    op.execute(
        f"DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM ("
        f"SELECT {row_id}, row_number() OVER (PARTITION BY {grain} ORDER BY {newest_first} DESC NULLS LAST) AS n "
        f"FROM {table}) AS ranked WHERE n > 1)"
    )
    op.create_index(grain_key_name(table), table, [sa.text(e) for e in _grain_expressions(dimensions)], unique=True)


def drop_grain_key(table: str) -> None:
    op.drop_index(grain_key_name(table), table_name=table)
