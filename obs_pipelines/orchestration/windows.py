"""A run's time window (one partition or a range of them), read through Dagster's public context API."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

import dagster as dg

from obs_pipelines.hours import parse_hour_key
from obs_pipelines.orchestration.partitions import RANGE_START_TAG, run_partition_keys
from obs_pipelines.store.db import to_naive_utc

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def run_window(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> tuple[datetime, datetime]:
    """[start, end) of the partitions this step covers, naive UTC: the same for a single partition, a
    single-run backfill of a range, and a check evaluated in either."""
    window = context.partition_time_window  # aware; the store keeps naive UTC
    return to_naive_utc(window.start), to_naive_utc(window.end)


def tagged_window(tags: Mapping[str, str],
                  partitions: dg.TimeWindowPartitionsDefinition) -> tuple[datetime, datetime]:
    """[start, end) naive UTC of the partition (or range) a run is tagged with: the window of a step that has no
    partition context of its own (an unpartitioned check op). KeyError when the run carries no partition tag."""
    first, last = run_partition_keys(tags)
    if first is None or last is None:
        raise KeyError(RANGE_START_TAG)
    return (to_naive_utc(partitions.time_window_for_partition_key(first).start),
            to_naive_utc(partitions.time_window_for_partition_key(last).end))


def check_run_window(context: dg.AssetCheckExecutionContext,
                     partitions: dg.TimeWindowPartitionsDefinition) -> tuple[datetime, datetime]:
    """[start, end) naive UTC of an unpartitioned check op: the partition (or range) its run is tagged with (a
    check op has no partition context of its own)."""
    return tagged_window(context.run.tags, partitions)


def tagged_hours(tags: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """[start, end) naive UTC of the hourly partition (or range) a run is tagged with, without knowing the run's
    partitions (a run failure sensor sees runs of every job); None for a run of other partitions, or of none."""
    first, last = run_partition_keys(tags)
    try:
        return (parse_hour_key(first), parse_hour_key(last) + HOUR) if first and last else None
    except ValueError:  # a day key (or another partitioning)
        return None


def windows(start: datetime, end: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """The consecutive [start, start + step) windows covering [start, end)."""
    while start < end:
        yield start, start + step
        start += step
