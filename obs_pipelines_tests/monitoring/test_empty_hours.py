"""Hours without spans are answered cheaply (a backfill over months of empty hours pays little per hour):
the quality gate passes them without reading spans or running great-expectations, and their rollups are
re-dated copies of the first empty hour's, equal to what the queries give."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from obs_pipelines.monitoring import quality, rollups
from obs_pipelines.pricing import load_prices
from obs_pipelines.store.query import window_has_spans
from obs_pipelines_tests.monitoring.conftest import H, H_END, handmade_spans, insert

EMPTY = H - timedelta(days=2)  # no span of the hand-built set starts that day


def test_an_empty_hour_passes_the_gate_without_reading_spans(store, monkeypatch):
    insert(store, handmade_spans())
    assert window_has_spans(store.engine, H, H_END)
    assert not window_has_spans(store.engine, EMPTY, EMPTY + timedelta(hours=1))

    def no_read(*_args, **_kwargs):
        raise AssertionError("an empty hour must not be read")

    monkeypatch.setattr(quality, "_fetch_partition", no_read)
    monkeypatch.setattr(quality, "_validate", no_read)
    results = quality.check_partition(store.engine, EMPTY, EMPTY + timedelta(hours=1), 0.1)
    monkeypatch.undo()
    # the same results, same shape, as great-expectations gives for a window without rows
    expected = quality.run_quality_checks(pd.DataFrame(columns=list(quality.QUALITY_COLUMNS)), 0.1)
    assert [r.to_dict() for r in results] == [r.to_dict() for r in expected]
    assert [r.name for r in results] == [name for name, _level, _text in quality.CHECK_CATALOG]
    assert all(r.passed and r.failing_count == 0 and r.row_count == 0 for r in results)


def _without_computed_at(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {kind: frame.drop(columns="computed_at") for kind, frame in frames.items()}


def test_empty_hours_rollups_equal_the_queries_answer(store, monkeypatch):
    insert(store, handmade_spans())
    prices = load_prices({})
    monkeypatch.setattr(rollups, "_EMPTY_WINDOW_ROLLUPS", {})
    first = rollups.hourly_rollups(store.engine, EMPTY, EMPTY + timedelta(hours=1), prices)
    assert rollups._EMPTY_WINDOW_ROLLUPS  # kept for the next empty hours

    later = EMPTY + timedelta(hours=5)
    cached = rollups.hourly_rollups(store.engine, later, later + timedelta(hours=1), prices)
    monkeypatch.setattr(rollups, "_EMPTY_WINDOW_ROLLUPS", {})
    computed = rollups.hourly_rollups(store.engine, later, later + timedelta(hours=1), prices)
    assert set(cached) == set(computed) == set(first)
    for kind in computed:
        pd.testing.assert_frame_equal(_without_computed_at(cached)[kind], _without_computed_at(computed)[kind])
        assert (cached[kind]["window_start"] == later).all()

    # an hour with spans is never answered from the empty hours' copy
    busy = rollups.hourly_rollups(store.engine, H, H_END, prices)
    assert int(busy["request"].loc[busy["request"]["dimension"] == "overall", "request_count"].iloc[0]) > 0
    assert not busy["step"].empty


@pytest.mark.parametrize("hours", [3])
def test_a_range_over_empty_hours_writes_every_hour(store, hours):
    prices = load_prices({})
    for i in range(hours):
        start = EMPTY + timedelta(hours=i)
        written = rollups.write_hourly_rollups(store.engine, start, start + timedelta(hours=1), prices)
        assert written["request"] == 1 and written["step"] == 0  # the overall row of an hour without requests
