"""Dagster wiring of phase 4, offline evals: the daily regression datasets and the experiments.

- ``regression_cases`` and ``dataset_versions`` (daily partitions, one multi-asset): each day the rules of
  every dataset in the settings select production traces into cases (replacing that day's rows), then the
  dataset's version as of that day is built from the last ``lookback_days`` days; its name is the content
  hash, so re-running a day whose data did not change keeps the version.
- ``experiments``: an external asset. ``obs-pipelines eval run`` records each experiment as one of its
  materializations, with the mean scores as metadata (``report_experiment``).

The logic lives in curate, datasets, experiments and compare; this module only wires it.
"""


import json

import dagster as dg

from obs_pipelines.offline_evals import curate, summary
from obs_pipelines.offline_evals.experiments import Experiment
from obs_pipelines.offline_evals.tables import TABLE_COLUMNS, dataset_versions, experiments, regression_cases
from obs_pipelines.orchestration.metadata import table_schema, table_spec
from obs_pipelines.orchestration.partitions import DAY_KEY_FORMAT, daily_partitions
from obs_pipelines.orchestration.phase_jobs import build_phase_jobs, job_names
from obs_pipelines.orchestration.raw_assets import SPANS
from obs_pipelines.orchestration.reporting import PartitionReport, emit
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import DAY, run_window, windows
from obs_pipelines.settings import Settings
from obs_pipelines.store import db

GROUP = "offline_evals"
DAILY_JOB = job_names(GROUP)[1]  # offline_evals_daily_job
DAILY_POOL = "offline_evals_daily"  # runs over the same day queue instead of replacing its cases together
EXPERIMENTS = experiments.name


def build_datasets(settings: Settings, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    rules = settings.offline_evals.datasets
    specs = [
        table_spec(regression_cases, TABLE_COLUMNS[regression_cases.name], group=GROUP, deps=[SPANS],
                   description="Cases selected each day from production by the dataset rules (errors, negative "
                               "feedback and corrections, low online eval scores, alert exemplars, agent loops, "
                               "empty retrievals): input, production output, context, expected output, tags, "
                               "trace id; PII scrubbed to typed placeholders, deduplicated (normalised input and "
                               "rapidfuzz near-duplicates)."),
        table_spec(dataset_versions, TABLE_COLUMNS[dataset_versions.name], group=GROUP, deps=[regression_cases.name],
                   description="Immutable dataset versions named by their content hash: the cases of the last "
                               "lookback_days days, deduplicated and balanced per tag up to the size cap. The "
                               "same content keeps its version; cases in dataset_version_cases."),
    ]
    assets = [spec.key.to_user_string() for spec in specs]

    @dg.multi_asset(name="offline_evals_datasets", specs=specs, partitions_def=daily,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False, pool=DAILY_POOL)
    def offline_evals_datasets(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        report = PartitionReport()
        for start, end in windows(*run_window(context), DAY):
            key = start.strftime(DAY_KEY_FORMAT)
            curated = {name: curate.curate_day(engine, start, end, r, context.log.info) for name, r in rules.items()}
            frame = summary.concat([curate.cases_frame(name, start, end, c.cases) for name, c in curated.items()])
            rows = db.replace_window(engine, regression_cases, start, end, frame)
            report.add(regression_cases.name, key, summary.curation_metadata(curated, rows))
            built = {name: curate.build_version(engine, name, r, start, end) for name, r in rules.items()}
            report.add(dataset_versions.name, key, summary.version_metadata(built))
        yield from emit(context, report, assets)

    return offline_evals_datasets


def experiments_spec() -> dg.AssetSpec:
    return dg.AssetSpec(
        EXPERIMENTS, group_name=GROUP, kinds={"sql"},
        description="Experiments of `obs-pipelines eval run`: a task run on a dataset version, scored, tied to "
                    "its git commit. Each run is one materialization with its mean scores as metadata; per-case "
                    "outputs, scores, latency and cost in experiment_results.",
        metadata={"dagster/column_schema": table_schema(TABLE_COLUMNS[EXPERIMENTS]),
                  "dagster/table_name": EXPERIMENTS},
    )


def report_experiment(instance: dg.DagsterInstance, exp: Experiment) -> None:
    """Record an experiment (run outside Dagster, by the CLI) as a materialization of ``experiments``."""
    metadata: dict = {f"score/{name}": float(v) for name, v in exp.mean_scores().items() if v is not None}
    metadata.update({
        "experiment_id": exp.experiment_id, "dataset": exp.dataset, "dataset_version": exp.dataset_version,
        "task": exp.task, "cases": len(exp.results), "errors": exp.error_count,
        "git_commit": exp.git.commit or "(none)", "git_branch": exp.git.branch or "(none)",
        "git_dirty": bool(exp.git.dirty), "scorer_versions": dg.MetadataValue.json(dict(exp.scorers)),
        "duration_s": (exp.finished_at - exp.started_at).total_seconds(),
    })
    latencies = [r.latency_ms for r in exp.results if r.latency_ms is not None]
    costs = [r.cost_usd for r in exp.results if r.cost_usd is not None]
    if latencies:
        metadata["mean_latency_ms"] = sum(latencies) / len(latencies)
    if costs:
        metadata["total_cost_usd"] = float(sum(costs))
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=EXPERIMENTS, metadata=metadata,
        tags={"obs_pipelines/dataset": exp.dataset, "obs_pipelines/git_commit": exp.git.commit or ""},
        description=json.dumps({"experiment_id": exp.experiment_id}),
    ))


def build_automation(settings: Settings, datasets_asset: dg.AssetsDefinition) -> dg.Definitions:
    return build_phase_jobs(
        GROUP,
        daily_assets=[datasets_asset],
        daily_description="Each day: the regression cases of the day, then every dataset's version.",
        schedule_hour=1,
        schedule_minute=settings.schedule_delay_minutes,
        schedule_description="Curates each day's regression cases at 01:xx UTC, when online scores and alerts of "
                             "the day are in.",
    ).definitions()


# the phase's jobs in the order `obs-pipelines run offline_evals` runs them
JOBS = (DAILY_JOB,)


def build_defs(settings: Settings) -> dg.Definitions:
    daily = daily_partitions(settings)
    datasets_asset = build_datasets(settings, daily)
    return dg.Definitions.merge(
        dg.Definitions(assets=[datasets_asset, experiments_spec()]),
        build_automation(settings, datasets_asset),
    )
