"""The gate's verdict on two experiments' per-case scores: what a reviewer fails fails, noise passes."""

from __future__ import annotations

import random

import pandas as pd

from obs_pipelines.offline_evals import compare, datasets, experiments
from obs_pipelines.settings import OfflineEvalsSettings
from obs_pipelines_tests.offline_evals.conftest import Exact

N_CASES = 200
CFG = OfflineEvalsSettings()
RESAMPLES = 1000  # small: the tests stay fast; the verdicts below are far from the interval's edges
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


def _frame(task, cases=CASES) -> pd.DataFrame:
    exp = experiments.run_experiment("d", "v", cases, task, "t", [Exact()])
    return pd.DataFrame([{"case_id": r.case_id, "error": r.error, **r.scores} for r in exp.results])


def _scores(seed: int, skill_drop: float = 0.0) -> pd.DataFrame:
    return _frame(noisy_task(seed, skill_drop))


def _gate(baseline: pd.DataFrame, candidate: pd.DataFrame, **kw) -> compare.Comparison:
    return compare.compare_scores(baseline, candidate, ["exact"], tolerance=CFG.tolerance,
                                  confidence=CFG.confidence, max_regressed_share=CFG.max_regressed_share,
                                  resamples=RESAMPLES, **kw)


def _exact(values: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"case_id": [f"c{i}" for i in range(len(values))], "error": [None] * len(values),
                         "exact": values})


def test_a_same_quality_task_passes_the_gate_over_20_seeds():
    # 20 independent trials: a baseline run and a candidate run of the same task, each with its own noise
    results = [_gate(_scores(seed=2 * s), _scores(seed=2 * s + 1)) for s in range(20)]
    assert [r.failures for r in results] == [[]] * 20
    # and the harder case: 20 candidates against one baseline run that happened to be lucky
    lucky = _scores(seed=1000)
    assert lucky["exact"].mean() > sum(DIFFICULTY) / N_CASES + 0.05
    assert [_gate(lucky, _scores(seed)).failures for seed in range(20)] == [[]] * 20
    # it is noise, not blindness: the candidates' means do move around the baseline's
    assert len({round(r.scorers[0].delta, 3) for r in results}) > 5


def test_a_deliberately_worse_task_fails_the_gate():
    cmp = _gate(_scores(seed=1000), _scores(seed=1, skill_drop=0.25))
    (delta,) = cmp.scorers
    assert cmp.regressed == [delta]
    assert delta.ci_high < -CFG.tolerance and delta.p_value < 0.01
    assert delta.worse and all(w["delta"] < 0 for w in delta.worse)


def test_a_task_returning_none_everywhere_fails_the_gate():
    # Exact needs an output: None gives a null score on every case the baseline scored -> all lost
    cmp = _gate(_scores(seed=1000), _frame(lambda _text: None))
    (delta,) = cmp.scorers
    assert delta.lost_cases == N_CASES and delta.candidate_mean == 0.0
    assert delta.regressed and "200 of 200 cases lost their score" in delta.reasons[-1]
    assert not cmp.passed


def test_a_task_returning_empty_text_everywhere_fails_the_gate():
    cmp = _gate(_scores(seed=1000), _frame(lambda _text: ""))
    assert cmp.scorers[0].candidate_mean == 0.0 and not cmp.passed


def test_lost_scores_fail_even_where_the_baseline_scored_zero():
    # the baseline was wrong on every case (0), the candidate gives no scorable answer at all: no mean moves,
    # but a reviewer fails an app that stopped answering
    cmp = _gate(_exact([0.0] * 30), _exact([None] * 30))
    assert cmp.scorers[0].delta == 0.0 and cmp.scorers[0].lost_cases == 30
    assert not cmp.passed


def test_a_case_missing_from_the_candidate_on_the_same_version_is_lost():
    baseline = _exact([1.0] * 20)
    cmp = _gate(baseline, baseline.iloc[:10])  # the candidate ran half of the cases
    assert cmp.scorers[0].lost_cases == 10 and not cmp.passed
    # on another dataset version only the shared cases are compared
    assert _gate(baseline, baseline.iloc[:10], same_cases=False).passed


def test_a_candidate_that_raises_on_every_case_fails_the_gate():
    def broken(_text: str) -> str:
        raise RuntimeError("the model endpoint moved")

    cmp = _gate(_scores(seed=1000), _frame(broken))
    assert len(cmp.new_errors) == N_CASES and cmp.errors_regressed
    assert any(f.startswith("errors:") for f in cmp.failures)


def test_new_errors_fail_even_when_the_scores_do_not_move():
    # scores equal (the baseline got 0 where the candidate raised), but 3 of 20 cases newly raise: > 5 %
    base = _exact([0.0] * 20)
    cand = base.assign(error=["RuntimeError: boom" if i < 3 else None for i in range(20)])
    cmp = _gate(base, cand)
    assert cmp.regressed == [] and cmp.errors_regressed and not cmp.passed


def test_a_small_deterministic_drop_is_a_regression():
    # 26 cases, 7 went from right to wrong, none improved: a 27-point drop; the sign test's best p with 7 moved
    # cases is 2 * 0.5**7 = 0.016 > 0.01, so it is the share rule (7/26 = 27 % > 5 %) that fails it
    base = _exact([1.0] * 26)
    cand = _exact([0.0] * 7 + [1.0] * 19)
    (delta,) = _gate(base, cand).scorers
    assert round(delta.p_value, 3) == 0.016
    assert delta.regressed and "7 of 26 cases worse" in delta.reasons[0]


def test_one_case_of_26_worse_is_within_the_share_and_passes():
    # 1 / 26 = 3.8 % <= 5 %, and the interval reaches 0 (most resamples miss that case)
    assert _gate(_exact([1.0] * 26), _exact([0.0] + [1.0] * 25)).passed


def test_a_change_of_the_same_quality_with_moved_cases_passes():
    # 40 cases: 4 got worse and 4 got better by the same amount -> the mean does not move
    base = _exact([0.5] * 40)
    cand = _exact([0.0] * 4 + [1.0] * 4 + [0.5] * 32)
    cmp = _gate(base, cand)
    assert cmp.scorers[0].worse_cases == 4 and cmp.scorers[0].better_cases == 4 and cmp.passed


def test_a_drop_within_the_tolerance_passes():
    baseline = _exact([1.0] * N_CASES)
    candidate = baseline.assign(exact=[0.0 if i < 2 else 1.0 for i in range(N_CASES)])  # 1 % of cases worse
    assert _gate(baseline, candidate).passed


def test_lost_cases_are_listed_first_in_the_worse_cases():
    cmp = _gate(_exact([1.0] * 10), _exact([None] + [0.0] * 9))
    assert [w["lost"] for w in cmp.scorers[0].worse][:2] == [True, False]
    assert cmp.scorers[0].worse[0]["candidate"] is None
