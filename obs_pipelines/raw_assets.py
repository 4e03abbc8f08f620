"""The raw `spans` table as a Dagster asset, and the time partitions every phase shares.

`spans` is written by ingest (or directly by apps: the table is a public contract), so it is an
external asset: Dagster does not materialize it, but the phases depend on it and the monitoring phase
attaches its data-quality checks to it.
"""

import dagster as dg

from obs_pipelines.settings import Settings

SPANS = dg.AssetKey("spans")


def hourly_partitions(settings: Settings) -> dg.HourlyPartitionsDefinition:
    """UTC hours from `partitions_start`; an hour becomes a partition once it has closed."""
    return dg.HourlyPartitionsDefinition(start_date=settings.partitions_start, timezone="UTC")


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.partitions_start[:10], timezone="UTC")


def spans_spec(settings: Settings) -> dg.AssetSpec:
    return dg.AssetSpec(
        SPANS,
        description=(
            "Raw spans of the LLM apps (one row per span; the public contract in ARCHITECTURE.md), "
            "written by `obs-pipelines ingest` and the landing-directory sensor. Partitioned by the hour "
            "a span starts in."
        ),
        group_name="raw",
        partitions_def=hourly_partitions(settings),
        kinds={"sql"},
    )
