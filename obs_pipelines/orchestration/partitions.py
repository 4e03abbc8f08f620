"""Time partitions every phase shares, from the settings."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from obs_pipelines.hours import DAY_KEY_FORMAT as DAY_KEY_FORMAT  # (defined there, without Dagster)
from obs_pipelines.settings import Settings

# a run of one partition is tagged with its key; a run over a range of partitions (what a single-run backfill
# launches) with its first and last key
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# a run tagged obs_pipelines/rescore=true computes every window again, even those whose inputs did not change
RESCORE_TAG = "obs_pipelines/rescore"


def hourly_partitions(settings: Settings) -> dg.HourlyPartitionsDefinition:
    """UTC hours from `partitions_start`; an hour becomes a partition once it has closed."""
    return dg.HourlyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC")


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.partitions_start[:10], timezone="UTC")


def range_tags(first_key: str, last_key: str) -> dict[str, str]:
    """Tags of a run (or run request) over the partitions first_key..last_key in one run."""
    return {RANGE_START_TAG: first_key, RANGE_END_TAG: last_key}


def run_partition_keys(tags: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The first and last partition key of a run as Dagster tags it (the same key twice for one partition);
    None where the run carries neither tag."""
    single = tags.get(PARTITION_TAG)
    return single or tags.get(RANGE_START_TAG), single or tags.get(RANGE_END_TAG)


def rescore_requested(tags: Mapping[str, str]) -> bool:
    """Whether a run is tagged ``obs_pipelines/rescore=true`` (any case)."""
    return tags.get(RESCORE_TAG, "").lower() == "true"
