"""Which hourly partitions must be rolled up again because spans arrived after they were rolled up."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's HourlyPartitionsDefinition key format


def hour_key(hour: datetime) -> str:
    return hour.strftime(HOUR_KEY_FORMAT)


def late_partition_keys(
    arrivals: Iterable[tuple[int, datetime]], already_rolled_up: set[str]
) -> tuple[list[str], int | None]:
    """Partition keys (sorted, unique) that received spans after their rollup, and the last arrival id.

    Hours never rolled up are left to the schedule (or a backfill): re-running them here would race
    the regular run for the same hour.
    """
    keys: set[str] = set()
    last_id: int | None = None
    for arrival_id, hour in arrivals:
        last_id = arrival_id if last_id is None else max(last_id, arrival_id)
        key = hour_key(hour)
        if key in already_rolled_up:
            keys.add(key)
    return sorted(keys), last_id
