"""The raw `spans` table as a Dagster asset.

`spans` is written by ingest (or directly by apps: the table is a public contract), so it is an
external asset: Dagster does not materialize it, but the phases depend on it and the monitoring phase
attaches its data-quality checks to it. `spans_arrival_sensor` reports each hour that received spans as a
materialization of its partition (with the hour's span count), so the UI shows the hours present instead of
"Missing" (issue 24).
"""

import json
from datetime import datetime

import dagster as dg
import sqlalchemy as sa

from obs_pipelines import formatting
from obs_pipelines.hours import HOUR, hour_key, parse_hour_key
from obs_pipelines.orchestration.partitions import hourly_partitions
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.settings import Settings
from obs_pipelines.store import db
from obs_pipelines.store.schema import span_arrivals, spans

SPANS = dg.AssetKey("spans")


def spans_spec(settings: Settings) -> dg.AssetSpec:
    return dg.AssetSpec(
        SPANS,
        description=(
            "Raw spans of the LLM apps (one row per span; the public contract in docs/architecture.md), "
            "written by `obs-pipelines ingest` and the landing-directory sensor. Partitioned by the hour "
            "a span starts in."
        ),
        group_name="raw",
        partitions_def=hourly_partitions(settings),
        kinds={"sql"},
    )


# ---- each hour's arrival, as the UI's partition status ---------------------------------------------------
MAX_ARRIVALS_PER_TICK = 20_000  # span_arrivals rows read per tick; the rest waits for the next one


def _hour_counts(engine: sa.Engine, hours: list[datetime]) -> dict[datetime, int]:
    """Spans stored per hour (by start_time, through the index; one bounded count per hour)."""
    query = sa.select(sa.func.count()).select_from(spans).where(
        spans.c.start_time >= sa.bindparam("start"), spans.c.start_time < sa.bindparam("end"))
    with engine.connect() as conn:
        return {h: int(conn.execute(query, {"start": h, "end": h + HOUR}).scalar_one()) for h in hours}


def arrival_events(engine: sa.Engine, cursor: dict, now: datetime, first_hour: datetime
                   ) -> tuple[list[dg.AssetMaterialization], dict]:
    """One materialization of `spans` per closed hour that received spans since the cursor (ingest records
    each batch's hours in span_arrivals), with the hour's span count; hours still open wait in the cursor
    until they close. The next cursor."""
    after, waiting = int(cursor.get("arrival_id", 0)), dict(cursor.get("waiting", {}))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(span_arrivals.c.id, span_arrivals.c.partition_hour, span_arrivals.c.span_count)
                            .where(span_arrivals.c.id > after).order_by(span_arrivals.c.id)
                            .limit(MAX_ARRIVALS_PER_TICK)).all()
    for arrival_id, hour, count in rows:
        hour = db.to_naive_utc(hour if isinstance(hour, datetime) else datetime.fromisoformat(str(hour)))
        key = hour_key(hour)
        waiting[key] = waiting.get(key, 0) + int(count or 0)
        after = max(after, arrival_id)
    closed = sorted(k for k in waiting if parse_hour_key(k) + HOUR <= now)
    reported = [k for k in closed if parse_hour_key(k) >= first_hour]
    totals = _hour_counts(engine, [parse_hour_key(k) for k in reported])
    events = [dg.AssetMaterialization(
        asset_key=SPANS, partition=k,
        description=f"{formatting.number(totals[parse_hour_key(k)])} spans in this hour",
        metadata={"spans": totals[parse_hour_key(k)], "spans_arrived": waiting[k]})
        for k in reported]
    for k in closed:
        del waiting[k]
    return events, {"arrival_id": after, "waiting": waiting}


def build_spans_arrival_sensor(settings: Settings) -> dg.SensorDefinition:
    first_hour = parse_hour_key(settings.partitions_start)

    @dg.sensor(
        name="spans_arrival_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reports each closed hour that received spans (ingest records every batch's hours) as a "
                    "materialization of that hour's `spans` partition, with the hour's span count: the UI "
                    "shows which hours are present. An hour still open is reported once it closes.",
    )
    def spans_arrival_sensor(context: dg.SensorEvaluationContext, trace_store: TraceStore) -> dg.SensorResult:
        engine = trace_store.engine
        if not sa.inspect(engine).has_table(span_arrivals.name):
            return dg.SensorResult(skip_reason="no spans ingested yet")
        cursor = json.loads(context.cursor) if context.cursor else {}
        events, cursor = arrival_events(engine, cursor, db.utcnow(), first_hour)
        if not events:
            return dg.SensorResult(skip_reason="no closed hour received spans since the last tick",
                                   cursor=json.dumps(cursor))
        return dg.SensorResult(asset_events=events, cursor=json.dumps(cursor))

    return spans_arrival_sensor
