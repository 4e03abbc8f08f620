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


def test_the_copy_reader_hands_the_stream_to_any_parser_and_reports_the_query_s_error(store):
    """``copy_query`` (PostgreSQL) is the one COPY reader: pandas (``fetch_text_frame``) and Arrow (the quality
    gate) parse the same stream, a text equal to the NULL marker stays a text, and a failing query raises its
    own error rather than the parser's."""
    import psycopg2.errors
    import pyarrow.csv as pacsv
    import pytest

    from obs_pipelines.store.query import COPY_NULL, copy_query

    if store.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    sql = sa.text("SELECT :a AS a, CAST(NULL AS text) AS b")
    convert = pacsv.ConvertOptions(null_values=[COPY_NULL], strings_can_be_null=True,
                                   quoted_strings_can_be_null=False)
    table = copy_query(store.engine, sql, {"a": COPY_NULL}, lambda f: pacsv.read_csv(f, convert_options=convert))
    assert table.to_pylist() == [{"a": COPY_NULL, "b": None}]
    with pytest.raises(psycopg2.errors.UndefinedTable, match="no_such_table"):
        copy_query(store.engine, "SELECT * FROM no_such_table", {}, lambda f: f.read())


def test_the_window_reader_reads_half_open_windows_typed_or_as_the_driver_returns_them(store):
    """``read_window`` is the one window reader: typed (a Table) or raw (as ``fetch_frame``: a table by name,
    columns as SQL, a where clause with its binds)."""
    from obs_pipelines.store import db
    from obs_pipelines.store.query import read_window
    from obs_pipelines.store.schema import spans

    t0 = datetime(2026, 11, 1, 10, 0)
    rows = [{"trace_id": "a" * 32, "span_id": f"{i + 1:016x}", "parent_span_id": None, "name": f"s{i}", "kind": "llm",
             "start_time": t0 + pd.Timedelta(minutes=20 * i), "end_time": t0 + pd.Timedelta(minutes=20 * i + 1),
             "status": "ok"} for i in range(4)]  # 10:00, 10:20, 10:40, 11:00
    db.insert_spans(store.engine, rows)
    end = t0 + pd.Timedelta(hours=1)
    typed = read_window(store.engine, spans, t0, end, ["name", "start_time"])
    assert sorted(typed["name"]) == ["s0", "s1", "s2"]
    assert isinstance(typed["start_time"].iloc[0], (datetime, pd.Timestamp))
    raw = read_window(store.engine, "spans", t0, end, ["name", "start_time AS t"], where="name <> :skip",
                      params={"skip": "s1"}, typed=False)
    assert sorted(raw["name"]) == ["s0", "s2"] and list(raw.columns) == ["name", "t"]
    same = fetch_frame(store.engine, "SELECT name, start_time AS t FROM spans WHERE start_time >= :start "
                       "AND start_time < :end AND name <> 's1'", {"start": t0, "end": end})
    pd.testing.assert_frame_equal(raw.sort_values("name").reset_index(drop=True),
                                  same.sort_values("name").reset_index(drop=True))
