"""Which experiments the gate compares (this commit vs the merge base or a named ref, never another branch's
run), scorers on one side only, and the report's heads and cases: stored experiments on both databases."""

from __future__ import annotations

import pytest

from obs_pipelines.offline_evals import datasets, experiments, gate
from obs_pipelines.offline_evals.report import markdown_report
from obs_pipelines_tests.offline_evals.conftest import Exact, git

SETTINGS = gate.GateSettings(tolerance=0.02, confidence=0.99, max_regressed_share=0.05, resamples=500)
CASES = [{"case_id": datasets.case_id(f"What is {i} + {i}?"), "input": f"What is {i} + {i}?", "expected": str(2 * i),
          "context": [], "tags": []} for i in range(30)]


class Loud(Exact):
    """Another scorer (same formula, another name): present on one side only in some tests."""

    name = "loud"


def good(text: str) -> str:
    return str(2 * int(text.split()[2]))


def worse(text: str) -> str:  # wrong on every odd number: 15 of 30 cases
    a = int(text.split()[2])
    return str(2 * a) if a % 2 == 0 else "no idea"


@pytest.fixture
def version(store) -> str:
    return datasets.save_version(store.engine, "math", CASES, "test")[0]


def commit(repo, message: str) -> str:
    (repo / "app.txt").write_text(message)
    git(repo, "add", "app.txt")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def run(store, repo, version: str, task, scorers=(Exact(),)) -> str:
    exp = experiments.run_experiment("math", version, CASES, task, "t", list(scorers), cwd=repo)
    experiments.save_experiment(store.engine, exp)
    return exp.experiment_id


def gate_here(store, repo, **kw):
    candidate = gate.candidate_of_commit(store.engine, "math", cwd=repo)
    baseline, _commit = gate.baseline_for(store.engine, candidate, "main", cwd=repo, **kw)
    return candidate, baseline


def test_two_branches_interleaved_are_each_gated_on_their_own_run_against_the_merge_base(store, git_repo, version):
    base = run(store, git_repo, version, good)  # main, commit C0
    git(git_repo, "checkout", "-q", "-b", "pr-x")
    commit(git_repo, "x")
    x = run(store, git_repo, version, worse)  # PR X: worse
    git(git_repo, "checkout", "-q", "main")
    git(git_repo, "checkout", "-q", "-b", "pr-y")
    commit(git_repo, "y")
    y = run(store, git_repo, version, good)  # PR Y: as good, and the newest experiment of all
    git(git_repo, "checkout", "-q", "main")
    commit(git_repo, "main moves on")
    run(store, git_repo, version, worse)  # the newest run on main is not PR X's baseline: its merge base is
    git(git_repo, "checkout", "-q", "pr-x")
    candidate, baseline = gate_here(store, git_repo)
    assert (candidate["experiment_id"], baseline["experiment_id"]) == (x, base)
    cmp, _cases = gate.compare_experiments(store.engine, candidate, baseline, SETTINGS)
    assert not cmp.passed
    git(git_repo, "checkout", "-q", "pr-y")
    candidate, baseline = gate_here(store, git_repo)
    assert (candidate["experiment_id"], baseline["experiment_id"]) == (y, base)
    assert gate.compare_experiments(store.engine, candidate, baseline, SETTINGS)[0].passed


def test_a_commit_without_an_experiment_has_no_candidate(store, git_repo, version):
    run(store, git_repo, version, good)
    git(git_repo, "checkout", "-q", "-b", "pr")
    commit(git_repo, "the task no longer imports")  # `eval run` failed: nothing stored for this commit
    with pytest.raises(gate.GateError, match="no experiment of dataset math of this commit"):
        gate.candidate_of_commit(store.engine, "math", cwd=git_repo)


def test_a_named_baseline_ref_picks_the_experiment_of_that_commit(store, git_repo, version):
    first = run(store, git_repo, version, good)
    tag_commit = git(git_repo, "rev-parse", "HEAD")
    git(git_repo, "tag", "release-1")
    commit(git_repo, "next")
    run(store, git_repo, version, worse)
    git(git_repo, "checkout", "-q", "-b", "pr")
    commit(git_repo, "pr")
    run(store, git_repo, version, good)
    candidate = gate.candidate_of_commit(store.engine, "math", cwd=git_repo)
    baseline, found = gate.baseline_for(store.engine, candidate, "main", "release-1", cwd=git_repo)
    assert (baseline["experiment_id"], found) == (first, tag_commit)
    with pytest.raises(gate.GateError, match="unknown git ref"):
        gate.baseline_for(store.engine, candidate, "main", "no-such-ref", cwd=git_repo)


def test_a_scorer_on_one_side_only_fails_unless_excluded_by_name(store, git_repo, version):
    run(store, git_repo, version, good, scorers=(Exact(), Loud()))
    git(git_repo, "checkout", "-q", "-b", "pr")
    commit(git_repo, "pr")
    run(store, git_repo, version, good)  # the candidate dropped `loud`
    candidate, baseline = gate_here(store, git_repo)
    cmp, _ = gate.compare_experiments(store.engine, candidate, baseline, SETTINGS)
    assert (cmp.only_baseline, cmp.failures) == (["loud"], ["loud: scored on one side only"])
    assert "baseline only: fails the gate" in markdown_report(cmp)
    cmp, _ = gate.compare_experiments(store.engine, candidate, baseline, SETTINGS, exclude_scorers=["loud"])
    assert cmp.passed and "baseline only: excluded" in markdown_report(cmp)


def test_the_report_shows_heads_and_each_regressed_case_with_both_outputs_and_errors(store, git_repo, version):
    run(store, git_repo, version, good)
    git(git_repo, "checkout", "-q", "-b", "feature/faster")
    head = commit(git_repo, "pr")

    def half_broken(text: str) -> str:
        if int(text.split()[2]) % 2:
            raise ConnectionError("upstream went away")
        return good(text)

    run(store, git_repo, version, half_broken)
    candidate, baseline = gate_here(store, git_repo)
    cmp, cases = gate.compare_experiments(store.engine, candidate, baseline, SETTINGS)
    text = markdown_report(cmp, cases)
    assert f"| candidate | {candidate['experiment_id'].replace('-', chr(92) + '-')} | {head[:12]} | feature\\/faster |" \
        in text
    assert f"math\\@{version}" in text and "| baseline |" in text
    # a listed case: its input, the baseline's output, the candidate's error (no output), both scores
    listed = cmp.regressed[0].worse[0]["case_id"]
    a = int(next(c["input"] for c in CASES if c["case_id"] == listed).split()[2])
    assert f"| input | What is {a} \\+ {a}\\? | |" in text
    assert f"| output | {2 * a} | – |" in text and "| error | – | ConnectionError\\: upstream went away |" in text
    assert f"**case {listed}**: 1.000 → 0.000" in text
    assert "errors: 15 of 30 cases failed in the candidate only" in cmp.failures
