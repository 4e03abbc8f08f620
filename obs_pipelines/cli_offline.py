"""`obs-pipelines dataset ...` and `obs-pipelines eval ...`: regression datasets, experiments and the CI gate
(phase 4, docs/offline_evals.md). Two click groups, `dataset_group` and `eval_group`, registered by cli.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from obs_pipelines.settings import Settings, SettingsError, load_settings
from obs_pipelines.store import db


def _console() -> Console:
    """A console per command: rich reads the width (COLUMNS) when it is made, not at import."""
    return Console()


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(settings: Settings):
    engine = db.make_engine(settings.db_url)
    try:
        db.create_tables(engine)
    except sa.exc.OperationalError as exc:  # the store is down or the URL is wrong: one line
        shown = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise click.ClickException(f"cannot reach the trace store at {shown}: {reason}") from None
    return engine


def _lock_path(lock: str | None) -> Path:
    from obs_pipelines.offline_evals.datasets import find_lock

    return Path(lock) if lock else find_lock()


_LOCK = click.option("--lock", "lock", default=None,
                     help="Lock file (default: obs_datasets.lock at the root of the git repository here).")


def _resolve(engine, name: str, version: str | None, lock: str | None) -> tuple[str, list[dict]]:
    """Cases of NAME at VERSION, else at the version the lock file pins, else the latest."""
    from obs_pipelines.offline_evals import datasets

    try:
        return datasets.load_version(engine, name, version or datasets.pinned_version(_lock_path(lock), name))
    except datasets.DatasetError as exc:
        raise click.ClickException(str(exc)) from None


# ---- dataset ---------------------------------------------------------------------------------------------------
@click.group("dataset")
def dataset_group() -> None:
    """Regression datasets curated from production: list, export, pin, import."""


@dataset_group.command("list")
@click.argument("name", required=False)
def dataset_list(name: str | None) -> None:
    """Versions of every dataset (or of NAME), newest first."""
    from obs_pipelines.offline_evals import datasets

    frame = datasets.versions(_engine(_settings()), name)
    table = Table(Column("dataset", no_wrap=True), Column("version", no_wrap=True), "cases", "tags", "source",
                  "last built (UTC)")
    for r in frame.itertuples():
        table.add_row(r.dataset, r.version, str(r.case_count), r.tag_counts or "", r.source or "",
                      str(r.last_built_at)[:19])
    _console().print(table if len(frame) else "no dataset versions yet")


@dataset_group.command("export")
@click.argument("name")
@click.option("--version", default=None, help="Version (a unique prefix is enough); default: the pinned one, "
                                               "else the latest.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="JSONL file to write.")
@_LOCK
def dataset_export(name: str, version: str | None, output: str, lock: str | None) -> None:
    """Write a dataset version as JSONL, one case a line."""
    from obs_pipelines.offline_evals import datasets

    found, cases = _resolve(_engine(_settings()), name, version, lock)
    n = datasets.export_jsonl(cases, Path(output))
    _console().print(f"{name}@{found}: {n} cases -> {output}", highlight=False)


@dataset_group.command("pin")
@click.argument("name")
@click.option("--version", default=None, help="Version to pin (default: the latest).")
@_LOCK
def dataset_pin(name: str, version: str | None, lock: str | None) -> None:
    """Pin NAME's version in obs_datasets.lock: `eval run` and `dataset export` then use it on this branch."""
    from obs_pipelines.offline_evals import datasets

    engine = _engine(_settings())
    try:
        found, cases = datasets.load_version(engine, name, version)
    except datasets.DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    path = _lock_path(lock)
    datasets.write_lock(path, name, found, len(cases))
    _console().print(f"pinned {name}@{found} ({len(cases)} cases) in {path}", highlight=False)


@dataset_group.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--scrub/--no-scrub", default=True, show_default=True, help="Replace PII by typed placeholders.")
def dataset_import(name: str, path: str, scrub: bool) -> None:
    """Store a JSONL file (one object a line with at least `input`) as a version of NAME."""
    from obs_pipelines.offline_evals import datasets

    try:
        cases = datasets.read_jsonl(Path(path), scrub_pii=scrub)
    except datasets.DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    version, created = datasets.save_version(_engine(_settings()), name, cases, f"import:{Path(path).name}")
    state = "new version" if created else "unchanged, same version"
    _console().print(f"{name}@{version}: {len(cases)} cases ({state})", highlight=False)


# ---- eval --------------------------------------------------------------------------------------------------------
@click.group("eval")
def eval_group() -> None:
    """Experiments on regression datasets, their comparison, and the CI gate."""


def _split_names(values: tuple[str, ...]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


@eval_group.command("run")
@click.option("--dataset", "dataset_ref", required=True, help="NAME or NAME@VERSION (default version: the "
                                                              "pinned one, else the latest).")
@click.option("--task", required=True, help="module:function called with each case's input.")
@click.option("--scorers", multiple=True, required=True,
              help="Scorer names (online_evals registry) or module:attribute, comma-separated or repeated.")
@click.option("--concurrency", type=int, default=None, help="Task calls in flight (default: settings).")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds per call (default: settings).")
@click.option("--name", default=None, help="A name for the experiment.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@_LOCK
def eval_run(dataset_ref: str, task: str, scorers: tuple[str, ...], concurrency: int | None,
             timeout_s: float | None, name: str | None, progress: bool, lock: str | None) -> None:
    """Run TASK on every case of a dataset version, score it, store the experiment with the git state."""
    from obs_pipelines.offline_evals import experiments
    from obs_pipelines.offline_evals.defs import report_experiment
    from obs_pipelines.orchestration.local_runs import local_instance

    settings = _settings()
    cfg = settings.offline_evals
    engine = _engine(settings)
    dataset, _, version = dataset_ref.partition("@")
    found, cases = _resolve(engine, dataset, version or None, lock)
    try:
        fn = experiments.load_callable(task)
        options = getattr(getattr(settings, "online_evals", None), "scorer_options", None)
        loaded = experiments.load_scorers(_split_names(scorers), options)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    with Progress(TextColumn(f"{dataset}@{found}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(), disable=not progress) as bar:
        tracker = bar.add_task("cases", total=len(cases))
        exp = experiments.run_experiment(
            dataset, found, cases, fn, task, loaded, concurrency=concurrency or cfg.concurrency,
            timeout_s=timeout_s or cfg.timeout_s, error_score=cfg.error_score, name=name,
            progress=lambda n: bar.advance(tracker, n))
    experiments.save_experiment(engine, exp)
    report_experiment(local_instance(), exp)
    table = Table("scorer", "version", "mean")
    for scorer, mean in exp.mean_scores().items():
        table.add_row(scorer, exp.scorers[scorer], "–" if mean is None else f"{mean:.3f}")
    _console().print(table)
    git = exp.git
    where = f"{git.branch}@{git.commit[:10]}{' (dirty)' if git.dirty else ''}" if git.commit else "no git repository"
    _console().print(f"experiment {exp.experiment_id}: {len(exp.results)} cases, {exp.error_count} errors, {where}",
                  highlight=False)


def _baseline_for(engine, candidate: dict, main_branch: str) -> str | None:
    from obs_pipelines.offline_evals import experiments

    found = experiments.list_experiments(engine, candidate["dataset"], main_branch)
    found = found[found["experiment_id"] != candidate["experiment_id"]]
    return None if found.empty else str(found["experiment_id"].iloc[0])


def _comparison(engine, settings: Settings, candidate_id: str | None, baseline_id: str | None,
                tolerance: float | None, confidence: float | None, dataset: str | None):
    """(comparison or None when there is no baseline, inputs by case id, the candidate's row)."""
    from obs_pipelines.offline_evals import compare, datasets, experiments

    cfg = settings.offline_evals
    try:
        if candidate_id is None:
            listed = experiments.list_experiments(engine, dataset)
            if listed.empty:
                raise click.ClickException("no experiment yet: `obs-pipelines eval run ...` first")
            candidate_id = str(listed["experiment_id"].iloc[0])
        candidate = experiments.get_experiment(engine, candidate_id)
        baseline_id = baseline_id or _baseline_for(engine, candidate, cfg.main_branch)
        if baseline_id is None:
            return None, {}, candidate
        baseline = experiments.get_experiment(engine, baseline_id)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if baseline["dataset_version"] != candidate["dataset_version"]:
        _console().print(f"[yellow]note: dataset versions differ ({baseline['dataset_version']} vs "
                      f"{candidate['dataset_version']}): only the cases both share are compared[/yellow]")
    scorers = sorted(set(json.loads(candidate["scorers"])) & set(json.loads(baseline["scorers"])))
    cmp = compare.compare_scores(
        experiments.experiment_scores(engine, baseline["experiment_id"]),
        experiments.experiment_scores(engine, candidate["experiment_id"]), scorers,
        tolerance=cfg.tolerance if tolerance is None else tolerance,
        confidence=cfg.confidence if confidence is None else confidence, resamples=cfg.bootstrap_resamples,
        candidate_id=candidate["experiment_id"], baseline_id=baseline["experiment_id"])
    _version, cases = datasets.load_version(engine, candidate["dataset"], candidate["dataset_version"])
    return cmp, {c["case_id"]: c["input"] for c in cases}, candidate


def _print_comparison(cmp) -> None:
    table = Table("scorer", "cases", "baseline", "candidate", "delta", f"{cmp.confidence:.0%} CI", "sign p", "verdict",
                  title=f"{cmp.candidate} vs {cmp.baseline}")
    for s in cmp.scorers:
        fmt = (lambda v, signed=False: "–" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}"))
        ci = f"[{fmt(s.ci_low, True)}, {fmt(s.ci_high, True)}]" if s.ci_low is not None else "–"
        table.add_row(s.scorer, str(s.cases), fmt(s.baseline_mean), fmt(s.candidate_mean), fmt(s.delta, True), ci,
                      "–" if s.p_value is None else f"{s.p_value:.3g}",
                      f"[red]{s.verdict}[/red]" if s.regressed else s.verdict)
    _console().print(table)
    for s in cmp.scorers:
        if s.worse:
            _console().print(f"{s.scorer}: worse on " + ", ".join(f"{w['case_id']} ({w['delta']:+.2f})" for w in s.worse),
                          highlight=False)


_TOLERANCE = click.option("--tolerance", type=float, default=None,
                          help="Drop of a mean score never counted as a regression (default: settings).")
_CONFIDENCE = click.option("--confidence", type=float, default=None, help="Confidence level (default: settings).")


@eval_group.command("compare")
@click.argument("candidate")
@click.argument("baseline", required=False)
@_TOLERANCE
@_CONFIDENCE
def eval_compare(candidate: str, baseline: str | None, tolerance: float | None, confidence: float | None) -> None:
    """Per-scorer deltas of CANDIDATE against BASELINE (default: the latest experiment of the same dataset on
    the main branch) with paired bootstrap intervals, and the cases that got worse."""
    settings = _settings()
    cmp, _inputs, _row = _comparison(_engine(settings), settings, candidate, baseline, tolerance, confidence, None)
    if cmp is None:
        raise click.ClickException(f"no baseline: no other experiment on {settings.offline_evals.main_branch}")
    _print_comparison(cmp)


@eval_group.command("gate")
@click.argument("candidate", required=False)
@click.option("--baseline", default=None, help="Baseline experiment (default: the latest on the main branch).")
@click.option("--dataset", default=None, help="Candidate = the latest experiment of this dataset.")
@_TOLERANCE
@_CONFIDENCE
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Markdown report to write.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="JUnit XML file to write.")
@click.option("--require-baseline/--allow-no-baseline", default=False, show_default=True,
              help="Fail when there is no baseline to compare with.")
def eval_gate(candidate: str | None, baseline: str | None, dataset: str | None, tolerance: float | None,
              confidence: float | None, report: str | None, junit: str | None, require_baseline: bool) -> None:
    """Exit 1 when a scorer regressed significantly against the baseline, 0 otherwise (noise passes)."""
    from obs_pipelines.offline_evals import compare

    settings = _settings()
    cmp, inputs, candidate_row = _comparison(_engine(settings), settings, candidate, baseline, tolerance, confidence,
                                             dataset)
    if cmp is None:
        text = f"no baseline experiment on {settings.offline_evals.main_branch} for {candidate_row['dataset']}"
        if report:
            Path(report).write_text(f"### Eval gate: {text}, nothing compared\n")
        _console().print(f"[yellow]{text}[/yellow]")
        sys.exit(1 if require_baseline else 0)
    _print_comparison(cmp)
    if report:
        Path(report).write_text(compare.markdown_report(cmp, inputs))
    if junit:
        Path(junit).write_text(compare.junit_xml(cmp))
    if cmp.regressed:
        _console().print(f"[red]regression: {', '.join(s.scorer for s in cmp.regressed)}[/red]")
        sys.exit(1)
    _console().print("no significant regression")


@eval_group.command("list")
@click.option("--dataset", default=None)
def eval_list(dataset: str | None) -> None:
    """Experiments, newest first."""
    from obs_pipelines.offline_evals import experiments

    frame = experiments.list_experiments(_engine(_settings()), dataset)
    table = Table(Column("experiment", no_wrap=True), Column("dataset@version", no_wrap=True), "task", "branch",
                  "commit", "cases", "errors", "mean scores")
    for r in frame.itertuples():
        table.add_row(r.experiment_id, f"{r.dataset}@{r.dataset_version}", r.task, r.git_branch or "",
                      (r.git_commit or "")[:10] + ("*" if r.git_dirty else ""), str(r.case_count),
                      str(r.error_count), r.mean_scores or "")
    _console().print(table if len(frame) else "no experiments yet")


__all__ = ["dataset_group", "eval_group"]
