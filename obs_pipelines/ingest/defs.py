"""Dagster wiring of ingest: a job that ingests one landed file, and the landing-directory sensor."""

import dagster as dg

from obs_pipelines.ingest.landing import scan_landing_dir
from obs_pipelines.store.resource import TraceStore


class IngestFileConfig(dg.Config):
    path: str
    sha256: str = ""


@dg.op(description="Ingest one OTLP file (JSON lines, JSON, gzip or protobuf) into the spans table.")
def ingest_landed_file(
    context: dg.OpExecutionContext, config: IngestFileConfig, trace_store: TraceStore
) -> dg.Output[dict]:
    from obs_pipelines.ingest.runner import ingest_file

    summary = ingest_file(trace_store.engine, config.path)
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
    return dg.Output(figures, metadata={**figures, "path": config.path, "sha256": config.sha256})


@dg.job(
    description="Ingest one landed OTLP file. Launched by the landing-directory sensor, once per file content."
)
def ingest_file_job():
    ingest_landed_file()


def build_landing_sensor(landing_dir: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_dir_sensor",
        job=ingest_file_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Launches one ingest run per new file in {landing_dir} (run_key = content hash).",
    )
    def landing_dir_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        new_files, cursor = scan_landing_dir(landing_dir, context.cursor)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"ingest:{f.sha256}",
                    run_config=dg.RunConfig(
                        ops={"ingest_landed_file": IngestFileConfig(path=f.path, sha256=f.sha256)}
                    ),
                    tags={"obs_pipelines/file": f.path},
                )
                for f in new_files
            ],
            cursor=cursor,
        )

    return landing_dir_sensor
