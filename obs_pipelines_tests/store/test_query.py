"""Reading query results into frames: the COPY path of PostgreSQL returns the same values as the DBAPI path,
texts that look like CSV syntax or like NULL included. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from obs_pipelines.store.query import fetch_frame, fetch_text_frame

AWKWARD = ["", "plain", 'say "hi", then\nleave', "\\N", "NULL", "a,b;c\td", "ünïcødé ✓", "  padded  "]


def _values_sql() -> sa.TextClause:
    rows = " UNION ALL ".join(f"SELECT {i} AS n, :v{i} AS v, :t AS t" for i in range(len(AWKWARD) + 1))
    return sa.text(f"SELECT n, v, t FROM ({rows}) x WHERE n IN :ns ORDER BY n").bindparams(
        sa.bindparam("t", type_=sa.DateTime), sa.bindparam("ns", expanding=True))


def _params() -> dict:
    values = {f"v{i}": v for i, v in enumerate(AWKWARD)}
    return {**values, f"v{len(AWKWARD)}": None, "t": datetime(2026, 11, 2, 14, 0, 0, 123456),
            "ns": list(range(len(AWKWARD) + 1))}


def test_text_frames_keep_every_text_exactly_and_null_apart_from_empty(store):
    frame = fetch_text_frame(store.engine, _values_sql(), _params())
    assert frame["v"].iloc[:-1].tolist() == AWKWARD
    assert pd.isna(frame["v"].iloc[-1])  # NULL, while "" / "NULL" / "\N" are texts


def test_text_frames_carry_numbers_and_times_as_text_the_caller_converts(store):
    frame = fetch_text_frame(store.engine, _values_sql(), _params())
    dbapi = fetch_frame(store.engine, _values_sql(), _params())
    assert pd.to_numeric(frame["n"]).tolist() == pd.to_numeric(dbapi["n"]).tolist()
    assert (pd.to_datetime(frame["t"]) == pd.Timestamp("2026-11-02 14:00:00.123456")).all()
