"""The `dataset` and `eval` command groups in a temporary git repository (CliRunner)."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from obs_pipelines.cli_offline import dataset_group, eval_group
from obs_pipelines.offline_evals import datasets, experiments
from obs_pipelines.scorers import registry
from obs_pipelines_tests.offline_evals.conftest import git
from obs_pipelines_tests.online_evals.fake_judge import FakeJudge

CASES = [{"input": f"What is {i} + {i}?", "expected": str(2 * i), "tags": ["math"]} for i in range(40)]


@pytest.fixture
def repo(git_repo, store, monkeypatch) -> Path:
    """The git repository as working directory, the store as OBS_PIPELINES_DB_URL, a hand-made dataset."""
    monkeypatch.setenv("OBS_PIPELINES_DB_URL", store.db_url)
    monkeypatch.setenv("COLUMNS", "250")  # tables unwrapped in the captured output
    (git_repo / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    return git_repo


def invoke(group, *args: str, code: int = 0):
    result = CliRunner().invoke(group, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _task_module(repo: Path, body: str) -> str:
    """A module of tasks in the repository, under a fresh name (imports are cached per process)."""
    name = f"tasks_{uuid.uuid4().hex[:8]}"
    (repo / f"{name}.py").write_text(body)
    return name


GOOD = "def task(text):\n    a = int(text.split()[2])\n    return str(2 * a)\n"
WORSE = "def task(text):\n    a = int(text.split()[2])\n    return str(2 * a) if a % 2 else 'no idea'\n"


def test_import_export_pin_round_trip(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    version = datasets.latest_version(store.engine, "math")
    invoke(dataset_group, "pin", "math")
    lock = json.loads((repo / datasets.LOCK_FILE).read_text())
    assert lock["datasets"]["math"]["version"] == version
    # a newer version appears; the pinned one is still what is exported
    (repo / "more.jsonl").write_text(json.dumps({"input": "a new question"}) + "\n")
    invoke(dataset_group, "import", "math", "more.jsonl")
    assert datasets.latest_version(store.engine, "math") != version
    invoke(dataset_group, "export", "math", "-o", "out.jsonl")
    exported = [json.loads(line) for line in (repo / "out.jsonl").read_text().splitlines()]
    assert {c["input"] for c in exported} == {c["input"] for c in CASES}
    # importing the export gives back the very same version
    out = invoke(dataset_group, "import", "again", "out.jsonl").output
    assert datasets.latest_version(store.engine, "again") == version
    assert "new version" in out
    listed = invoke(dataset_group, "list").output
    assert version in listed


def test_eval_run_records_the_git_state_and_a_dagster_materialization(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    module = _task_module(repo, GOOD)
    git(repo, "add", f"{module}.py")
    git(repo, "commit", "-q", "-m", "task")
    out = invoke(eval_group, "run", "--dataset", "math", "--task", f"{module}:task", "--scorers",
                 "exact_match", "--no-progress").output
    assert "40 cases, 0 errors" in out
    (exp,) = experiments.list_experiments(store.engine).to_dict("records")
    assert exp["git_commit"] == git(repo, "rev-parse", "HEAD")
    assert exp["git_branch"] == "main" and exp["git_dirty"] is False
    assert exp["dataset_version"] == datasets.latest_version(store.engine, "math")
    assert json.loads(exp["scorers"]) == {"exact_match": registry.get("exact_match").fingerprint}
    event = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey("experiments"))
    metadata = event.asset_materialization.metadata
    assert metadata["score/exact_match"].value == 1.0
    assert metadata["experiment_id"].value == exp["experiment_id"]


def _commit(repo: Path, message: str) -> None:
    (repo / "app.txt").write_text(message)
    git(repo, "add", "app.txt")
    git(repo, "commit", "-q", "-m", message)


def test_the_gate_fails_a_worse_branch_and_passes_an_equal_one(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    good, worse = _task_module(repo, GOOD), _task_module(repo, WORSE)
    run = ("run", "--dataset", "math", "--scorers", "exact_match", "--no-progress", "--task")
    invoke(eval_group, *run, f"{good}:task")  # the baseline, on main
    git(repo, "checkout", "-q", "-b", "feature")
    _commit(repo, "worse")
    invoke(eval_group, *run, f"{worse}:task")
    out = invoke(eval_group, "gate", "--report", "gate.md", "--junit", "gate.xml", code=1).output
    assert "fail: exact_match" in out
    assert "regressed" in (repo / "gate.md").read_text()
    assert ET.parse(repo / "gate.xml").getroot().get("failures") == "1"
    _commit(repo, "fixed")
    invoke(eval_group, *run, f"{good}:task")
    invoke(eval_group, "gate", "--report", "gate.md", code=0)
    assert "no significant regression" in (repo / "gate.md").read_text()


def test_the_gate_fails_a_commit_without_an_experiment_and_a_scorer_on_one_side_only(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    good = _task_module(repo, GOOD)
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{good}:task", "--scorers", "exact_match,levenshtein",
           "--no-progress")
    git(repo, "checkout", "-q", "-b", "feature")
    _commit(repo, "the task cannot start")
    invoke(eval_group, "run", "--dataset", "math", "--task", "no_such_module:task", "--scorers", "exact_match",
           "--no-progress", code=1)
    out = invoke(eval_group, "gate", "--report", "gate.md", code=1).output
    assert "no experiment of this commit" in out and "Eval gate" in (repo / "gate.md").read_text()
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{good}:task", "--scorers", "exact_match",
           "--no-progress")
    out = invoke(eval_group, "gate", code=1).output
    assert "fail: levenshtein: scored on one side only" in out
    invoke(eval_group, "gate", "--exclude-scorer", "levenshtein", code=0)


def test_a_file_with_bad_lines_imports_the_good_ones_and_names_the_bad_ones(repo, store):
    (repo / "mixed.jsonl").write_bytes(b'{"input": "fine"}\n{"input": "caf\xe9"}\n{"input": "q", "tags": 3}\n')
    out = invoke(dataset_group, "import", "mixed", "mixed.jsonl", "--rejects", "rejects.jsonl").output
    assert "rejected line 2: not UTF-8" in out and "rejected line 3: 'tags' must be" in out
    assert "1 cases from 3 lines" in out and "2 rejected" in out
    assert len((repo / "rejects.jsonl").read_text().splitlines()) == 2
    (repo / "bad.jsonl").write_text("not json\n")
    out = invoke(dataset_group, "import", "bad", "bad.jsonl", code=1).output
    assert "no case imported (1 line(s) rejected)" in out and "Traceback" not in out


def test_eval_run_on_a_pinned_version_and_an_explicit_one(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    pinned = datasets.latest_version(store.engine, "math")
    invoke(dataset_group, "pin", "math")
    (repo / "more.jsonl").write_text(json.dumps({"input": "What is 100 + 100?", "expected": "200"}) + "\n")
    invoke(dataset_group, "import", "math", "more.jsonl")
    newest = datasets.latest_version(store.engine, "math")
    module = _task_module(repo, GOOD)
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{module}:task", "--scorers", "exact_match",
           "--no-progress")
    invoke(eval_group, "run", "--dataset", f"math@{newest[:8]}", "--task", f"{module}:task", "--scorers",
           "exact_match", "--no-progress")
    versions = experiments.list_experiments(store.engine)["dataset_version"].tolist()
    assert versions == [newest, pinned]  # newest first


def test_compare_shows_the_delta_against_main_and_the_cases_that_got_worse(repo, store):
    invoke(dataset_group, "import", "math", "cases.jsonl")
    good, worse = _task_module(repo, GOOD), _task_module(repo, WORSE)
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{good}:task", "--scorers", "exact_match",
           "--no-progress")
    git(repo, "checkout", "-q", "-b", "feature")
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{worse}:task", "--scorers", "exact_match",
           "--no-progress")
    listed = experiments.list_experiments(store.engine)
    candidate, baseline = listed["experiment_id"].tolist()
    out = invoke(eval_group, "compare", candidate[:20]).output  # baseline: the latest on main
    assert baseline in out.replace("\n", "")
    assert "-0.500" in out and "regressed" in out
    assert "worse on" in out


def test_eval_run_judges_with_the_judge_of_the_settings(repo, store, monkeypatch):
    # judge scorers offline use settings.online_evals.judge as the online phase does: every case is sent to
    # the endpoint, the verdict's choice is the score, and the judge model is part of the scorer's version
    invoke(dataset_group, "import", "math", "cases.jsonl")
    module = _task_module(repo, GOOD)
    with FakeJudge('{"reasoning": "It answers the question.", "choice": "B"}') as fake:
        config = repo / "settings.yaml"
        config.write_text(f"online_evals:\n  judge:\n    base_url: {fake.url}\n    model: offline-judge\n")
        monkeypatch.setenv("OBS_PIPELINES_CONFIG", str(config))
        out = invoke(eval_group, "run", "--dataset", "math", "--task", f"{module}:task", "--scorers",
                     "exact_match,judge_answer_relevance", "--no-progress").output
        prompts = fake.user_prompts()
    assert "40 cases, 0 errors" in out
    assert len(prompts) == 40
    assert any("<input>\nWhat is 7 + 7?\n</input>" in p and "<output>\n14\n</output>" in p for p in prompts)
    (exp,) = experiments.list_experiments(store.engine).to_dict("records")
    assert "@offline-judge~" in json.loads(exp["scorers"])["judge_answer_relevance"]
    scores = experiments.experiment_scores(store.engine, exp["experiment_id"])
    assert len(scores) == 40 and set(scores["judge_answer_relevance"]) == {0.5}  # choice B of relevance: 0.5
    assert set(scores["exact_match"]) == {1.0}


def test_eval_run_without_a_judge_in_the_settings_gives_null_judge_scores(repo, store, monkeypatch):
    # no endpoint configured: the judge scorer says so on every case instead of inventing a score
    monkeypatch.delenv("OBS_PIPELINES_JUDGE_BASE_URL", raising=False)
    invoke(dataset_group, "import", "math", "cases.jsonl")
    module = _task_module(repo, GOOD)
    invoke(eval_group, "run", "--dataset", "math", "--task", f"{module}:task", "--scorers",
           "judge_answer_relevance", "--no-progress")
    (exp,) = experiments.list_experiments(store.engine).to_dict("records")
    scores = experiments.experiment_scores(store.engine, exp["experiment_id"])
    assert len(scores) == 40 and scores["judge_answer_relevance"].isna().all()
