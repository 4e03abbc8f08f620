"""The raw `spans` table as a Dagster asset.

`spans` is written by ingest (or directly by apps: the table is a public contract), so it is an
external asset: Dagster does not materialize it, but the phases depend on it and the monitoring phase
attaches its data-quality checks to it.
"""

import dagster as dg

from obs_pipelines.orchestration.partitions import hourly_partitions
from obs_pipelines.settings import Settings

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
