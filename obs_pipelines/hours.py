"""Hour and day keys: the names Dagster gives hourly and daily partitions, as plain strings, and hour keys grouped
into runs of consecutive hours. No Dagster import, so logic modules, sensors and the CLI share one definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

HOUR_KEY_FORMAT = "%Y-%m-%d-%H:%M"  # HourlyPartitionsDefinition's key format
DAY_KEY_FORMAT = "%Y-%m-%d"  # DailyPartitionsDefinition's key format
HOUR = timedelta(hours=1)


def hour_key(hour: datetime) -> str:
    """The partition key of the hour starting at ``hour`` (naive UTC)."""
    return hour.strftime(HOUR_KEY_FORMAT)


def parse_hour_key(key: str) -> datetime:
    """The start (naive UTC) of the hour an hourly partition key names."""
    return datetime.strptime(key, HOUR_KEY_FORMAT)


def day_key(day: datetime) -> str:
    """The partition key of the day ``day`` falls in."""
    return day.strftime(DAY_KEY_FORMAT)


def contiguous_ranges(keys: Iterable[str], max_hours: int = 24) -> list[tuple[str, str]]:
    """Sorted hour keys grouped into runs of consecutive hours (at most ``max_hours`` each): one run over a range
    instead of one run per hour."""
    ranges: list[tuple[str, str]] = []
    first = prev = None
    length = 0
    for key in sorted(keys):
        hour = parse_hour_key(key)
        if prev is not None and hour - prev == HOUR and length < max_hours:
            length += 1
        else:
            if first is not None and prev is not None:
                ranges.append((hour_key(first), hour_key(prev)))
            first, length = hour, 1
        prev = hour
    if first is not None and prev is not None:
        ranges.append((hour_key(first), hour_key(prev)))
    return ranges
