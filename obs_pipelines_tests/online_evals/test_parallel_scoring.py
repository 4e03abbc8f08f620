"""Scoring an hour on several processes (online_evals/parallel.py) gives exactly the rows of scoring it in one."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from obs_pipelines.online_evals import parallel, scoring
from obs_pipelines.online_evals.config import OnlineEvalsSettings
from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.batching import BATCH_GC_THRESHOLD
from obs_pipelines_tests.online_evals.conftest import load_traffic

H = datetime(2026, 3, 2, 14, 0)
H_END = H + timedelta(hours=1)


class _FailsOnOddLengths(Scorer):
    """Raises on answers of an odd length, 1.0 otherwise: about half the rows fail, in every worker."""

    name = "fails_on_odd"

    def score(self, example: Example) -> Score:
        if len(example.output or "") % 2:
            raise ValueError("odd length")
        return Score(self.name, 1.0)


def _frame(hour: scoring.HourScores) -> pd.DataFrame:
    return hour.frame.drop(columns=["scored_at"]).sort_values(["trace_id", "span_id", "scorer"]).reset_index(drop=True)


def test_the_hours_rows_are_the_same_whatever_the_worker_count(store, monkeypatch):
    load_traffic(store.engine, H, 1)
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)  # fork even for a small hour
    settings = OnlineEvalsSettings()
    scorers = scoring.scorers_for(settings)
    one = scoring.score_hour(store.engine, H, H_END, settings, scorers, workers=1)
    two = scoring.score_hour(store.engine, H, H_END, settings, scorers, workers=2)
    assert one.scored == two.scored > 100 and one.errors == two.errors
    pd.testing.assert_frame_equal(_frame(one), _frame(two))
    assert {k: sorted(v) for k, v in one.by_scorer.items()} == {k: sorted(v) for k, v in two.by_scorer.items()}


def test_a_scorer_raising_in_a_worker_records_its_error_on_that_row(store, monkeypatch):
    load_traffic(store.engine, H, 1)
    monkeypatch.setattr(parallel, "MIN_CHARS", 0)
    settings = OnlineEvalsSettings(rules=[{"name": "r", "scorers": ["refusal"]}])
    hour = scoring.score_hour(store.engine, H, H_END, settings, {"refusal": _FailsOnOddLengths()}, workers=2)
    errors = hour.frame[hour.frame["error"].notna()]
    assert 0 < len(errors) < len(hour.frame) and hour.errors == len(errors)
    assert (errors["error"] == "ValueError: odd length").all()
    fine = hour.frame[hour.frame["error"].isna()]
    # the others score 1.0, or null for a failed request without an answer ("no output")
    assert ((fine["score"] == 1.0) | (fine["reason"] == "no output")).all() and (fine["score"] == 1.0).any()


def test_scoring_pairs_keeps_their_order():
    # each pair's outcome lands at its own index, whatever chunk and worker scored it
    examples = [("fails_on_odd", Example(input="q", output="x" * n)) for n in range(1200)]
    outcomes = parallel.score_pairs(examples, {"fails_on_odd": _FailsOnOddLengths()}, workers=2, min_chars=0)
    assert [error is not None for _value, _reason, _details, error in outcomes] == [n % 2 == 1 for n in range(1200)]


class _SeesTheThreshold(Scorer):
    """Scores 1.0 and remembers the garbage collector's first threshold it ran under."""

    name = "sees_gc"
    seen: list[int] = []

    def score(self, example: Example) -> Score:
        import gc

        self.seen.append(gc.get_threshold()[0])
        return Score(self.name, 1.0)


def test_a_batch_is_scored_with_fewer_collections_and_the_threshold_is_restored_even_after_errors():
    import gc

    before = gc.get_threshold()
    pairs = [("sees_gc", Example(output="ok")), ("fails_on_odd", Example(output="odd"))]
    outcomes = parallel.score_pairs(pairs, {"sees_gc": _SeesTheThreshold(), "fails_on_odd": _FailsOnOddLengths()},
                                    workers=1)
    assert _SeesTheThreshold.seen == [max(before[0], BATCH_GC_THRESHOLD)]
    assert outcomes[1][3] == "ValueError: odd length"  # the failing scorer is recorded, not raised
    assert gc.get_threshold() == before
