"""Hour and day keys (obs_pipelines/hours.py) name the same partitions Dagster's own definitions do."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from obs_pipelines.hours import contiguous_ranges, day_key, hour_key, parse_hour_key


def test_an_hour_key_is_the_key_of_that_hour_in_dagsters_hourly_partitions():
    hourly = dg.HourlyPartitionsDefinition(start_date="2026-03-01-00:00", timezone="UTC")
    hour = datetime(2026, 3, 2, 7)
    window = hourly.time_window_for_partition_key(hour_key(hour))
    assert window.start == hour.replace(tzinfo=UTC)


def test_a_day_key_is_the_key_of_that_day_in_dagsters_daily_partitions():
    daily = dg.DailyPartitionsDefinition(start_date="2026-03-01", timezone="UTC")
    assert day_key(datetime(2026, 3, 2, 23, 59)) in daily.get_partition_keys(datetime(2026, 3, 4, tzinfo=UTC))
    assert day_key(datetime(2026, 3, 2, 23, 59)) == "2026-03-02"  # by eye: the day the minute falls in


def test_parsing_an_hour_key_gives_back_the_hour():
    assert parse_hour_key(hour_key(datetime(2026, 12, 31, 23))) == datetime(2026, 12, 31, 23)


def test_hours_across_midnight_form_one_range_and_a_gap_starts_another():
    keys = ["2026-03-02-00:00", "2026-03-01-23:00", "2026-03-02-03:00"]  # unsorted on purpose
    assert contiguous_ranges(keys) == [("2026-03-01-23:00", "2026-03-02-00:00"),
                                       ("2026-03-02-03:00", "2026-03-02-03:00")]
