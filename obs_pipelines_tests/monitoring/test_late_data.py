"""Which hours the late-data sensor re-runs: a pure function of arrivals and what each rollup had seen."""

from __future__ import annotations

from datetime import datetime

from obs_pipelines.monitoring.late_data import hour_key, late_partition_keys

H9, H10, H11 = datetime(2026, 5, 1, 9), datetime(2026, 5, 1, 10), datetime(2026, 5, 1, 11)
AT = datetime(2026, 5, 1, 12)


def test_hour_key_matches_dagsters_hourly_partition_keys():
    assert hour_key(H9) == "2026-05-01-09:00"


def test_arrival_after_the_rollup_makes_its_hour_late():
    keys, last = late_partition_keys([(7, H9, AT)], {"2026-05-01-09:00": 6})
    assert (keys, last) == (["2026-05-01-09:00"], 7)


def test_arrival_the_rollup_had_seen_is_not_late():
    keys, last = late_partition_keys([(6, H9, AT)], {"2026-05-01-09:00": 6})
    assert (keys, last) == ([], 6)


def test_hours_never_rolled_up_are_left_to_the_schedule():
    keys, last = late_partition_keys([(3, H10, AT), (4, H11, AT)], {"2026-05-01-09:00": 1})
    assert (keys, last) == ([], 4)


def test_each_late_hour_is_listed_once_in_order():
    arrivals = [(5, H11, AT), (6, H9, AT), (7, H11, AT)]
    keys, last = late_partition_keys(arrivals, {hour_key(H9): 0, hour_key(H11): 0})
    assert (keys, last) == ([hour_key(H9), hour_key(H11)], 7)


def test_a_rollup_without_a_recorded_arrival_id_counts_everything_as_late():
    keys, _ = late_partition_keys([(1, H9, AT)], {hour_key(H9): -1})
    assert keys == [hour_key(H9)]
