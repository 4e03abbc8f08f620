"""Automation conditions the phases share."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg


def daily_automation_condition() -> dg.AutomationCondition:
    """A daily partition is materialized once all its hours are (every dep present, none in progress), and
    again when an hour of it is updated; limited to the last week so switching a phase on does not launch a
    history-long backfill."""
    return (
        dg.AutomationCondition.in_latest_time_window(timedelta(days=7))
        & (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("complete day, or an hour of it updated (last 7 days)")
