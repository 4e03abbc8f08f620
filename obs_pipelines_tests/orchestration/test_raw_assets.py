"""`spans` as it really is (issue 24): spans_arrival_sensor reports each closed hour that received spans as a
materialization of that hour's partition, with the hour's span count, on both databases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg

from obs_pipelines.orchestration.raw_assets import SPANS, build_spans_arrival_sensor
from obs_pipelines.settings import Settings
from obs_pipelines.store import db

HOUR = timedelta(hours=1)


def span(i: int, start: datetime) -> dict:
    return {"trace_id": f"{i:032x}", "span_id": f"{i:016x}", "parent_span_id": None, "name": "chat", "kind": "llm",
            "start_time": start, "end_time": start + timedelta(milliseconds=300), "status": "ok", "attributes": {}}


def tick(store, sensor, cursor: str | None):
    with dg.build_sensor_context(instance=dg.DagsterInstance.get(), cursor=cursor,
                                 resources={"trace_store": store}) as context:
        return sensor(context)


def test_closed_hours_with_spans_are_reported_with_their_counts_and_the_open_hour_waits(store, monkeypatch):
    now = db.utcnow()
    monkeypatch.setattr(db, "utcnow", lambda: now)  # the open hour stays open for the whole test
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = this_hour - 2 * HOUR
    # by eye: 3 spans in the first hour, 2 in the second, 1 in the open hour (reported once it closes)
    starts = [first + timedelta(minutes=m) for m in (1, 2, 3)] + [first + HOUR + timedelta(minutes=m) for m in (5, 6)]
    db.insert_spans(store.engine, [span(i, t) for i, t in enumerate(starts)] + [span(9, this_hour)])
    sensor = build_spans_arrival_sensor(Settings(db_url=store.db_url, partitions_start=f"{first:%Y-%m-%d-%H:%M}"))
    result = tick(store, sensor, None)
    got = {e.partition: e.metadata["spans"].value for e in result.asset_events}
    assert got == {f"{first:%Y-%m-%d-%H:%M}": 3, f"{first + HOUR:%Y-%m-%d-%H:%M}": 2}
    assert all(e.asset_key == SPANS for e in result.asset_events)
    assert json.loads(result.cursor)["waiting"] == {f"{this_hour:%Y-%m-%d-%H:%M}": 1}
    # a late span for the first hour: reported again with the new count; nothing else
    db.insert_spans(store.engine, [span(20, first + timedelta(minutes=30))])
    again = tick(store, sensor, result.cursor)
    assert {e.partition: e.metadata["spans"].value for e in again.asset_events} == {f"{first:%Y-%m-%d-%H:%M}": 4}


def test_hours_before_the_partitions_start_are_not_reported(store):
    this_hour = db.utcnow().replace(minute=0, second=0, microsecond=0)
    db.insert_spans(store.engine, [span(1, this_hour - 3 * HOUR), span(2, this_hour - HOUR)])
    sensor = build_spans_arrival_sensor(Settings(db_url=store.db_url,
                                                 partitions_start=f"{this_hour - HOUR:%Y-%m-%d-%H:%M}"))
    result = tick(store, sensor, None)
    assert [e.partition for e in result.asset_events] == [f"{this_hour - HOUR:%Y-%m-%d-%H:%M}"]
