"""Generated traffic for the observability tests: a baseline day and an incident day over the same hours, the
incident in the middle hour only, inserted straight into the `store` fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from obs_pipelines.definitions import build_definitions
from obs_pipelines.observability.config import ObservabilitySettings
from obs_pipelines.observability.defs import DAILY_JOB, HOURLY_JOB
from obs_pipelines.observability.tables import GRAINS, observability_metadata
from obs_pipelines.settings import Settings
from obs_pipelines.synth.generator import generate_traces
from obs_pipelines.synth.incidents import parse_incident

DAY0 = datetime(2026, 11, 2, 9, 0)  # first hour of the incident day
HOURS = 3
INCIDENT_HOUR = DAY0 + timedelta(hours=1)  # the incident covers exactly this hour
BASELINE_DAYS = 1
RATE = 0.25  # traces per second (diurnal: about 1,100 an hour here)
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def hour_key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d-%H:%M")


def hours() -> list[datetime]:
    return [DAY0 + timedelta(hours=i) for i in range(HOURS)]


@lru_cache(maxsize=16)
def _traffic(incident: str | None, seed: int) -> tuple[dict, ...]:
    incidents = [parse_incident(f"{incident}@{INCIDENT_HOUR.isoformat(timespec='minutes')}+1h")] if incident else []
    rows = []
    for day, (start, seed_of_day) in enumerate([(DAY0 - timedelta(days=1), seed + 1000), (DAY0, seed)]):
        for trace in generate_traces(start, HOURS, RATE, seed_of_day, incidents if day == 1 else []):
            rows.extend(trace)
    return tuple(rows)


def load_traffic(store, incident: str | None = None, seed: int = 3) -> list[dict]:
    """Insert the baseline day and the incident day; the rows (copies) are returned."""
    rows = [dict(r, attributes=dict(r["attributes"])) for r in _traffic(incident, seed)]
    store.insert_spans(rows)
    return rows


def settings(store, **observability) -> Settings:
    return Settings(db_url=store.db_url, partitions_start="2026-10-01-00:00",
                    observability=ObservabilitySettings(baseline_days=BASELINE_DAYS, **observability))


def definitions(store, **observability) -> dg.Definitions:
    return build_definitions(settings(store, **observability))


def run_hours(defs: dg.Definitions, instance: dg.DagsterInstance, first: datetime, last: datetime | None = None,
              job: str = HOURLY_JOB):
    job_def = defs.resolve_job_def(job)
    key = (lambda h: h.strftime("%Y-%m-%d")) if job == DAILY_JOB else hour_key
    if last is None:
        return job_def.execute_in_process(partition_key=key(first), instance=instance, raise_on_error=False)
    tags = dict(zip(RANGE_TAGS, (key(first), key(last))))
    return job_def.execute_in_process(tags=tags, instance=instance, raise_on_error=False)


def table(store, name: str, start: datetime | None = None) -> pd.DataFrame:
    """The table's rows (of one hour when ``start`` is given) without computed_at, in a stable order."""
    tbl = observability_metadata.tables[name]
    query = sa.select(tbl)
    if start is not None:
        query = query.where(tbl.c.window_start == start)
    with store.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in tbl.columns])
    frame = frame.drop(columns=["computed_at"])
    keys = ["window_start", *GRAINS[name]]
    return frame.sort_values(keys, key=lambda c: c.astype(str) if c.name != "window_start" else c).reset_index(
        drop=True)
