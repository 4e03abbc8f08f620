"""A run's time window (one partition or a range of them), read through Dagster's public context API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import dagster as dg

from obs_pipelines.store.db import to_naive_utc

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def run_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[datetime, datetime]:
    """[start, end) of the partitions this step covers, naive UTC: the same for a single partition, a
    single-run backfill of a range, and a check evaluated in either."""
    window = context.partition_time_window  # aware; the store keeps naive UTC
    return to_naive_utc(window.start), to_naive_utc(window.end)


def windows(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """The consecutive [start, start + step) windows covering [start, end)."""
    while start < end:
        yield start, start + step
        start += step
