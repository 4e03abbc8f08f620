"""The bulk write of a derived table's window (store/bulk.py: COPY on PostgreSQL, DBAPI tuples on SQLite) stores
exactly what SQLAlchemy's own insert of the same rows stores, whatever the values, on both databases."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.store import db

_meta = sa.MetaData()
SAMPLE = sa.Table(
    "bulk_sample", _meta,
    sa.Column("window_start", sa.DateTime, nullable=False),
    sa.Column("window_end", sa.DateTime, nullable=False),
    sa.Column("name", sa.Text), sa.Column("count", sa.BigInteger), sa.Column("share", sa.Float),
    sa.Column("passed", sa.Boolean), sa.Column("seen_at", sa.DateTime),
)
REFERENCE = sa.Table("bulk_reference", _meta, *(c.copy() for c in SAMPLE.columns))

HOUR = datetime(2026, 3, 2, 8)

# each value is one a derived table meets; the comment says why it is here
TRICKY_NAMES = [
    "plain",
    "",                                   # empty text is not NULL
    None,                                 # NULL
    "tab\there",                          # COPY's column separator
    "line\nbreak\r\nand carriage",        # COPY's row separator
    "back\\slash \\N",                    # COPY's escape character and its NULL marker as text
    '"quoted", with comma',               # CSV-like punctuation
    "ünïcødé 日本語 🙂",                   # non-ASCII
    "x" * 5000,                           # long text
    "\\",                                 # a lone backslash
]


def sample_frame() -> pd.DataFrame:
    n = len(TRICKY_NAMES)
    return pd.DataFrame({
        "window_start": [HOUR] * n,
        "window_end": [HOUR + timedelta(hours=1)] * n,
        "name": TRICKY_NAMES,
        # counts arrive as floats when a column has a NaN (pandas): stored as whole numbers
        "count": [1.0, 2.0, np.nan, 4.0, 0.0, -3.0, 2**40, 7.0, 8.0, 9.0],
        # shortest round-trip floats, NaN as NULL, an integer in a float column
        "share": [0.1 + 0.2, 1 / 3, np.nan, 1e-300, 0.0, -2.5, 123456789.123456789, 1.0, 5, 0.9999999999999999],
        "passed": [True, False, None, np.True_, np.False_, True, False, True, None, False],
        # tz-aware, naive and missing times: stored as naive UTC
        "seen_at": [datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
                    datetime(2026, 3, 2, 7, 0), None, pd.Timestamp("2026-03-02 08:00:00.000001"),
                    pd.NaT, datetime(2026, 3, 2, 8, 59, 59, 999999), datetime(2026, 1, 1), datetime(2026, 3, 2),
                    datetime(2027, 12, 31, 23, 59), datetime(2026, 3, 2, 8, 0, 0, 500000)],
    })


def reference_records(frame: pd.DataFrame) -> list[dict]:
    """What SQLAlchemy's insert is given for the same rows (the project's previous write path)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for rec in records:
        for key, value in rec.items():
            if isinstance(value, pd.Timestamp | datetime):
                rec[key] = db.to_naive_utc(pd.Timestamp(value).to_pydatetime())
            elif hasattr(value, "item"):
                rec[key] = value.item()
            if key == "count" and rec[key] is not None:
                rec[key] = int(rec[key])
    return records


def stored(engine, table: sa.Table) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.name.nulls_first(), table.c.count)).all()
    return [tuple(r) for r in rows]


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


def test_the_bulk_write_stores_what_sqlalchemys_insert_stores(store):
    engine = store.engine
    _meta.create_all(engine)
    frame = sample_frame()
    assert db.replace_window(engine, SAMPLE, HOUR, HOUR + timedelta(hours=1), frame) == len(frame)
    with engine.begin() as conn:
        conn.execute(sa.insert(REFERENCE), reference_records(frame))
    ours, theirs = stored(engine, SAMPLE), stored(engine, REFERENCE)
    assert len(ours) == len(theirs) == len(frame)
    for mine, ref in zip(ours, theirs):
        assert all(same(a, b) for a, b in zip(mine, ref)), (mine, ref)


def test_text_keeps_every_character_but_nul(store):
    # PostgreSQL text cannot hold NUL: the bulk write drops it instead of refusing the whole window; SQLite
    # keeps the text as given otherwise
    engine = store.engine
    _meta.create_all(engine)
    frame = sample_frame().head(2).assign(name=["a\x00b", "tab\tand\\back"])
    db.replace_window(engine, SAMPLE, HOUR, HOUR + timedelta(hours=1), frame)
    names = sorted(r[2] for r in stored(engine, SAMPLE))
    assert names == ["ab", "tab\tand\\back"]


def test_a_rerun_replaces_the_window_with_no_duplicates(store):
    engine = store.engine
    _meta.create_all(engine)
    for _ in range(3):
        db.replace_window(engine, SAMPLE, HOUR, HOUR + timedelta(hours=1), sample_frame())
    assert len(stored(engine, SAMPLE)) == len(TRICKY_NAMES)


def test_an_empty_frame_empties_the_window(store):
    engine = store.engine
    _meta.create_all(engine)
    db.replace_window(engine, SAMPLE, HOUR, HOUR + timedelta(hours=1), sample_frame())
    assert db.replace_window(engine, SAMPLE, HOUR, HOUR + timedelta(hours=1), sample_frame().head(0)) == 0
    assert stored(engine, SAMPLE) == []
