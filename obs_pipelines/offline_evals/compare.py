"""Comparing two experiments on the same cases, and the CI gate.

For each scorer the per-case deltas (candidate - baseline) over the cases both experiments scored give:
- the mean delta with a paired bootstrap confidence interval (resampling cases, seeded: same input, same
  answer);
- a two-sided sign test (scipy ``binomtest`` over the cases that moved) for "did anything change at all".

A scorer **regresses** when the whole interval lies below ``-tolerance`` (we are confident the drop is larger
than what we tolerate) and the sign test says the change is significant at ``1 - confidence``. Noise —
a task of the same quality on another run — leaves the interval straddling zero and passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd
from scipy.stats import binomtest

SEED = 20261201
WORSE_LISTED = 10


@dataclass
class ScorerDelta:
    scorer: str
    cases: int  # paired cases
    baseline_mean: float | None
    candidate_mean: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    regressed: bool
    worse: list[dict] = field(default_factory=list)  # case_id, baseline, candidate, delta (worst first)

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
    candidate: str
    baseline: str
    tolerance: float
    confidence: float
    scorers: list[ScorerDelta]

    @property
    def regressed(self) -> list[ScorerDelta]:
        return [s for s in self.scorers if s.regressed]


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


def compare_scores(baseline: pd.DataFrame, candidate: pd.DataFrame, scorers: list[str], *, tolerance: float,
                   confidence: float, resamples: int = 5000, candidate_id: str = "candidate",
                   baseline_id: str = "baseline") -> Comparison:
    """Per-scorer deltas of two per-case score frames (case_id + one column per scorer)."""
    joined = baseline.merge(candidate, on="case_id", suffixes=("_b", "_c"))
    out = []
    for scorer in scorers:
        if f"{scorer}_b" not in joined or f"{scorer}_c" not in joined:
            out.append(ScorerDelta(scorer, 0, None, None, None, None, None, None, False))
            continue
        pair = joined[["case_id", f"{scorer}_b", f"{scorer}_c"]].dropna()
        b = pair[f"{scorer}_b"].astype(float).to_numpy()
        c = pair[f"{scorer}_c"].astype(float).to_numpy()
        if not len(pair):
            out.append(ScorerDelta(scorer, 0, None, None, None, None, None, None, False))
            continue
        deltas = c - b
        low, high = bootstrap_ci(deltas, confidence, resamples)
        p = sign_test(deltas)
        regressed = high < -tolerance and p < 1 - confidence
        order = np.argsort(deltas, kind="stable")
        worse = [{"case_id": pair["case_id"].iloc[i], "baseline": float(b[i]), "candidate": float(c[i]),
                  "delta": float(deltas[i])} for i in order[:WORSE_LISTED] if deltas[i] < 0]
        out.append(ScorerDelta(scorer, len(pair), float(b.mean()), float(c.mean()), float(deltas.mean()),
                               low, high, p, regressed, worse))
    return Comparison(candidate_id, baseline_id, tolerance, confidence, out)


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def markdown_report(cmp: Comparison, inputs: dict[str, str] | None = None) -> str:
    """A pull-request comment: verdict, a table of scorers, the cases that got worse."""
    inputs = inputs or {}
    level = f"{cmp.confidence:.0%}"
    head = (f"### ❌ Eval gate: {len(cmp.regressed)} scorer(s) regressed" if cmp.regressed
            else "### ✅ Eval gate: no significant regression")
    lines = [
        head, "",
        f"Candidate `{cmp.candidate}` vs baseline `{cmp.baseline}`; a scorer fails when its whole {level} paired "
        f"bootstrap interval lies below -{cmp.tolerance:g} and the sign test is significant.", "",
        f"| scorer | cases | baseline | candidate | delta | {level} CI | sign test p | verdict |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for s in cmp.scorers:
        ci = f"[{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}]" if s.ci_low is not None else "–"
        p = f"{s.p_value:.3g}" if s.p_value is not None else "–"
        lines.append(f"| {s.scorer} | {s.cases} | {_fmt(s.baseline_mean)} | {_fmt(s.candidate_mean)} | "
                     f"{_fmt(s.delta, True)} | {ci} | {p} | {s.verdict} |")
    for s in cmp.scorers:
        if not s.worse:
            continue
        lines += ["", f"<details><summary>{s.scorer}: cases that got worse ({len(s.worse)} shown)</summary>", "",
                  "| case | baseline | candidate | input |", "|---|---:|---:|---|"]
        for w in s.worse:
            text = (inputs.get(w["case_id"]) or "").replace("|", "\\|").replace("\n", " ")[:120]
            lines.append(f"| `{w['case_id']}` | {w['baseline']:.3f} | {w['candidate']:.3f} | {text} |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def junit_xml(cmp: Comparison) -> str:
    """One test case per scorer; a regressed scorer is a failure (any CI shows it as a failed test)."""
    cases = []
    for s in cmp.scorers:
        name = quoteattr(s.scorer)
        body = ""
        if s.regressed:
            message = (f"mean {_fmt(s.baseline_mean)} -> {_fmt(s.candidate_mean)} (delta {_fmt(s.delta, True)}, "
                       f"CI [{_fmt(s.ci_low, True)}, {_fmt(s.ci_high, True)}], p {s.p_value:.3g})")
            body = f'<failure message={quoteattr(message)} type="regression">{escape(message)}</failure>'
        cases.append(f'  <testcase classname="obs_pipelines.eval_gate" name={name}>{body}</testcase>')
    suite = quoteattr(f"eval gate {cmp.candidate} vs {cmp.baseline}")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={suite} tests="{len(cmp.scorers)}" '
            f'failures="{len(cmp.regressed)}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")
