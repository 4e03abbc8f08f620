"""Fixtures of the offline evals tests: production traces with incidents in a store, tiny scorers, a git repo."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.settings import DatasetRules
from obs_pipelines.store import db
from obs_pipelines.store.schema import feedback
from obs_pipelines.synth.generator import generate_traces
from obs_pipelines.synth.incidents import parse_incident

DAY = datetime(2026, 11, 2)
INCIDENTS = ("provider_outage@2026-11-02T01:00+30m", "tool_loop@2026-11-02T02:00+1h",
             "retrieval_miss@2026-11-02T03:00+1h")


class Exact(Scorer):
    """1 when the output equals the expected output."""

    name = "exact"
    version = "2"
    requires = ("output", "expected")

    def score(self, example: Example) -> Score:
        return self.result(float(str(example.output).strip() == str(example.expected).strip()))


def production(store, hours: float = 4, rate: float = 0.1, seed: int = 7) -> list[list[dict]]:
    """Generated traces of DAY with an outage, a tool loop and a retrieval miss, in the store."""
    traces = list(generate_traces(DAY, hours, rate, seed, [parse_incident(i) for i in INCIDENTS]))
    db.insert_spans(store.engine, [row for trace in traces for row in trace])
    return traces


def add_feedback(store, rows: list[dict]) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.insert(feedback), [{"created_at": DAY + timedelta(hours=1), "source": "user", **r}
                                           for r in rows])


@pytest.fixture
def rules() -> DatasetRules:
    return DatasetRules(lookback_days=3, per_tag=100, max_cases=500)


@pytest.fixture
def git_repo(tmp_path, monkeypatch) -> Path:
    """An empty git repository with one commit on `main`, as the working directory."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "t@example.invalid"],
                 ["config", "user.name", "t"], ["commit", "-q", "--allow-empty", "-m", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    return repo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
