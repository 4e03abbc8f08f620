"""Which experiments a gate compares, and the comparison itself.

- The **candidate** is the experiment of this commit (``git rev-parse HEAD``) on the dataset, newest first;
  none is an error (the task never ran on this code), never "the latest experiment of any branch".
- The **baseline** is the experiment of the merge base of this commit with the main branch (or of a named
  ref: ``--baseline-ref``), or an experiment named by id. Another branch's run can therefore never be the
  baseline or the candidate of this branch's gate.
- Scorers run on one side only are listed and fail the gate unless excluded by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from obs_pipelines.offline_evals import compare, datasets, experiments, gitrepo


class GateError(ValueError):
    """The gate cannot pick its sides (no experiment of this commit, an unknown ref ...): the message says why."""


@dataclass(frozen=True)
class GateSettings:
    tolerance: float
    confidence: float
    max_regressed_share: float
    resamples: int
    failure_score: float = 0.0


def head_of(row: dict) -> compare.Head:
    return compare.Head(str(row["experiment_id"]), row.get("git_commit"), row.get("git_branch"),
                        bool(row["git_dirty"]) if row.get("git_dirty") is not None else None, row.get("dataset"),
                        row.get("dataset_version"), int(row.get("case_count") or 0), int(row.get("error_count") or 0))


def _newest_at(engine: Engine, dataset: str | None, commit: str, exclude: str | None = None) -> dict | None:
    found = experiments.list_experiments(engine, dataset)
    found = found[(found["git_commit"] == commit) & (found["experiment_id"] != exclude)]
    return None if found.empty else found.iloc[0].to_dict()


def candidate_of_commit(engine: Engine, dataset: str | None, cwd: Path | None = None,
                        commit: str | None = None) -> dict:
    """The newest experiment of ``commit`` (default: HEAD of the repository around ``cwd``)."""
    commit = commit or gitrepo.resolve_commit("HEAD", cwd)
    if commit is None:
        raise GateError("not in a git repository: name the candidate experiment")
    row = _newest_at(engine, dataset, commit)
    if row is None:
        on = f" of dataset {dataset}" if dataset else ""
        raise GateError(f"no experiment{on} of this commit {commit[:12]}: run `obs-pipelines eval run` first "
                        "(a task that cannot even start fails the gate)")
    return row


def baseline_for(engine: Engine, candidate: dict, main_branch: str, baseline_ref: str | None = None,
                 cwd: Path | None = None) -> tuple[dict | None, str]:
    """(the baseline experiment or None, the commit it was looked for at): the newest experiment of the same
    dataset at ``baseline_ref`` or at the merge base of the candidate's commit with ``main_branch``."""
    if baseline_ref is not None:
        commit = gitrepo.resolve_commit(baseline_ref, cwd)
        if commit is None:
            raise GateError(f"unknown git ref {baseline_ref!r}")
    else:
        commit = gitrepo.merge_base(main_branch, candidate.get("git_commit") or "HEAD", cwd)
        if commit is None:
            raise GateError(f"no merge base with {main_branch!r} (nor origin/{main_branch}): fetch it, or name "
                            "the baseline (--baseline-ref REF or --baseline EXPERIMENT)")
    return _newest_at(engine, candidate["dataset"], commit, exclude=candidate["experiment_id"]), commit


def _scorer_versions(row: dict) -> dict[str, str]:
    return json.loads(row.get("scorers") or "{}")


def compare_experiments(engine: Engine, candidate: dict, baseline: dict, settings: GateSettings,
                        exclude_scorers: Sequence[str] = ()) -> tuple[compare.Comparison, dict[str, dict]]:
    """The comparison of two stored experiments and, per case, what the report shows (input, both outputs and
    errors)."""
    cand_versions, base_versions = _scorer_versions(candidate), _scorer_versions(baseline)
    both = sorted(set(cand_versions) & set(base_versions))
    scores_b = experiments.experiment_scores(engine, baseline["experiment_id"])
    scores_c = experiments.experiment_scores(engine, candidate["experiment_id"])
    same_cases = candidate["dataset_version"] == baseline["dataset_version"]
    cmp = compare.compare_scores(
        scores_b, scores_c, both, tolerance=settings.tolerance, confidence=settings.confidence,
        max_regressed_share=settings.max_regressed_share, resamples=settings.resamples,
        failure_score=settings.failure_score, same_cases=same_cases,
        candidate_head=head_of(candidate), baseline_head=head_of(baseline))
    cmp.only_candidate = sorted(set(cand_versions) - set(base_versions))
    cmp.only_baseline = sorted(set(base_versions) - set(cand_versions))
    cmp.excluded = sorted(set(exclude_scorers) & set(cmp.only_candidate + cmp.only_baseline))
    cmp.scorer_versions_differ = [n for n in both if cand_versions[n] != base_versions[n]]
    return cmp, _report_cases(engine, candidate, cmp, scores_b, scores_c)


def _report_cases(engine: Engine, candidate: dict, cmp: compare.Comparison, scores_b: pd.DataFrame,
                  scores_c: pd.DataFrame) -> dict[str, dict]:
    wanted = {w["case_id"] for s in cmp.regressed for w in s.worse}
    if not wanted:
        return {}
    _version, cases = datasets.load_version(engine, candidate["dataset"], candidate["dataset_version"])
    out: dict[str, dict] = {c["case_id"]: {"input": c["input"]} for c in cases if c["case_id"] in wanted}
    for suffix, frame in (("b", scores_b), ("c", scores_c)):
        for row in frame[frame["case_id"].isin(wanted)].to_dict("records"):
            entry = out.setdefault(row["case_id"], {})
            entry[f"output_{suffix}"] = None if pd.isna(row.get("output")) else row.get("output")
            entry[f"error_{suffix}"] = None if pd.isna(row.get("error")) else row.get("error")
    return out
