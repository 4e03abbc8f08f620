"""Dagster wiring of ingest: a job that ingests one landed file, and the landing-directory sensor.

The decisions (which file is ready, which attempt to request, where a file goes) are in `landing.py`;
this module only reads the clock, the filesystem and the instance's run statuses, and launches runs.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from obs_pipelines.ingest.landing import (
    FAILED_DIR,
    FAILURE,
    PENDING,
    SUCCESS,
    LandingPolicy,
    archive_file,
    dump_cursor,
    load_cursor,
    outcome_dir,
    path_hex,
    path_text,
    plan_requests,
    running_run_keys,
    scan_ready_files,
    summarize,
)
from obs_pipelines.orchestration.resource import TraceStore

RUN_KEY_TAG = "obs_pipelines/run_key"  # our own copy of the run key: the run's outcome is looked up by it
FILE_TAG = "obs_pipelines/file"


class IngestFileConfig(dg.Config):
    path: str
    sha256: str = ""
    # set by the sensor: after a successful ingest, move the file below this directory's processed/ or failed/
    landing_dir: str = ""
    archive: bool = False
    # the name's exact bytes when it is not UTF-8 (`path` then shows it with escapes; landing.path_text)
    path_hex: str = ""

    def local_path(self) -> str:
        return os.fsdecode(bytes.fromhex(self.path_hex)) if self.path_hex else self.path


def _reject_reasons(engine: sa.Engine, source: str, limit: int = 5) -> list[str]:
    from obs_pipelines.store.schema import ingest_rejects

    query = (
        sa.select(ingest_rejects.c.location, ingest_rejects.c.reason)
        .where(ingest_rejects.c.source == source)
        .order_by(ingest_rejects.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [f"{location}: {reason}" for location, reason in conn.execute(query)]


@dg.op(description="Ingest one OTLP file (JSON lines, JSON, gzip or protobuf) into the spans table.")
def ingest_landed_file(
    context: dg.OpExecutionContext, config: IngestFileConfig, trace_store: TraceStore
) -> dg.Output[dict]:
    from obs_pipelines.ingest.runner import ingest_file
    from obs_pipelines.settings import load_settings

    path = config.local_path()
    if config.archive and not Path(path).exists():
        # an earlier attempt (or a Dagster re-execution) already ingested and moved it
        context.log.warning(f"{config.path} is no longer in the landing directory; nothing to do")
        return dg.Output({}, metadata={"path": config.path, "sha256": config.sha256, "moved_to": "(gone)"})
    summary = ingest_file(trace_store.engine, path, limits=load_settings().ingest_limits)
    context.log.info(
        f"{config.path}: read {summary.read}, stored {summary.stored}, "
        f"duplicate {summary.duplicate}, rejected {summary.rejected}"
    )
    if summary.rejected:
        context.log.warning(f"{summary.rejected} records rejected; see the ingest_rejects table")
    figures = {
        "read": summary.read,
        "stored": summary.stored,
        "duplicate": summary.duplicate,
        "rejected": summary.rejected,
    }
    metadata: dict = {**figures, "path": config.path, "sha256": config.sha256}
    if config.archive and config.landing_dir:
        subdir = outcome_dir(summary.stored, summary.duplicate, summary.rejected)
        reason = None
        if subdir == FAILED_DIR:
            reasons = _reject_reasons(trace_store.engine, config.path)
            reason = "\n".join(
                [f"nothing could be read: {summary.rejected} records rejected (table ingest_rejects)", *reasons]
            )
        dest = archive_file(config.landing_dir, path, subdir, reason)
        context.log.info(f"moved {config.path} to {path_text(dest)}")
        metadata["moved_to"] = path_text(dest)
    return dg.Output(figures, metadata=metadata)


@dg.job(
    description="Ingest one landed OTLP file. Launched by the landing-directory sensor, once per file content "
    "(plus bounded retries of a failed run).",
    # run monitoring fails a run whose worker died once it exceeds this (an ingest takes seconds to minutes),
    # so the landing sensor can retry the file long before the instance-wide bound
    tags={"dagster/max_runtime": "3600"},
)
def ingest_file_job():
    ingest_landed_file()


def _run_outcome(instance: dg.DagsterInstance, run_key: str) -> str | None:
    """SUCCESS / FAILURE / PENDING of the newest run launched under run_key (a Dagster run retry carries
    the tags over, so it counts), None when the instance has no such run."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    if not runs:
        return None
    run = runs[0]
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return SUCCESS
    if run.status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return PENDING if run.is_complete_and_waiting_to_retry else FAILURE
    return PENDING


def build_landing_sensor(
    landing_dir: str, policy: LandingPolicy | None = None, clock: Callable[[], float] = time.time
) -> dg.SensorDefinition:
    """The sensor over `landing_dir`. Without a policy, the landing_* settings are read (OBS_PIPELINES_CONFIG)."""
    if policy is None:
        from obs_pipelines.settings import load_settings

        policy = LandingPolicy.from_settings(load_settings())

    @dg.sensor(
        name="landing_dir_sensor",
        job=ingest_file_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Launches one ingest run per new file in {landing_dir} once it has been quiet for "
            f"{policy.quiet_seconds:g} s or has a <name>.done marker; retries a failed run up to "
            f"{policy.max_attempts} attempts with backoff"
            + ("; ingested files move to processed/ (unreadable ones to failed/)." if policy.archive else ".")
        ),
    )
    def landing_dir_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        now = clock()
        state = load_cursor(context.cursor)
        ready, waiting = scan_ready_files(landing_dir, state["files"], now, policy.quiet_seconds)
        outcomes = {}
        for key in running_run_keys(state):
            outcome = _run_outcome(context.instance, key)
            if outcome is not None:
                outcomes[key] = outcome
        requests, state, notes = plan_requests(state, ready, outcomes, now, policy)
        for note in notes:
            context.log.warning(note)
        cursor = dump_cursor(state)
        if not requests:
            return dg.SensorResult(skip_reason=summarize(state, waiting, now), cursor=cursor)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f.run_key,
                    run_config=dg.RunConfig(
                        ops={
                            "ingest_landed_file": IngestFileConfig(
                                path=path_text(f.path), path_hex=path_hex(f.path), sha256=f.sha256,
                                landing_dir=str(landing_dir), archive=policy.archive
                            )
                        }
                    ),
                    tags={FILE_TAG: path_text(f.path), RUN_KEY_TAG: f.run_key, "obs_pipelines/attempt": str(f.attempt)},
                )
                for f in requests
            ],
            cursor=cursor,
        )

    return landing_dir_sensor
