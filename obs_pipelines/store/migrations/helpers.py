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


def _delete_duplicates(table: str, dimensions: Sequence[str], newest_first: str) -> None:
    """Rows that already break the grain (left by concurrent runs before a key existed) deleted, keeping per
    grain the row with the newest `newest_first`; the copies are results of the same computation."""
    grain = ", ".join(_grain_expressions(dimensions))
    row_id = "ctid" if op.get_bind().dialect.name == "postgresql" else "rowid"
    op.execute(
        f"DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM ("
        f"SELECT {row_id}, row_number() OVER (PARTITION BY {grain} ORDER BY {newest_first} DESC NULLS LAST) AS n "
        f"FROM {table}) AS ranked WHERE n > 1)"
    )


def add_grain_key(table: str, dimensions: Sequence[str], newest_first: str = "computed_at") -> None:
    """A unique key on a derived table's grain: window_start + its (text) dimension columns (duplicates
    deleted first, `_delete_duplicates`). Revisions from 0009 on use `add_hashed_grain_key`."""
    _delete_duplicates(table, dimensions, newest_first)
    op.create_index(grain_key_name(table), table, [sa.text(e) for e in _grain_expressions(dimensions)], unique=True)


def drop_grain_key(table: str) -> None:
    op.drop_index(grain_key_name(table), table_name=table)


def _hashed(expression: str) -> str:
    return f"md5(({expression})::text)"


def _unhashed(expression: str) -> str:
    """md5((x)::text), or PostgreSQL's rendering md5(x) -> x."""
    if not (expression.startswith("md5(") and expression.endswith(")")):
        return expression
    inner = expression[4:-1]
    if inner.startswith("(") and inner.endswith(")::text"):
        inner = inner[1:-len(")::text")]
    return inner


def hashed_grain_expressions(dimensions: Sequence[str], dialect: str) -> list[str]:
    """The grain key's expressions from revision 0009 on: on PostgreSQL each dimension is indexed by the md5 of
    its text, so a value of any length fits a btree entry (at most ~2.7 kB: a long span name, route or model
    name would refuse the whole window); SQLite keeps any length in an index as it is."""
    plain = _grain_expressions(dimensions)
    if dialect != "postgresql":
        return plain
    return [plain[0], *(_hashed(e) for e in plain[1:])]


def add_hashed_grain_key(table: str, dimensions: Sequence[str], newest_first: str = "computed_at") -> None:
    """`add_grain_key` with `hashed_grain_expressions`: what every revision from 0009 on uses."""
    _delete_duplicates(table, dimensions, newest_first)
    expressions = hashed_grain_expressions(dimensions, op.get_bind().dialect.name)
    op.create_index(grain_key_name(table), table, [sa.text(e) for e in expressions], unique=True)


def _rebuild_grain_keys(rewrite) -> None:
    """Every grain key of the store (PostgreSQL) rebuilt with each expression but window_start passed through
    `rewrite`, the keys read back from the database as the earlier revisions made them. A no-op on SQLite."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        for index in inspector.get_indexes(table):
            name = index["name"]
            if not (name.startswith(GRAIN_KEY_PREFIX) and name.endswith(GRAIN_KEY_SUFFIX)):
                continue
            expressions = index.get("expressions") or index["column_names"]
            rebuilt = [e if e == "window_start" else rewrite(e) for e in expressions]
            if rebuilt != expressions:
                op.drop_index(name, table_name=table)
                op.create_index(name, table, [sa.text(e) for e in rebuilt], unique=True)


def hash_existing_grain_keys() -> None:
    """Revision 0009: the dimensions of every grain key hashed (`hashed_grain_expressions`)."""
    _rebuild_grain_keys(lambda e: e if e.startswith("md5(") else _hashed(e))


def unhash_grain_keys() -> None:
    """The reverse of `hash_existing_grain_keys` (downgrade below 0009)."""
    _rebuild_grain_keys(_unhashed)
