"""Dagster wiring of phase 3, online evals: every production response of the hour scored by the scorers the
settings select (``eval_scores``) and the hour's score rollups (``score_rollup_hourly``), one multi-asset over
hourly partitions; the hourly job and its schedule.

The logic lives in the plain modules next to this file (responses, scoring, rollups, scorers/, registry);
this module only turns it into an asset, a job and a schedule.

Backfills over history are a partition range in the UI (``BackfillPolicy.single_run()``: one run scores many
hours) or ``obs-pipelines run online_evals --start --end``. An hour whose spans, feedback and scorer selection
are unchanged since it was scored (``eval_hours``) is skipped unread; otherwise it keeps the scores it has for
the current scorer versions, so a second backfill of a scored range computes nothing and a new or changed
scorer gets exactly its own rows (tag a run ``obs_pipelines/rescore=true`` to score everything again). An hour that
fails is reported with its reason while the other hours of the range are written and reported; the run's log
shows progress (hours done, responses scored, rate, ETA).
"""

import json
import time
from datetime import timedelta

import dagster as dg
import pandas as pd

from obs_pipelines.hours import hour_key
from obs_pipelines.markdown import escape_markdown
from obs_pipelines.online_evals import clusters, failing_inputs, rollups, score_store, scoring, unchanged
from obs_pipelines.online_evals.tables import (
    TABLE_COLUMNS,
    eval_hours,
    eval_results,
    eval_scores,
    failure_clusters_daily,
    judge_calls,
    online_evals_metadata,
    score_rollup_daily,
    score_rollup_hourly,
)
from obs_pipelines.orchestration.metadata import table_spec
from obs_pipelines.orchestration.partitions import (
    DAY_KEY_FORMAT,
    daily_partitions,
    hourly_partitions,
    rescore_requested,
)
from obs_pipelines.orchestration.phase_jobs import build_phase_jobs, job_names
from obs_pipelines.orchestration.raw_assets import SPANS
from obs_pipelines.orchestration.reporting import PartitionReport, emit
from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.orchestration.windows import DAY, HOUR, run_window, windows
from obs_pipelines.pricing import load_prices
from obs_pipelines.scorers.pii import scrub
from obs_pipelines.settings import Settings
from obs_pipelines.store import db, fingerprints

GROUP = "online_evals"
HOURLY_JOB, DAILY_JOB = job_names(GROUP)  # online_evals_hourly_job, online_evals_daily_job
# runs over the same hours queue on one slot: a schedule tick and a backfill never rewrite an hour together
HOURLY_POOL = "online_evals_hourly"
DAILY_POOL = "online_evals_daily"
SCHEDULE_MINUTE = 30  # after monitoring (:10) and with late spans of the hour mostly in
PREVIEW_ROWS = 10

DESCRIPTIONS = {
    eval_scores.name: "Every production response of the hour (root spans, and the span kinds the settings' rules "
                      "name) scored by the scorers the rules select: one row per (response, scorer, scorer version), "
                      "with the score in [0, 1], passed against the rule's threshold, details, or the error of a "
                      "scorer that failed on it. Rows of the current scorer versions are kept across runs.",
    score_rollup_hourly.name: "Scores per hour and scorer, overall and by route, model and prompt version: "
                              "responses, scored, nulls, errors, mean, p10, p50, share below the threshold; user "
                              "feedback (feedback table) as feedback:<name> rows.",
}


def _score_figures(hour: scoring.HourScores, written: int | None) -> dict:
    figures: dict = {
        "rows": written if written is not None else len(hour.frame),
        "responses": hour.responses,
        "scored_now": hour.scored,
        "kept": hour.kept,
        "scorer_errors": hour.errors,
        "unchanged": hour.unchanged,
        "seconds": round(hour.seconds, 3),
    }
    for name, values in sorted(hour.by_scorer.items()):
        figures[f"mean/{name}"] = float(sum(values) / len(values))
    return figures


def _rollup_figures(rollup: pd.DataFrame, rows: int) -> dict:
    figures: dict = {"rows": rows, **rollups.headline(rollup)}
    if not rollup.empty:
        overall = rollup[rollup["dimension"] == "overall"]
        shown = overall[["scorer", "response_count", "scored_count", "mean_score", "p10_score",
                         "below_threshold_share", "error_count"]].head(PREVIEW_ROWS)
        figures["preview"] = dg.MetadataValue.json(shown.astype(object).where(shown.notna(), None).to_dict("records"))
    return figures


def _report_current(report: PartitionReport, engine, key: str, start, end, current: dict) -> None:
    """An hour left as it was: its figures from what is stored (eval_hours, the rollup's overall means)."""
    means = rollups.stored_means(engine, start, end)
    report.add(eval_scores.name, key, {"rows": int(current["score_rows"]), "responses": int(current["responses"]),
                                       "scored_now": 0, "kept": int(current["score_rows"]), "scorer_errors": 0,
                                       "unchanged": True, **means})
    report.add(score_rollup_hourly.name, key, {"unchanged": True, **means})


class _Progress:
    """Hours done, responses scored, rate and ETA of a run over many hours, logged every few seconds."""

    def __init__(self, context: dg.AssetExecutionContext, hours: int):
        self.context, self.hours, self.done, self.responses = context, hours, 0, 0
        self.began = self.last = time.monotonic()

    def step(self, responses: int) -> None:
        self.done += 1
        self.responses += responses
        now = time.monotonic()
        if now - self.last < 5 and self.done < self.hours:
            return
        self.last = now
        elapsed = max(now - self.began, 1e-9)
        eta = (self.hours - self.done) * elapsed / self.done
        self.context.log.info(f"online evals: {self.done}/{self.hours} hours, {self.responses} responses, "
                              f"{self.responses / elapsed:.0f} responses/s, ETA {timedelta(seconds=round(eta))}")


def build_scoring(settings: Settings, hourly: dg.HourlyPartitionsDefinition) -> dg.AssetsDefinition:
    freshness = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3), warn_window=timedelta(hours=2))
    specs = [
        table_spec(eval_scores, TABLE_COLUMNS[eval_scores.name], group=GROUP, deps=[SPANS], freshness=freshness,
                   description=DESCRIPTIONS[eval_scores.name]),
        table_spec(score_rollup_hourly, TABLE_COLUMNS[score_rollup_hourly.name], group=GROUP, freshness=freshness,
                   deps=[eval_scores.name], description=DESCRIPTIONS[score_rollup_hourly.name]),
    ]
    assets = [spec.key.to_user_string() for spec in specs]
    config = settings.online_evals

    @dg.multi_asset(
        name="online_evals_hourly",
        specs=specs,
        partitions_def=hourly,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=HOURLY_POOL,
    )
    def online_evals_hourly(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        # None without an endpoint: judge scorers give null scores; the judge's cost from the same price table
        # as the app's calls (genai-prices plus the settings' price_overrides) unless priced by hand
        judge_client = config.judge.client(load_prices(settings.price_overrides))
        scorers = scoring.scorers_for(config, judge_client)
        rescore = rescore_requested(context.run.tags)
        report = PartitionReport()
        report.common[eval_scores.name] = {"scorers": sorted(f"{n}@{s.fingerprint}" for n, s in scorers.items()),
                                           "rules": [r.name for r in config.rules]}
        selection = scoring.selection_hash(config, scorers)
        run_start, run_end = run_window(context)
        progress = _Progress(context, int((run_end - run_start) / HOUR))
        db.create_tables(engine, online_evals_metadata)  # (and any of ours a store migrated earlier lacks)
        for start, end in windows(run_start, run_end, HOUR):
            key = hour_key(start)
            try:
                inputs = scoring.hour_inputs(engine, start, end)
                current = None if rescore else scoring.hour_is_current(engine, start, selection, inputs)
                if current is not None:  # scored with the same selection from the same spans and feedback
                    _report_current(report, engine, key, start, end, current)
                    progress.step(0)
                    continue
                stored = None if rescore else scoring.stored_scores(engine, start, end)
                hour = scoring.score_hour(engine, start, end, config, scorers, stored, rescore)
                rollup = rollups.score_rollup(hour.frame, rollups.read_feedback(engine, start, end), start, end)
                frames = {score_rollup_hourly: rollup,
                          eval_hours: scoring.hour_record(start, end, selection, inputs, hour)}
                if not hour.unchanged:
                    frames.update(score_store.frames(engine, hour.frame))  # eval_scores: a view over these
                    calls = None if rescore else scoring.stored_judge_calls(engine, start, end)
                    frames[judge_calls] = scoring.judge_frame(hour, calls, start, end)
                written = db.replace_windows(engine, start, end, frames)
            except Exception as exc:  # noqa: BLE001 - one bad hour must not stop the others of a backfill
                context.log.error(f"online evals: hour {key} failed: {type(exc).__name__}: {exc}")
                report.refuse(key, [f"{type(exc).__name__}: {exc}"[:500]])
                progress.step(0)
                continue
            report.add(eval_scores.name, key, _score_figures(hour, written.get(eval_results.name)))
            report.add(score_rollup_hourly.name, key, _rollup_figures(rollup, written[score_rollup_hourly.name]))
            progress.step(hour.responses)
        if judge_client is not None:
            judge_client.close()
        yield from emit(context, report, assets)

    return online_evals_hourly


def build_daily_rollup(settings: Settings, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    # Dagster's eager condition: a day once its hours are scored, again when an hour of it is re-scored
    spec = table_spec(score_rollup_daily, TABLE_COLUMNS[score_rollup_daily.name], group=GROUP,
                      deps=[eval_scores.name], automation_condition=dg.AutomationCondition.eager(),
                      freshness=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=27),
                                                               warn_window=timedelta(hours=25)),
                      description="Scores per day and scorer, overall and by route, model and prompt version, "
                                  "recomputed from the day's eval_scores (exact percentiles); feedback alongside.")

    @dg.multi_asset(name="online_evals_daily", specs=[spec], partitions_def=daily,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False, pool=DAILY_POOL)
    def online_evals_daily(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        report = PartitionReport()
        days = list(windows(*run_window(context), DAY))
        skips = _day_skips(context, engine, score_rollup_daily.name, [s for s, _ in days], salt=None)
        for start, end in days:
            if skips.unchanged(start):  # its hours' scores and its feedback are those it was computed from
                report.add(score_rollup_daily.name, start.strftime(DAY_KEY_FORMAT), _stored_figures(skips, start))
                continue
            rollup = rollups.daily_rollup(engine, start, end)
            rows = db.replace_window(engine, score_rollup_daily, start, end, rollup)
            figures = _rollup_figures(rollup, rows)
            skips.record({start: _plain(figures)})
            report.add(score_rollup_daily.name, start.strftime(DAY_KEY_FORMAT), figures)
        yield from emit(context, report, [score_rollup_daily.name])

    return online_evals_daily


def _day_skips(context: dg.AssetExecutionContext, engine, step: str, starts: list, salt) -> fingerprints.WindowSkips:
    """The days of the run whose inputs are those their stored output was computed from (issue 23); none with
    the rescore tag."""
    force = rescore_requested(context.run.tags)
    return fingerprints.WindowSkips(engine, step, unchanged.day_fingerprints(engine, starts, salt), force=force)


_KEPT_METADATA = {dg.MarkdownMetadataValue: dg.MetadataValue.md, dg.TextMetadataValue: dg.MetadataValue.text,
                  dg.JsonMetadataValue: dg.MetadataValue.json}


def _plain(figures: dict) -> str:
    """A day's figures as JSON, kept with its fingerprint: an unchanged day's materialization repeats them."""
    kept: dict = {}
    for key, value in figures.items():
        if isinstance(value, int | float | str | bool) or value is None:
            kept[key] = value
        elif type(value) in _KEPT_METADATA:
            kept[key] = {"metadata": type(value).__name__, "value": value.value}
    return json.dumps(kept, default=str)


def _stored_figures(skips: fingerprints.WindowSkips, start) -> dict:
    by_name = {kind.__name__: make for kind, make in _KEPT_METADATA.items()}
    figures = {key: by_name[value["metadata"]](value["value"]) if isinstance(value, dict) else value
               for key, value in json.loads(skips.outcome(start) or "{}").items()}
    return {**figures, "unchanged": True}


def _cluster_figures(frame: pd.DataFrame, requests: pd.DataFrame) -> dict:
    failing = int(requests["failing"].sum()) if not requests.empty else 0
    figures: dict = {"clusters": len(frame), "failing_requests": failing, "requests": len(requests)}
    if frame.empty:
        return figures
    top = frame.iloc[0]
    figures.update({"top_cluster_failure_share": float(top["failure_share"]),
                    "top_cluster_lift": float(top["lift"]) if pd.notna(top["lift"]) else None,
                    "top_cluster": dg.MetadataValue.text(str(top["label"]))})
    lines = ["| cluster | share of failures | share of traffic | lift | top route | exemplar |", "|---|---|---|---|---|---|"]
    for row in frame.head(PREVIEW_ROWS).itertuples(index=False):
        exemplar = (json.loads(row.exemplar_inputs) or [""])[0]
        lines.append(f"| {escape_markdown(row.label)} | {row.failure_share:.0%} | {row.traffic_share:.1%} | "
                     f"{row.lift:.1f} | {escape_markdown(str(row.top_route))} | {escape_markdown(exemplar[:80])} |")
    figures["clusters_preview"] = dg.MetadataValue.md("\n".join(lines))
    return figures


def build_failure_clusters(settings: Settings, daily: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    config = settings.online_evals.clusters
    spec = table_spec(failure_clusters_daily, TABLE_COLUMNS[failure_clusters_daily.name], group=GROUP,
                      deps=[eval_scores.name], automation_condition=dg.AutomationCondition.eager(),
                      description="Clusters of the day's failing requests (a score below its rule's threshold, or "
                                  "negative feedback) by input text (TF-IDF, LSA, k-means; docs/online_evals.md), "
                                  "each with its share of the failures and of the traffic, its distinctive terms and "
                                  "exemplars: which kinds of question the app fails on.")

    @dg.multi_asset(name="online_evals_failure_clusters", specs=[spec], partitions_def=daily,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False, pool=DAILY_POOL)
    def online_evals_failure_clusters(context: dg.AssetExecutionContext, trace_store: TraceStore):
        engine = trace_store.engine
        report = PartitionReport()
        db.create_tables(engine, online_evals_metadata)  # (a store migrated before this table existed)
        days = list(windows(*run_window(context), DAY))
        skips = _day_skips(context, engine, failure_clusters_daily.name, [s for s, _ in days],
                           salt=[repr(config.options()), config.negative_feedback_max])
        for start, end in days:
            if skips.unchanged(start):  # the day's scores, spans and feedback are those it was clustered from
                report.add(failure_clusters_daily.name, start.strftime(DAY_KEY_FORMAT), _stored_figures(skips, start))
                continue
            requests = failing_inputs.read_day_requests(engine, start, end, config.negative_feedback_max)
            frame = clusters.cluster_failures(requests, config.options(), scrub=scrub)
            frame = frame.assign(window_start=start, window_end=end, computed_at=db.utcnow())
            rows = db.replace_window(engine, failure_clusters_daily, start, end, frame)
            figures = {"rows": rows, **_cluster_figures(frame, requests)}
            skips.record({start: _plain(figures)})
            report.add(failure_clusters_daily.name, start.strftime(DAY_KEY_FORMAT), figures)
        yield from emit(context, report, [failure_clusters_daily.name])

    return online_evals_failure_clusters


def build_automation(scoring_asset: dg.AssetsDefinition, daily_asset: dg.AssetsDefinition,
                     clusters_asset: dg.AssetsDefinition | None = None) -> dg.Definitions:
    return build_phase_jobs(
        GROUP,
        hourly_assets=[scoring_asset],
        hourly_description="Each hour: score its production responses with the selected scorers, then roll the "
                           "scores up.",
        daily_assets=[daily_asset] + ([clusters_asset] if clusters_asset is not None else []),
        daily_description="Daily score rollups and clusters of failing inputs from the day's eval_scores (the "
                          "automation sensor runs it when a day is scored).",
        schedule_minute=SCHEDULE_MINUTE,
        schedule_description=f"Scores each hour {SCHEDULE_MINUTE} minutes after it closes.",
        automation_description="Materializes each day's score rollup once its hours are scored, and again after a "
                               "re-score.",
    ).definitions()


# the phase's jobs in the order `obs-pipelines run online_evals` runs them
JOBS = (HOURLY_JOB, DAILY_JOB)


def build_defs(settings: Settings) -> dg.Definitions:
    hourly, daily = hourly_partitions(settings), daily_partitions(settings)
    scoring_asset = build_scoring(settings, hourly)
    daily_asset = build_daily_rollup(settings, daily)
    clusters_asset = build_failure_clusters(settings, daily) if settings.online_evals.clusters.enabled else None
    return dg.Definitions.merge(
        dg.Definitions(assets=[scoring_asset, daily_asset] + ([clusters_asset] if clusters_asset else [])),
        build_automation(scoring_asset, daily_asset, clusters_asset),
    )
