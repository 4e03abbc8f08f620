"""A phase's jobs, schedule and automation, built in one place: every phase names and wires them alike.

- ``<phase>_hourly_job`` runs the phase's hourly assets and ``<phase>_hourly_schedule`` takes each hour
  ``schedule_minute`` minutes after it closes;
- ``<phase>_daily_job`` runs its daily assets (partitioning is inferred from the selected assets); a phase
  without hourly assets schedules this job instead (``<phase>_daily_schedule`` at ``schedule_hour``:minute);
- ``<phase>_automation_sensor`` materializes the daily assets by their automation conditions, when the phase
  has any (``automation_description``).

The phase's own sensors (monitoring's late-data sensor) are given to ``definitions`` and come after these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg


def job_names(phase: str) -> tuple[str, str]:
    """The hourly and daily job of ``phase``: ``<phase>_hourly_job``, ``<phase>_daily_job``."""
    return f"{phase}_hourly_job", f"{phase}_daily_job"


@dataclass(frozen=True)
class PhaseJobs:
    hourly_job: Any  # (dagster's unresolved asset job and partitioned schedule types are not public)
    daily_job: Any
    schedule: Any
    automation_sensor: dg.AutomationConditionSensorDefinition | None

    def definitions(self, *sensors: dg.SensorDefinition) -> dg.Definitions:
        """The jobs (hourly first), the schedule, ``sensors`` and then the automation sensor."""
        jobs = [job for job in (self.hourly_job, self.daily_job) if job is not None]
        automation = [self.automation_sensor] if self.automation_sensor is not None else []
        return dg.Definitions(jobs=jobs, schedules=[self.schedule], sensors=[*sensors, *automation])


def build_phase_jobs(
    phase: str,
    *,
    daily_assets: Sequence[dg.AssetsDefinition],
    daily_description: str,
    schedule_minute: int,
    schedule_description: str,
    hourly_assets: Sequence[dg.AssetsDefinition] = (),
    hourly_description: str | None = None,
    schedule_hour: int | None = None,
    automation_description: str | None = None,
    automation_target: dg.AssetSelection | None = None,
) -> PhaseJobs:
    """The phase's jobs, schedule and automation sensor (module docstring). ``automation_target`` defaults to
    the daily assets."""
    hourly_name, daily_name = job_names(phase)
    hourly_job = None
    if hourly_assets:
        hourly_job = dg.define_asset_job(hourly_name, selection=dg.AssetSelection.assets(*hourly_assets),
                                         description=hourly_description)
    daily_job = dg.define_asset_job(daily_name, selection=dg.AssetSelection.assets(*daily_assets),
                                    description=daily_description)
    scheduled = hourly_job if hourly_job is not None else daily_job
    schedule = dg.build_schedule_from_partitioned_job(
        scheduled,
        name=f"{phase}_{'hourly' if hourly_job is not None else 'daily'}_schedule",
        minute_of_hour=schedule_minute,
        hour_of_day=schedule_hour,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=schedule_description,
    )
    automation = None
    if automation_description is not None:
        automation = dg.AutomationConditionSensorDefinition(
            f"{phase}_automation_sensor",
            target=automation_target if automation_target is not None else dg.AssetSelection.assets(*daily_assets),
            default_status=dg.DefaultSensorStatus.RUNNING,
            description=automation_description,
        )
    return PhaseJobs(hourly_job, daily_job, schedule, automation)
