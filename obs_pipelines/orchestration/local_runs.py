"""Run a phase's jobs in this process over a time range (the CLI's `run` and `demo` use it).

Runs are recorded in the local Dagster instance (DAGSTER_HOME, else ./dagster.yaml if present) so
`dagster dev` shows them afterwards; with neither, an ephemeral instance is used.

Pools (dagster.yaml: one slot per asset family) must never make a local run hang:
- a local run records its host, process id and the process's start time in its tags; before a job starts,
  the slots (and pending claims) held by local runs of this host whose process is gone (kill -9, OOM) are
  freed and those runs marked failed, and so are the slots of runs that already ended;
- a pool whose slots are all held by live runs stops the job before it starts, with a `PoolBusy` naming the
  pool and the runs (the CLI prints it in one line), instead of a step waiting for a slot without end.
Under the daemon the instance's `run_monitoring.free_slots_after_run_end_seconds` frees the slots of runs that
ended (deploy/README.md).
"""

from __future__ import annotations

import importlib
import os
import socket
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg

from obs_pipelines.orchestration.partitions import range_tags
from obs_pipelines.settings import PHASE_MODULES


def local_instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    if Path("dagster.yaml").is_file():
        return dg.DagsterInstance.from_config(str(Path.cwd()))
    return dg.DagsterInstance.ephemeral()


HOST_TAG, PID_TAG, PROCESS_START_TAG = "obs_pipelines/local_host", "obs_pipelines/local_pid", "obs_pipelines/local_start"


class PoolBusy(RuntimeError):
    """A pool this job needs has every slot held by runs that are alive: the job would wait for them."""


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, /proc), None when there is no such process:
    a pid reused by another process has another start time."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def local_run_tags() -> dict[str, str]:
    """Tags that let a later local run tell whether this process is still alive."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_START_TAG: _process_start(pid) or ""}


def _local_process_gone(run: dg.DagsterRun) -> bool:
    tags = run.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False  # not a local run of this host: its owner (the daemon, another host) looks after it
    start = _process_start(int(tags[PID_TAG]))
    return start is None or start != tags.get(PROCESS_START_TAG)


def free_slots_of_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots held (or claimed) by runs that ended, and by local runs of this host whose process
    is gone, marking those failed. The run ids freed."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    run_ids = storage.get_concurrency_run_ids()
    if not run_ids:
        return []
    freed = []
    for record in instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids))):
        run = record.dagster_run
        if not run.is_finished:  # (success, failure or canceled)
            if not _local_process_gone(run):
                continue
            instance.report_run_failed(run, "its process is gone (killed?): marked failed and its pool slots "
                                            "freed by a later local run")
        storage.free_concurrency_slots_for_run(run.run_id)
        freed.append(run.run_id)
    return freed


def check_pools(instance: dg.DagsterInstance, job: dg.JobDefinition) -> None:
    """Raise PoolBusy when a pool of ``job`` has no free slot (every one held by a live run)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    for pool in sorted(job.graph.pools):
        info = storage.get_concurrency_info(pool)
        if info.limit is not None and info.active_slot_count >= info.limit:
            holders = ", ".join(sorted(info.active_run_ids))
            raise PoolBusy(f"pool {pool} has no free slot (limit {info.limit}): held by run(s) {holders}; "
                           f"{job.name} would wait for them. Run it again once they end (`dagster dev` shows them).")


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
    defs: dg.Definitions,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """One run per job of the phase in ``defs`` (the code location's definitions: the caller builds them)
    covering every partition from first_hour to last_hour inclusive; the last run's result (or the first that
    failed). Raises PoolBusy instead of waiting for a pool slot."""
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
        free_slots_of_dead_runs(instance)
        check_pools(instance, job)
        result = job.execute_in_process(
            instance=instance,
            tags={**range_tags(keys[0], keys[-1]), **local_run_tags()},
            raise_on_error=False,
            # the run's events stay in the instance (and the UI); the terminal only gets warnings
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        if not result.success:
            return result
    if result is None:
        raise ValueError(f"no complete partition of {phase!r} between {first_hour} and {last_hour}")
    return result
