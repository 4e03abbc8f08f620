"""`obs-pipelines dataset ...` and `obs-pipelines eval ...`: regression datasets, experiments and the CI gate
(phase 4, docs/offline_evals.md). Two click groups, `dataset_group` and `eval_group`, registered by cli.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from sqlalchemy import exc as sa_exc

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
    except sa_exc.OperationalError as exc:  # the store is down or the URL is wrong: one line
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
        # text columns of dataset_versions (tag_counts and source nullable)
        table.add_row(cast(str, r.dataset), cast(str, r.version), str(r.case_count),
                      cast("str | None", r.tag_counts) or "", cast("str | None", r.source) or "",
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
@click.option("--encoding", default=None, help="Encoding of the file (default: UTF-8, a byte-order mark skipped; "
                                               "a line that is not UTF-8 is rejected).")
@click.option("--max-line-bytes", type=int, default=None, help="Longer lines are rejected (default: 16 MiB).")
@click.option("--rejects", "rejects_path", type=click.Path(dir_okay=False), default=None,
              help="Write every rejected line (line number, reason) to this JSONL file.")
def dataset_import(name: str, path: str, scrub: bool, encoding: str | None, max_line_bytes: int | None,
                   rejects_path: str | None) -> None:
    """Store a JSONL file (one object a line with at least `input`) as a version of NAME; bad lines are
    rejected with their reason, merges of cases with one identity are reported."""
    from obs_pipelines.offline_evals import datasets, importing

    engine = _engine(_settings())
    try:
        if encoding:
            "".encode(encoding)  # an unknown codec is a usage error, not a reject on every line
        version, created, report = importing.import_jsonl(
            engine, name, Path(path), scrub_pii=scrub, encoding=encoding,
            max_line_bytes=max_line_bytes or importing.MAX_LINE_BYTES, rejects_path=rejects_path)
    except LookupError:
        raise click.ClickException(f"unknown encoding {encoding!r}") from None
    except (datasets.DatasetError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    _print_import(report, rejects_path)
    if version is None:
        raise click.ClickException(f"{path}: no case imported ({report.rejected} line(s) rejected)")
    state = "new version" if created else "unchanged, same version"
    _console().print(f"{escape(name)}@{version}: {report.cases} cases from {report.lines} lines ({state}), "
                     f"{report.merged} merged, {report.rejected} rejected", highlight=False)


def _print_import(report, rejects_path: str | None) -> None:
    out = _console()
    for line, reason in report.rejects:
        out.print(f"[yellow]rejected line {line}:[/yellow] {escape(reason)}", highlight=False)
    if report.rejected > len(report.rejects):
        more = f" (all in {rejects_path})" if rejects_path else " (--rejects FILE lists them all)"
        out.print(f"... {report.rejected - len(report.rejects)} more rejected line(s){more}", highlight=False)
    for line, into, case in report.merges:
        out.print(f"merged line {line} into line {into}: same input, context and expected output (case {case})",
                  highlight=False)
    if report.merged > len(report.merges):
        out.print(f"... {report.merged - len(report.merges)} more merged line(s)", highlight=False)
    for text, lines in report.questions:
        shown = text if len(text) <= 80 else text[:80] + "…"
        out.print(f"kept apart: lines {', '.join(map(str, lines))} ask {escape(repr(shown))} with another context "
                  "or expected output", highlight=False)
    if report.shared_questions > len(report.questions):
        out.print(f"... {report.shared_questions - len(report.questions)} more questions kept apart", highlight=False)


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
    judge = experiments.judge_client(settings)  # judge scorers use the online phase's judge (None: null scores)
    experiments.bind_judge(loaded, judge)
    try:
        with Progress(TextColumn(f"{dataset}@{found}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=_console(), disable=not progress) as bar:
            tracker = bar.add_task("cases", total=len(cases))
            exp = experiments.run_experiment(
                dataset, found, cases, fn, task, loaded, concurrency=concurrency or cfg.concurrency,
                timeout_s=timeout_s or cfg.timeout_s, error_score=cfg.error_score, name=name,
                progress=lambda n: bar.advance(tracker, n))
    finally:
        if judge is not None:
            judge.close()
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


def _gate_settings(settings: Settings, tolerance: float | None, confidence: float | None):
    from obs_pipelines.offline_evals.gate import GateSettings

    cfg = settings.offline_evals
    return GateSettings(tolerance=cfg.tolerance if tolerance is None else tolerance,
                        confidence=cfg.confidence if confidence is None else confidence,
                        max_regressed_share=cfg.max_regressed_share, resamples=cfg.bootstrap_resamples,
                        failure_score=cfg.error_score)


def _sides(engine, settings: Settings, candidate_id: str | None, baseline_id: str | None,
           baseline_ref: str | None, dataset: str | None) -> tuple[dict, dict | None, str]:
    """(candidate row, baseline row or None, where the baseline was looked for)."""
    from obs_pipelines.offline_evals import experiments, gate

    try:
        if candidate_id is not None:
            candidate = experiments.get_experiment(engine, candidate_id)
        else:
            candidate = gate.candidate_of_commit(engine, dataset)
        if baseline_id is not None:
            return candidate, experiments.get_experiment(engine, baseline_id), f"experiment {baseline_id}"
        baseline, commit = gate.baseline_for(engine, candidate, settings.offline_evals.main_branch, baseline_ref)
    except ValueError as exc:  # GateError, an unknown or ambiguous experiment id
        raise click.ClickException(str(exc)) from None
    where = baseline_ref or f"the merge base with {settings.offline_evals.main_branch}"
    return candidate, baseline, f"{where} ({commit[:12]})"


def _print_comparison(cmp) -> None:
    def fmt(v, signed=False):
        return "–" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")

    out = _console()
    for label, h in (("candidate", cmp.candidate), ("baseline", cmp.baseline)):
        commit = (h.commit or "(no git)")[:12] + (" (dirty)" if h.dirty else "")
        out.print(f"{label}: {escape(h.experiment_id)} {escape(commit)} on {escape(h.branch or '–')}, "
                  f"{escape(h.dataset or '–')}@{escape(h.dataset_version or '–')}, {h.cases} cases, "
                  f"{h.errors} errors", highlight=False)
    table = Table("scorer", "cases", "baseline", "candidate", "delta", f"{cmp.confidence:.0%} CI", "sign p",
                  "worse/better/lost", "verdict")
    for s in cmp.scorers:
        ci = f"[{fmt(s.ci_low, True)}, {fmt(s.ci_high, True)}]" if s.ci_low is not None else "–"
        table.add_row(escape(s.scorer), str(s.cases), fmt(s.baseline_mean), fmt(s.candidate_mean), fmt(s.delta, True),
                      ci, "–" if s.p_value is None else f"{s.p_value:.3g}",
                      f"{s.worse_cases}/{s.better_cases}/{s.lost_cases}",
                      f"[red]{s.verdict}[/red]" if s.regressed else s.verdict)
    for name in sorted(set(cmp.only_candidate + cmp.only_baseline)):
        side = "candidate" if name in cmp.only_candidate else "baseline"
        state = "excluded" if name in cmp.excluded else "[red]fails[/red]"
        table.add_row(escape(name), "–", "–", "–", "–", "–", "–", "–", f"{side} only: {state}")
    out.print(table)
    for s in cmp.scorers:
        if s.worse:
            shown = ", ".join(f"{w['case_id']} ({'lost' if w['lost'] else format(w['delta'], '+.2f')})"
                              for w in s.worse)
            out.print(f"{escape(s.scorer)}: worse on {shown}", highlight=False)
    if cmp.new_errors:
        out.print(f"task errors new in the candidate: {len(cmp.new_errors)} case(s)", highlight=False)


_TOLERANCE = click.option("--tolerance", type=float, default=None,
                          help="Drop of a score never counted as a regression (default: settings).")
_CONFIDENCE = click.option("--confidence", type=float, default=None, help="Confidence level (default: settings).")
_BASELINE_REF = click.option("--baseline-ref", default=None,
                             help="Git ref whose experiment is the baseline (default: the merge base of the "
                                  "candidate's commit with the main branch of the settings).")
_EXCLUDE = click.option("--exclude-scorer", "exclude", multiple=True,
                        help="A scorer run on one side only that may be ignored (repeat or comma-separate).")


@eval_group.command("compare")
@click.argument("candidate")
@click.argument("baseline", required=False)
@_BASELINE_REF
@_TOLERANCE
@_CONFIDENCE
@_EXCLUDE
def eval_compare(candidate: str, baseline: str | None, baseline_ref: str | None, tolerance: float | None,
                 confidence: float | None, exclude: tuple[str, ...]) -> None:
    """Per-scorer deltas of CANDIDATE against BASELINE (default: the experiment of the merge base of the
    candidate's commit with the main branch, or of --baseline-ref) with paired bootstrap intervals, and the
    cases that got worse."""
    from obs_pipelines.offline_evals import gate

    settings = _settings()
    engine = _engine(settings)
    cand, base, where = _sides(engine, settings, candidate, baseline, baseline_ref, None)
    if base is None:
        raise click.ClickException(f"no baseline: no experiment of {cand['dataset']} at {where}")
    cmp, _cases = gate.compare_experiments(engine, cand, base, _gate_settings(settings, tolerance, confidence),
                                           _split_names(exclude))
    _print_comparison(cmp)


@eval_group.command("gate")
@click.argument("candidate", required=False)
@click.option("--baseline", default=None, help="Baseline experiment id (default: see --baseline-ref).")
@_BASELINE_REF
@click.option("--dataset", default=None, help="Dataset of the candidate (default: any dataset run at this commit).")
@_TOLERANCE
@_CONFIDENCE
@_EXCLUDE
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="Markdown report to write.")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="JUnit XML file to write.")
@click.option("--require-baseline/--allow-no-baseline", default=False, show_default=True,
              help="Fail when there is no baseline to compare with.")
def eval_gate(candidate: str | None, baseline: str | None, baseline_ref: str | None, dataset: str | None,
              tolerance: float | None, confidence: float | None, exclude: tuple[str, ...], report: str | None,
              junit: str | None, require_baseline: bool) -> None:
    """Exit 1 when the candidate (default: the experiment of this commit) fails against the baseline (the
    experiment of the merge base with the main branch, or of --baseline-ref): a scorer regressed, a scorer
    ran on one side only, cases lost their score or newly failed. Noise passes."""
    from obs_pipelines.offline_evals import gate
    from obs_pipelines.offline_evals import report as reports

    settings = _settings()
    engine = _engine(settings)
    try:
        cand, base, where = _sides(engine, settings, candidate, baseline, baseline_ref, dataset)
    except click.ClickException as exc:
        if report:
            Path(report).write_text(f"### ❌ Eval gate: {reports.md(exc.message)}\n", encoding="utf-8")
        raise
    if base is None:
        text = f"no baseline experiment of {cand['dataset']} at {where}"
        if report:
            Path(report).write_text(f"### Eval gate: {reports.md(text)}, nothing compared\n", encoding="utf-8")
        _console().print(f"[yellow]{escape(text)}[/yellow]")
        sys.exit(1 if require_baseline else 0)
    cmp, cases = gate.compare_experiments(engine, cand, base, _gate_settings(settings, tolerance, confidence),
                                          _split_names(exclude))
    _print_comparison(cmp)
    if report:
        Path(report).write_text(reports.markdown_report(cmp, cases), encoding="utf-8")
    if junit:
        Path(junit).write_text(reports.junit_xml(cmp), encoding="utf-8")
    if cmp.failures:
        for line in cmp.failures:
            _console().print(f"[red]fail: {escape(line)}[/red]", highlight=False)
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
        # text columns of experiments (git_branch, git_commit and mean_scores nullable)
        table.add_row(cast(str, r.experiment_id), f"{r.dataset}@{r.dataset_version}", cast(str, r.task),
                      cast("str | None", r.git_branch) or "",
                      (cast("str | None", r.git_commit) or "")[:10] + ("*" if r.git_dirty else ""),
                      str(r.case_count), str(r.error_count), cast("str | None", r.mean_scores) or "")
    _console().print(table if len(frame) else "no experiments yet")


__all__ = ["dataset_group", "eval_group"]
