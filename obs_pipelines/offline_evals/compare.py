"""Comparing two experiments on the same cases: per scorer, per case, and the gate's verdict.

The paired cases of a scorer are the cases the baseline scored that the candidate also ran (every baseline
case when both ran the same dataset version). A case the baseline scored but the candidate did not (a null
score, or no row at all on the same version) is **lost**: it counts as a failure, with ``failure_score``
(the settings' ``error_score``, 0) as its candidate score, never dropped.

Per scorer, the per-case deltas (candidate - baseline) give the mean delta, a paired bootstrap confidence
interval of it (resampling cases, seeded) and a two-sided sign test (scipy ``binomtest``). A case counts as
**worse** (better) when its score dropped (rose) by more than ``tolerance``.

A scorer **regresses** when any of these holds (``alpha = 1 - confidence``):
1. the whole interval lies below ``-tolerance`` and the sign test is significant at ``alpha`` (a drop that is
   too large to be noise: large datasets, noisy tasks);
2. the whole interval lies below ``-tolerance`` and the share of cases that got worse, net of those that got
   better, is above ``max_regressed_share`` (a deterministic drop on a small dataset, where the sign test
   cannot reach ``alpha``: 7 cases of 26 that all got worse give p = 0.016 at best);
3. the share of lost cases is above ``max_regressed_share`` (an app that stopped answering; no interval
   needed: a lost score is not noise).

Besides the scorers, the candidate **errors** regress when the share of cases whose task raised or timed out
in the candidate but not in the baseline is above ``max_regressed_share``. Noise (a task of the same quality
on another run) leaves the interval straddling zero and passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import binomtest

SEED = 20261201
LISTED = 10  # cases listed per regressed scorer (worst first)


@dataclass(frozen=True)
class Head:
    """What one side of a comparison is: the experiment, the code and the data it ran."""

    experiment_id: str
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    dataset: str | None = None
    dataset_version: str | None = None
    cases: int = 0
    errors: int = 0


@dataclass
class ScorerDelta:
    scorer: str
    cases: int  # paired cases (lost ones included)
    baseline_mean: float | None
    candidate_mean: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    worse_cases: int = 0
    better_cases: int = 0
    lost_cases: int = 0
    reasons: list[str] = field(default_factory=list)  # why it regressed (empty: it did not)
    worse: list[dict] = field(default_factory=list)  # case_id, baseline, candidate, delta, lost (worst first)

    @property
    def regressed(self) -> bool:
        return bool(self.reasons)

    @property
    def verdict(self) -> str:
        if self.regressed:
            return "regressed"
        if self.delta is None:
            return "no data"
        if self.ci_low is not None and self.ci_low > 0 and (self.p_value or 1) < 1:
            return "improved"
        return "ok"


@dataclass
class Comparison:
    candidate: Head
    baseline: Head
    tolerance: float
    confidence: float
    max_regressed_share: float
    scorers: list[ScorerDelta]
    only_candidate: list[str] = field(default_factory=list)  # scorers the baseline did not run
    only_baseline: list[str] = field(default_factory=list)  # scorers the candidate did not run
    excluded: list[str] = field(default_factory=list)  # one-sided scorers excluded by name
    new_errors: list[str] = field(default_factory=list)  # cases that failed in the candidate only
    paired_cases: int = 0  # cases both experiments ran
    scorer_versions_differ: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> list[ScorerDelta]:
        return [s for s in self.scorers if s.regressed]

    @property
    def missing_scorers(self) -> list[str]:
        """Scorers on one side only that were not excluded: each fails the gate."""
        return sorted(set(self.only_candidate + self.only_baseline) - set(self.excluded))

    @property
    def errors_regressed(self) -> bool:
        return bool(self.new_errors) and len(self.new_errors) / max(self.paired_cases, 1) > self.max_regressed_share

    @property
    def failures(self) -> list[str]:
        """One line per reason the gate fails (empty: it passes)."""
        out = [f"{s.scorer}: {'; '.join(s.reasons)}" for s in self.regressed]
        out += [f"{name}: scored on one side only" for name in self.missing_scorers]
        if self.errors_regressed:
            out.append(f"errors: {len(self.new_errors)} of {self.paired_cases} cases failed in the candidate only")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures


def bootstrap_ci(deltas: np.ndarray, confidence: float, resamples: int, seed: int = SEED) -> tuple[float, float]:
    """Percentile interval of the mean of ``deltas`` over ``resamples`` resamples of the cases."""
    rng = np.random.default_rng(seed)
    n = len(deltas)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // max(n, 1))  # resamples per block: bounded memory on large datasets
    for lo in range(0, resamples, step):
        k = min(step, resamples - lo)
        means[lo:lo + k] = deltas[rng.integers(0, n, size=(k, n))].mean(axis=1)
    alpha = 1 - confidence
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def sign_test(deltas: np.ndarray) -> float:
    """Two-sided p-value that cases got better and worse equally often (ties dropped)."""
    up, down = int((deltas > 0).sum()), int((deltas < 0).sum())
    return 1.0 if up + down == 0 else float(binomtest(down, up + down, 0.5).pvalue)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _scorer_delta(scorer: str, joined: pd.DataFrame, *, tolerance: float, confidence: float, resamples: int,
                  max_regressed_share: float, failure_score: float) -> ScorerDelta:
    base = pd.to_numeric(_column(joined, f"{scorer}_b"), errors="coerce")
    cand = pd.to_numeric(_column(joined, f"{scorer}_c"), errors="coerce")
    pair = joined.assign(_b=base, _c=cand)[base.notna()]
    if pair.empty:
        return ScorerDelta(scorer, 0, None, None, None, None, None, None)
    lost = pair["_c"].isna().to_numpy()
    b = pair["_b"].to_numpy(dtype=float)
    c = pair["_c"].fillna(failure_score).to_numpy(dtype=float)
    deltas = c - b
    n = len(deltas)
    low, high = bootstrap_ci(deltas, confidence, resamples)
    p = sign_test(deltas)
    worse, better = int((deltas < -tolerance).sum()), int((deltas > tolerance).sum())
    worse_or_lost = (deltas < -tolerance) | lost
    reasons = []
    if high < -tolerance and p < 1 - confidence:
        reasons.append(f"the {confidence:.0%} interval lies below -{tolerance:g} and the sign test p = {p:.3g}")
    elif high < -tolerance and (worse - better) / n > max_regressed_share:
        reasons.append(f"{worse - better} of {n} cases worse net of better (> {max_regressed_share:.0%}) and the "
                       f"{confidence:.0%} interval lies below -{tolerance:g}")
    if lost.sum() / n > max_regressed_share:
        reasons.append(f"{int(lost.sum())} of {n} cases lost their score (> {max_regressed_share:.0%})")
    # lost cases first, then the largest drops
    order = sorted(np.flatnonzero(worse_or_lost), key=lambda i: (not lost[i], deltas[i]))[:LISTED]
    listed = [{"case_id": pair["case_id"].iloc[i], "baseline": float(b[i]),
               "candidate": None if lost[i] else float(c[i]), "delta": float(deltas[i]), "lost": bool(lost[i])}
              for i in order]
    return ScorerDelta(scorer, n, float(b.mean()), float(c.mean()), float(deltas.mean()), low, high, p,
                       worse, better, int(lost.sum()), reasons, listed)


def compare_scores(baseline: pd.DataFrame, candidate: pd.DataFrame, scorers: list[str], *, tolerance: float,
                   confidence: float, max_regressed_share: float, resamples: int = 5000,
                   failure_score: float = 0.0, same_cases: bool = True,
                   candidate_head: Head | None = None, baseline_head: Head | None = None) -> Comparison:
    """Per-scorer deltas of two per-case frames (``case_id``, optional ``error``, one column per scorer).

    ``same_cases``: both ran the same dataset version, so a baseline case without a candidate row is lost
    (on different versions only the cases both ran are compared)."""
    how = "left" if same_cases else "inner"
    joined = baseline.merge(candidate, on="case_id", how=how, suffixes=("_b", "_c"), indicator=True)
    ran = joined["_merge"] == "both"
    errors_b, errors_c = _column(joined, "error_b"), _column(joined, "error_c")
    new_errors = joined.loc[ran & errors_c.notna() & errors_b.isna(), "case_id"].astype(str).tolist()
    deltas = [_scorer_delta(s, joined, tolerance=tolerance, confidence=confidence, resamples=resamples,
                            max_regressed_share=max_regressed_share, failure_score=failure_score)
              for s in scorers]
    return Comparison(candidate_head or Head("candidate"), baseline_head or Head("baseline"), tolerance, confidence,
                      max_regressed_share, deltas, new_errors=new_errors, paired_cases=len(joined))
