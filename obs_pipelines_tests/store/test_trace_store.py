"""The trace store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.store import db
from obs_pipelines.store.schema import span_arrivals, spans

T0 = datetime(2026, 11, 1, 10, 0)


def make_span(i: int, start: datetime = T0, trace: str = "a" * 32, **extra) -> dict:
    row = {
        "trace_id": trace,
        "span_id": f"{i:016x}",
        "parent_span_id": None,
        "name": f"step-{i}",
        "kind": "llm",
        "start_time": start,
        "end_time": start + timedelta(milliseconds=250),
        "status": "ok",
        "input_tokens": 10,
        "output_tokens": 5,
        "attributes": {"k": i},
    }
    row.update(extra)
    return row


def count_spans(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(spans)).scalar_one()


def test_create_tables_is_idempotent(store):
    store.create_tables()
    store.create_tables()
    assert "spans" in sa.inspect(store.engine).get_table_names()


def test_spans_table_has_exactly_the_contract_columns(store):
    contract = {
        "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time",
        "status", "error_type", "error_message", "service_name", "route", "model", "provider",
        "prompt_name", "prompt_version", "input_tokens", "output_tokens", "cached_input_tokens",
        "cost_usd", "user_id", "session_id", "input", "output", "attributes",
    }
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("spans")}
    assert contract <= columns


def test_insert_spans_ignores_spans_already_stored(store):
    rows = [make_span(i) for i in range(10)]
    assert store.insert_spans(rows) == 10
    assert store.insert_spans(rows + [make_span(99)]) == 1
    assert count_spans(store) == 11


def test_insert_spans_keeps_duplicates_within_one_batch_once(store):
    assert store.insert_spans([make_span(1), make_span(1)]) == 1
    assert count_spans(store) == 1


def test_strings_with_quotes_commas_newlines_and_unicode_round_trip(store):
    nasty = "it's \"quoted\", with\nnewline\t tab \\N and ünïcödé 🚀 '); DROP TABLE spans;--"
    store.insert_spans([make_span(1, input=nasty, attributes={"nasty": nasty})])
    frame = store.read_window(spans, T0, T0 + timedelta(hours=1), ["input", "attributes"])
    assert frame.loc[0, "input"] == nasty
    assert frame.loc[0, "attributes"] == {"nasty": nasty}


def test_read_window_is_half_open_and_returns_only_asked_columns(store):
    store.insert_spans(
        [make_span(i, start=T0 + timedelta(minutes=30 * i)) for i in range(4)]
    )  # 10:00, 10:30, 11:00, 11:30
    frame = store.read_window(spans, T0, T0 + timedelta(hours=1), ["span_id", "start_time"])
    assert list(frame.columns) == ["span_id", "start_time"]
    assert sorted(frame["span_id"]) == [f"{0:016x}", f"{1:016x}"]


def test_timestamps_round_trip_with_microseconds(store):
    start = datetime(2026, 11, 1, 10, 0, 0, 123456)
    store.insert_spans([make_span(1, start=start)])
    frame = store.read_window(spans, T0, T0 + timedelta(hours=1), ["start_time", "end_time"])
    assert frame.loc[0, "start_time"] == pd.Timestamp(start)
    assert frame.loc[0, "end_time"] == pd.Timestamp(start + timedelta(milliseconds=250))


def test_arrivals_record_hours_that_received_new_spans_only(store):
    store.insert_spans([make_span(1), make_span(2, start=T0 + timedelta(hours=1))])
    store.insert_spans([make_span(1)])  # nothing new: no arrival
    arrivals = db.pending_arrivals(store.engine, after_id=0)
    assert sorted(h for _, h, _at in arrivals) == [T0, T0 + timedelta(hours=1)]


def _rollup_table() -> sa.Table:
    meta = sa.MetaData()
    return sa.Table(
        "test_rollup",
        meta,
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
    )


def test_replace_window_replaces_only_its_window(store):
    table = _rollup_table()
    other = pd.DataFrame({"window_start": [T0 + timedelta(hours=1)], "dimension": ["x"], "value": [9.0]})
    first = pd.DataFrame({"window_start": [T0, T0], "dimension": ["a", "b"], "value": [1.0, 2.0]})
    store.replace_window(table, T0 + timedelta(hours=1), T0 + timedelta(hours=2), other)
    store.replace_window(table, T0, T0 + timedelta(hours=1), first)
    store.replace_window(table, T0, T0 + timedelta(hours=1), first.assign(value=[3.0, 4.0]))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(table).order_by(table.c.window_start, table.c.dimension)).all()
    assert [(r.dimension, r.value) for r in rows] == [("a", 3.0), ("b", 4.0), ("x", 9.0)]


def test_replace_window_that_fails_keeps_the_previous_rows(store):
    table = _rollup_table()
    good = pd.DataFrame({"window_start": [T0], "dimension": ["a"], "value": [1.0]})
    store.replace_window(table, T0, T0 + timedelta(hours=1), good)
    bad = pd.DataFrame({"window_start": [T0], "dimension": [None], "value": [2.0]})  # NOT NULL
    with pytest.raises(sa.exc.IntegrityError):
        store.replace_window(table, T0, T0 + timedelta(hours=1), bad)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(table.c.value)).scalars().all() == [1.0]


def test_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
