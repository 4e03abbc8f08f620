"""The bulk write of a derived table's window: a DataFrame into the table, column by column, with no per-row
Python dicts (issue 23: executemany of list-of-dicts was 66 % of online evals' wall time).

* PostgreSQL: ``COPY table (columns) FROM STDIN`` in text format, on the caller's connection, so it runs inside
  the transaction (and under the window lock) that deleted the window's old rows. Each column is rendered to
  COPY's text form in one vectorised pass: ``\\N`` for NULL, backslash, tab, newline and carriage return escaped;
  NUL characters, which PostgreSQL text cannot hold, are dropped (an app string with a NUL no longer refuses
  the hour; SQLite drops them too, so both stores hold the same text).
* SQLite: the DBAPI cursor's ``executemany`` over plain tuples (sqlite3 binds them in C), values already in
  the form SQLAlchemy's types would store (DateTime as ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0 / 1).

Either way a column's values are converted to the table's type the way SQLAlchemy would: integer columns
take whole numbers (a float column of counts with NaN is fine), text columns take ``str()`` of other values,
datetimes are UTC without a zone.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

_COPY_NULL = "\\N"
# COPY text format: these characters must be written as escapes (the backslash first)
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _kind(column: sa.Column) -> str:
    t = column.type
    if isinstance(t, sa.DateTime):
        return "datetime"
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Float | sa.Numeric):
        return "float"
    return "text"


def _arrow(values: pd.Series, kind: str) -> pa.Array:
    """The column as an Arrow array of its storage type (timestamps as the text both stores read back: UTC,
    no zone, microseconds; booleans as 0 / 1), nulls where pandas has NaN / None / NaT."""
    if kind == "datetime":
        parsed = pd.to_datetime(values, utc=True, format="mixed").dt.tz_convert(None).astype("datetime64[us]")
        return pc.cast(pa.array(parsed, from_pandas=True), pa.string())
    if kind == "bool":
        return pc.cast(pa.array(values.astype("boolean"), from_pandas=True), pa.int8())
    if kind == "int":
        numbers = pd.to_numeric(values, errors="raise").astype("float64").round()
        return pa.array(numbers.astype("Int64"), from_pandas=True)
    if kind == "float":
        return pa.array(pd.to_numeric(values, errors="raise").astype("float64"), from_pandas=True)
    text = pa.array(values.astype("string"), from_pandas=True)
    # NUL cannot be stored in PostgreSQL text: dropped on both stores, so both hold the same text
    return pc.replace_substring(text, "\x00", "")


def _copy_text(values: pd.Series, kind: str) -> pa.Array:
    """The column in COPY text form, NULL as \\N."""
    array = _arrow(values, kind)
    if kind == "text":
        for char, escaped in _COPY_ESCAPES:
            array = pc.replace_substring(array, char, escaped)
    # one string type for the join (pandas' text may arrive as large_string)
    return pc.fill_null(pc.cast(array, pa.large_string()), _COPY_NULL)


class PreparedRows:
    """A frame's rows converted for one table and dialect, ready to write: made before the write transaction,
    so the window's lock is held for the delete and the insert only."""

    def __init__(self, table: sa.Table, columns: list[str], payload, count: int) -> None:
        self.table, self.columns, self.payload, self.count = table, columns, payload, count

    def write(self, conn: sa.Connection) -> int:
        if not self.count:
            return 0
        preparer = conn.dialect.identifier_preparer
        target = preparer.format_table(self.table)
        names = ", ".join(preparer.quote(c) for c in self.columns)
        if conn.dialect.name == "postgresql":
            statement = f"COPY {target} ({names}) FROM STDIN"
        else:
            statement = f"INSERT INTO {target} ({names}) VALUES ({', '.join('?' for _ in self.columns)})"
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            if conn.dialect.name == "postgresql":
                cursor.copy_expert(statement, io.StringIO(self.payload))
            else:
                cursor.executemany(statement, self.payload)
        except conn.dialect.loaded_dbapi.Error as exc:
            # the DBAPI's error as SQLAlchemy raises it everywhere else (IntegrityError, OperationalError ...)
            raise sa.exc.DBAPIError.instance(statement, None, exc, conn.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()
        return self.count


def prepare(table: sa.Table, frame: pd.DataFrame, dialect: str) -> PreparedRows:
    """``frame``'s rows (its columns that ``table`` has) converted for ``dialect`` ('postgresql' or 'sqlite')."""
    columns = [c for c in frame.columns if c in table.c]
    if frame.empty or not columns:
        return PreparedRows(table, columns, None, 0)
    series = [(frame[c].reset_index(drop=True), _kind(table.c[c])) for c in columns]
    if dialect == "postgresql":
        parts = [_copy_text(values, kind) for values, kind in series]
        lines = pc.binary_join_element_wise(*parts, pa.scalar("\t", pa.large_string())) if len(parts) > 1 else parts[0]
        payload = "\n".join(lines.to_pylist()) + "\n"
    else:
        payload = list(zip(*(_arrow(values, kind).to_pylist() for values, kind in series), strict=True))
    return PreparedRows(table, columns, payload, len(frame))


def write_frame(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of ``frame`` on ``conn``, in its transaction."""
    return prepare(table, frame, conn.dialect.name).write(conn)


__all__ = ["PreparedRows", "prepare", "write_frame"]
