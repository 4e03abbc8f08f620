"""Run a phase's jobs in this process over a time range (the CLI's `run` and `demo` use it).

Runs are recorded in the local Dagster instance (DAGSTER_HOME, else ./dagster.yaml if present) so
`dagster dev` shows them afterwards; with neither, an ephemeral instance is used.
"""

from __future__ import annotations

import importlib
import os
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from obs_pipelines.orchestration.partitions import range_tags


def local_instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    if Path("dagster.yaml").is_file():
        return dg.DagsterInstance.from_config(str(Path.cwd()))
    return dg.DagsterInstance.ephemeral()


def partition_keys_between(
    partitions_def: dg.TimeWindowPartitionsDefinition, start: datetime, end_exclusive: datetime
) -> list[str]:
    """Keys of the partitions whose whole window lies in [start, end_exclusive)."""
    keys = partitions_def.get_partition_keys_in_time_window(dg.TimeWindow(start, end_exclusive))
    return [
        k
        for k in keys
        if partitions_def.time_window_for_partition_key(k).end.replace(tzinfo=None) <= end_exclusive
    ]


def phase_jobs(defs: dg.Definitions, phase: str) -> list[dg.JobDefinition]:
    """The phase's jobs, in the order its defs module lists them (``JOBS``: hourly before daily)."""
    from obs_pipelines.definitions import PHASE_MODULES

    module = PHASE_MODULES.get(phase)
    if module is None:
        raise ValueError(f"phase {phase!r} is not shipped in this version")
    names = importlib.import_module(module).JOBS
    present = {job.name for job in defs.jobs or []}
    return [defs.resolve_job_def(name) for name in names if name in present]


def materialize_phase(
    phase: str,
    first_hour: datetime,
    last_hour: datetime,
    defs: dg.Definitions | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """One run per job of the phase covering every partition from first_hour to last_hour inclusive; the
    last run's result (or the first that failed)."""
    if defs is None:
        from obs_pipelines.definitions import defs as loaded

        defs = loaded
    instance = instance or local_instance()
    end_exclusive = last_hour + timedelta(hours=1)
    jobs = phase_jobs(defs, phase)
    if not jobs:
        raise ValueError(f"phase {phase!r} has no jobs (is it enabled in settings?)")
    result = None
    for job in jobs:
        keys = partition_keys_between(job.partitions_def, first_hour, end_exclusive)
        if not keys:
            continue
        result = job.execute_in_process(
            instance=instance,
            tags=range_tags(keys[0], keys[-1]),
            raise_on_error=False,
            # the run's events stay in the instance (and the UI); the terminal only gets warnings
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        if not result.success:
            return result
    if result is None:
        raise ValueError(f"no complete partition of {phase!r} between {first_hour} and {last_hour}")
    return result
