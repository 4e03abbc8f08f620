"""Which hourly partitions must be rolled up again because spans arrived after they were rolled up.

Ingest appends one `span_arrivals` row (increasing id) per hour that received new spans. A rollup records
the newest arrival id it could see before reading spans; an arrival with a larger id for a rolled-up
hour brought spans that rollup never saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's HourlyPartitionsDefinition key format


def hour_key(hour: datetime) -> str:
    return hour.strftime(HOUR_KEY_FORMAT)


def late_partition_keys(
    arrivals: Iterable[tuple[int, datetime, datetime]],
    seen_by_rollup: Mapping[str, int],
) -> tuple[list[str], int | None]:
    """Partition keys (sorted, unique) that received spans after their latest rollup, and the last
    arrival id.

    ``arrivals`` are (id, partition hour, arrived_at); ``seen_by_rollup`` maps each rolled-up partition
    key to the newest arrival id its latest rollup had seen. Hours never rolled up are left to the
    schedule (or a backfill): re-running them here would race the regular run for the same hour.
    """
    keys: set[str] = set()
    last_id: int | None = None
    for arrival_id, hour, _arrived_at in arrivals:
        last_id = arrival_id if last_id is None else max(last_id, arrival_id)
        key = hour_key(hour)
        if key in seen_by_rollup and arrival_id > seen_by_rollup[key]:
            keys.add(key)
    return sorted(keys), last_id
