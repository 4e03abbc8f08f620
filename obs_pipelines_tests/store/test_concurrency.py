"""Replacing a window is safe under concurrency and atomic across the tables of a window (issue 10, 1-2)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from obs_pipelines.monitoring.tables import monitoring_metadata, request_rollup_hourly, usage_rollup_hourly
from obs_pipelines.store import db

T0 = datetime(2026, 11, 1, 10, 0)
T1 = T0 + timedelta(hours=1)
WRITERS = 20


def rollup_frame(marker: int, values=(None, "search", "chat")) -> pd.DataFrame:
    """Rows of one window, `marker` in a measure column: tells which writer's copy survived."""
    return pd.DataFrame({
        "window_start": [T0] * len(values),
        "window_end": [T1] * len(values),
        "dimension": ["overall" if v is None else "route" for v in values],
        "dimension_value": list(values),
        "request_count": [marker] * len(values),
        "call_count": [marker] * len(values),
        "computed_at": [T0] * len(values),
    })


def rows(engine: sa.Engine, table: sa.Table) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(table.c.dimension, table.c.dimension_value, table.c[_marker(table)])
            .order_by(table.c.dimension, table.c.dimension_value)
        )]


def _marker(table: sa.Table) -> str:
    return "request_count" if "request_count" in table.c else "call_count"


def run_together(n: int, fn) -> list:
    """Call fn(i) for i < n on n threads released at the same instant; re-raise the first failure."""
    barrier = threading.Barrier(n)

    def go(i: int):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return [f.result() for f in [pool.submit(go, i) for i in range(n)]]


def assert_one_copy(engine: sa.Engine, table: sa.Table) -> None:
    got = rows(engine, table)
    assert len(got) == 3, got
    markers = {r[2] for r in got}
    assert len(markers) == 1, f"the window mixes the rows of several writers: {got}"


def test_concurrent_replacements_of_one_window_leave_exactly_one_copy(store):
    engine = store.engine
    run_together(WRITERS, lambda i: db.replace_window(engine, request_rollup_hourly, T0, T1, rollup_frame(i)))
    assert_one_copy(engine, request_rollup_hourly)


def test_concurrent_multi_table_replacements_neither_duplicate_nor_deadlock(store):
    engine = store.engine

    def write(i: int) -> dict[str, int]:
        tables = (request_rollup_hourly, usage_rollup_hourly)
        # half of the writers name the tables in the other order: locks must still be taken in one order
        ordered = tables if i % 2 else tables[::-1]
        return db.replace_windows(engine, T0, T1, {t: rollup_frame(i) for t in ordered})

    results = run_together(WRITERS, write)
    assert all(r == {"request_rollup_hourly": 3, "usage_rollup_hourly": 3} for r in results)
    assert_one_copy(engine, request_rollup_hourly)
    assert_one_copy(engine, usage_rollup_hourly)
    # both tables hold the copy of the same (last) writer: a window is replaced as one unit
    assert rows(engine, request_rollup_hourly)[0][2] == rows(engine, usage_rollup_hourly)[0][2]


@pytest.mark.parametrize("name", sorted(monitoring_metadata.tables))
def test_every_derived_table_has_a_unique_key_on_its_grain(store, name):
    """Two rows of one window with the same dimensions are refused, nulls included (the 'overall' row)."""
    table = monitoring_metadata.tables[name]
    row = {"window_start": T0, "window_end": T1}
    with store.engine.begin() as conn:
        conn.execute(sa.insert(table), [row])
    with pytest.raises(sa.exc.IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(sa.insert(table), [row])


def test_a_failure_in_the_second_table_keeps_the_first_tables_old_window(store):
    engine = store.engine
    db.replace_windows(engine, T0, T1, {request_rollup_hourly: rollup_frame(1), usage_rollup_hourly: rollup_frame(1)})
    bad = rollup_frame(2, values=("search", "search"))  # two rows on one grain: the unique key refuses it
    with pytest.raises(sa.exc.IntegrityError):
        # request_rollup_hourly is written (new rows) before usage_rollup_hourly fails
        db.replace_windows(engine, T0, T1, {request_rollup_hourly: rollup_frame(2), usage_rollup_hourly: bad})
    assert {r[2] for r in rows(engine, request_rollup_hourly)} == {1}
    assert {r[2] for r in rows(engine, usage_rollup_hourly)} == {1}
    assert len(rows(engine, request_rollup_hourly)) == 3


def test_replace_windows_returns_rows_per_table_and_replace_window_is_one_table_of_it(store):
    engine = store.engine
    assert db.replace_windows(engine, T0, T1, {usage_rollup_hourly: rollup_frame(1, values=(None,))}) == {
        "usage_rollup_hourly": 1
    }
    assert db.replace_window(engine, usage_rollup_hourly, T0, T1, rollup_frame(2)) == 3
    assert db.replace_windows(engine, T0, T1, {}) == {}
    assert {r[2] for r in rows(engine, usage_rollup_hourly)} == {2}
