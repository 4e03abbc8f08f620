"""Which hourly partitions must be rolled up (again) because spans arrived for them.

Ingest appends one `span_arrivals` row (increasing id) per hour that received new spans. A rollup records
the newest arrival id it could see before reading spans; an arrival with a larger id brought spans that
rollup never saw. An hour that was never rolled up (a file from last week dropped in the landing
directory, a bulk load) has seen nothing, so any arrival makes it due as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from obs_pipelines.hours import HOUR, hour_key, parse_hour_key


@dataclass
class RollupPlan:
    """What the late-data sensor does with the arrivals it read."""

    due: list[str] = field(default_factory=list)  # hours to roll up now, sorted
    too_old: list[str] = field(default_factory=list)  # hours before the look-back: left to a backfill
    # hours whose regular (scheduled) run has not come yet: newest arrival id, re-examined on later ticks
    waiting: dict[str, int] = field(default_factory=dict)
    last_id: int | None = None  # newest arrival read


def newest_arrival_by_hour(arrivals: Iterable[tuple[int, datetime, datetime]],
                           waiting: Mapping[str, int]) -> tuple[dict[str, int], int | None]:
    """Newest arrival id per hour key (the hours still waiting included), and the newest id read."""
    newest = dict(waiting)
    last_id: int | None = None
    for arrival_id, hour, _arrived_at in arrivals:
        last_id = arrival_id if last_id is None else max(last_id, arrival_id)
        key = hour_key(hour)
        newest[key] = max(newest.get(key, arrival_id), arrival_id)
    return newest, last_id


def plan_rollups(newest: Mapping[str, int], seen_by_rollup: Mapping[str, int], now: datetime,
                 scheduled_after: timedelta, lookback: timedelta) -> RollupPlan:
    """Sort the hours that received spans into due / too old / waiting.

    ``newest`` maps hour keys to their newest arrival id, ``seen_by_rollup`` each rolled-up hour key to the
    arrival id its latest rollup had seen. An hour is left to the schedule until ``scheduled_after`` past
    its end (the schedule's delay plus a grace period), so the two do not race for it; hours that started
    more than ``lookback`` before ``now`` are not rolled up by the sensor (listed for a backfill).
    """
    plan = RollupPlan()
    for key, arrival_id in sorted(newest.items()):
        hour = parse_hour_key(key)
        if hour + HOUR + scheduled_after > now:
            plan.waiting[key] = arrival_id
        elif arrival_id <= seen_by_rollup.get(key, -1):
            continue  # its latest rollup already saw these spans
        elif hour < now - lookback:
            plan.too_old.append(key)
        else:
            plan.due.append(key)
    return plan


def backfill_hint(too_old: list[str]) -> str:
    """The skip message for hours the sensor leaves alone, with the command that rolls them up."""
    first = parse_hour_key(min(too_old))
    last = parse_hour_key(max(too_old))
    shown = ", ".join(too_old[:20]) + (f" and {len(too_old) - 20} more" if len(too_old) > 20 else "")
    return (f"{len(too_old)} hour(s) older than the look-back received spans and are not rolled up by this "
            f"sensor: {shown}. Roll them up with: obs-pipelines run monitoring --start {first:%Y-%m-%dT%H:%M} "
            f"--end {last:%Y-%m-%dT%H:%M} (or a backfill of monitoring_hourly_job in the UI).")
