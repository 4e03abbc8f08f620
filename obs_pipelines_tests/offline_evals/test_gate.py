"""The gate: a deliberately worse task fails it, a task of the same quality passes it over 20 seeds."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pandas as pd

from obs_pipelines.offline_evals import compare, datasets, experiments
from obs_pipelines.settings import OfflineEvalsSettings
from obs_pipelines_tests.offline_evals.conftest import Exact

N_CASES = 200
CFG = OfflineEvalsSettings()
# each case has its own difficulty: the chance a task of "baseline quality" gets it right
DIFFICULTY = [random.Random(i).uniform(0.3, 0.95) for i in range(N_CASES)]
CASES = [{"case_id": datasets.case_id(f"question {i}"), "input": f"question {i}", "expected": f"answer {i}",
          "context": [], "tags": []} for i in range(N_CASES)]


def noisy_task(seed: int, skill_drop: float = 0.0):
    """A task right on case i with probability DIFFICULTY[i] - skill_drop (seeded per case: reproducible)."""
    async def task(text: str) -> str:
        i = int(text.split()[-1])
        right = random.Random(f"{seed}:{i}").random() < DIFFICULTY[i] - skill_drop
        return f"answer {i}" if right else "I don't know"
    return task


def _scores(seed: int, skill_drop: float = 0.0) -> pd.DataFrame:
    exp = experiments.run_experiment("d", "v", CASES, noisy_task(seed, skill_drop), "t", [Exact()])
    return pd.DataFrame([{"case_id": r.case_id, **r.scores} for r in exp.results])


def _gate(baseline: pd.DataFrame, candidate: pd.DataFrame) -> compare.Comparison:
    return compare.compare_scores(baseline, candidate, ["exact"], tolerance=CFG.tolerance,
                                  confidence=CFG.confidence, resamples=CFG.bootstrap_resamples)


def test_a_same_quality_task_passes_the_gate_over_20_seeds():
    # 20 independent trials: a baseline run and a candidate run of the same task, each with its own noise
    results = [_gate(_scores(seed=2 * s), _scores(seed=2 * s + 1)) for s in range(20)]
    assert [r.regressed for r in results] == [[]] * 20
    # and the harder case: 20 candidates against one baseline run that happened to be lucky
    lucky = _scores(seed=1000)
    assert lucky["exact"].mean() > sum(DIFFICULTY) / N_CASES + 0.05
    assert [_gate(lucky, _scores(seed)).regressed for seed in range(20)] == [[]] * 20
    # it is noise, not blindness: the candidates' means do move around the baseline's
    assert len({round(r.scorers[0].delta, 3) for r in results}) > 5


def test_a_deliberately_worse_task_fails_the_gate():
    cmp = _gate(_scores(seed=1000), _scores(seed=1, skill_drop=0.25))
    (delta,) = cmp.scorers
    assert cmp.regressed == [delta]
    assert delta.ci_high < -CFG.tolerance and delta.p_value < 0.01
    assert delta.worse and all(w["delta"] < 0 for w in delta.worse)


def test_a_drop_within_the_tolerance_passes():
    baseline = pd.DataFrame({"case_id": [c["case_id"] for c in CASES], "exact": [1.0] * N_CASES})
    candidate = baseline.assign(exact=[0.0 if i < 2 else 1.0 for i in range(N_CASES)])  # 1 % of cases worse
    assert _gate(baseline, candidate).regressed == []


def test_the_report_and_junit_name_the_regressed_scorer():
    cmp = _gate(_scores(seed=1000), _scores(seed=1, skill_drop=0.3))
    report = compare.markdown_report(cmp, {CASES[0]["case_id"]: "question | 0"})
    assert "regressed" in report and "| exact |" in report
    suite = ET.fromstring(compare.junit_xml(cmp))
    assert suite.get("failures") == "1"
    assert suite.find("testcase").get("name") == "exact"
    assert suite.find("testcase/failure") is not None
