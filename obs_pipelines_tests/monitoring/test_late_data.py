"""Which hours the late-data sensor rolls up: pure logic, no Dagster."""

from __future__ import annotations

from datetime import datetime, timedelta

from obs_pipelines.hours import contiguous_ranges, hour_key
from obs_pipelines.monitoring.late_data import backfill_hint, newest_arrival_by_hour, plan_rollups

H9 = datetime(2026, 5, 1, 9)
AT = datetime(2026, 5, 3, 12)
NOW = datetime(2026, 5, 3, 12, 30)
GRACE = timedelta(minutes=20)
WEEK = timedelta(days=7)


def plan(newest: dict[str, int], seen: dict[str, int], now: datetime = NOW):
    return plan_rollups(newest, seen, now, GRACE, WEEK)


def test_an_arrival_after_the_latest_rollup_makes_the_hour_due():
    assert plan({hour_key(H9): 7}, {hour_key(H9): 6}).due == [hour_key(H9)]


def test_an_arrival_the_rollup_already_saw_is_not_late():
    assert plan({hour_key(H9): 6}, {hour_key(H9): 6}).due == []


def test_an_hour_never_rolled_up_is_due_when_it_receives_spans():
    assert plan({hour_key(H9): 1}, {}).due == [hour_key(H9)]


def test_a_rollup_that_recorded_no_arrival_id_counts_every_arrival_as_late():
    assert plan({hour_key(H9): 1}, {hour_key(H9): -1}).due == [hour_key(H9)]


def test_hours_before_the_lookback_are_listed_not_run():
    old = NOW - WEEK - timedelta(hours=3)
    result = plan({hour_key(old.replace(minute=0)): 5}, {})
    assert result.due == [] and result.too_old == [hour_key(old.replace(minute=0))]


def test_the_newest_hours_wait_for_the_schedule_and_are_kept_for_later_ticks():
    current = NOW.replace(minute=0)  # still open
    just_closed = current - timedelta(hours=1)  # closed 30 min ago, past the 20 min grace
    result = plan({hour_key(current): 9, hour_key(just_closed): 8}, {})
    assert result.due == [hour_key(just_closed)]
    assert result.waiting == {hour_key(current): 9}
    later = plan(result.waiting, {}, now=NOW + timedelta(hours=1))
    assert later.due == [hour_key(current)] and later.waiting == {}


def test_newest_arrival_by_hour_merges_waiting_hours_and_keeps_the_last_id():
    h10 = H9 + timedelta(hours=1)
    newest, last = newest_arrival_by_hour([(3, H9, AT), (4, h10, AT), (5, H9, AT)], {hour_key(h10): 2})
    assert newest == {hour_key(H9): 5, hour_key(h10): 4} and last == 5


def test_consecutive_hours_are_grouped_into_ranges_of_at_most_a_day():
    hours = [hour_key(H9 + timedelta(hours=i)) for i in [0, 1, 2, 5, *range(10, 40)]]
    ranges = contiguous_ranges(hours, max_hours=24)
    assert ranges == [
        (hour_key(H9), hour_key(H9 + timedelta(hours=2))),
        (hour_key(H9 + timedelta(hours=5)),) * 2,
        (hour_key(H9 + timedelta(hours=10)), hour_key(H9 + timedelta(hours=33))),
        (hour_key(H9 + timedelta(hours=34)), hour_key(H9 + timedelta(hours=39))),
    ]


def test_the_backfill_hint_names_the_hours_and_the_command():
    hint = backfill_hint([hour_key(H9), hour_key(H9 + timedelta(hours=3))])
    assert "2026-05-01-09:00, 2026-05-01-12:00" in hint
    assert "obs-pipelines run monitoring --start 2026-05-01T09:00 --end 2026-05-01T12:00" in hint
