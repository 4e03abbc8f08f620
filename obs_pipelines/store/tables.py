"""The table-spec helper every phase uses: a published table declared once as column specs
(name, type, description) gives both the SQLAlchemy table (with column comments) and the column list the
UI's `TableSchema` shows (orchestration.metadata.table_schema)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

COLUMN_TYPES: dict[str, type[sa.types.TypeEngine]] = {
    "datetime": sa.DateTime,
    "text": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Float,
    "bool": sa.Boolean,
}
WINDOW_COLUMNS = ("window_start", "window_end")

ColumnSpec = tuple[str, str, str]  # name, type (a key of COLUMN_TYPES), description


class TableSpecs:
    """A phase's published tables, on its own MetaData; ``columns`` maps each table to its column specs."""

    def __init__(self, metadata: sa.MetaData) -> None:
        self.metadata = metadata
        self.columns: dict[str, list[dict[str, str]]] = {}

    def table(self, name: str, columns: Sequence[ColumnSpec], description: str | None, *extra: sa.SchemaItem,
              not_null: Sequence[str] = WINDOW_COLUMNS, window_index: bool = True,
              nullable: bool | None = True) -> sa.Table:
        """The table ``name`` from ``columns``: the columns in ``not_null`` are NOT NULL (``nullable=None``
        leaves every column at SQLAlchemy's default), plus an index on window_start when asked and ``extra``
        constraints and indexes."""
        self.columns[name] = [{"name": n, "type": t, "description": d} for n, t, d in columns]

        def column(n: str, t: str, d: str) -> sa.Column:
            if nullable is None:
                return sa.Column(n, COLUMN_TYPES[t], comment=d)
            return sa.Column(n, COLUMN_TYPES[t], nullable=n not in not_null, comment=d)

        index = (sa.Index(f"ix_{name}_window_start", "window_start"),) if window_index else ()
        return sa.Table(name, self.metadata, *(column(n, t, d) for n, t, d in columns), *index, *extra,
                        comment=description)
