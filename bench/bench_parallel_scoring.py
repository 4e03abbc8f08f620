"""Benchmark of scoring on every core (issue 23; run by hand): the default scorer set over responses of real
lengths (lognormal: outputs median ~430 / p90 ~14k characters, contexts median ~1.9k / p90 ~19k, the
distribution issue 23 measured), scored by ``parallel.score_pairs`` with 1 worker (the baseline) and with
``--workers`` (default: every CPU), alternated, best of 3, in the same run. The outcomes are the same either way
(checked here, and in obs_pipelines_tests/online_evals/test_parallel_scoring.py).

    .venv/bin/python bench/bench_parallel_scoring.py [--responses 1500] [--workers N]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.online_evals import parallel, scoring  # noqa: E402
from obs_pipelines.online_evals.config import OnlineEvalsSettings  # noqa: E402
from obs_pipelines.scorers.base import Example  # noqa: E402

WORDS = ("the order shipped on March 3 and arrives within 5 business days; a refund of $25.00 goes back to the "
         "original card after the return is scanned at the warehouse in Leeds, usually 2 to 4 days later. "
         "contact support through the help center if the tracking number does not update for 48 hours").split()


def lognormal_chars(rng: random.Random, median: float, p90: float) -> int:
    sigma = math.log(p90 / median) / 1.2816
    return max(20, int(rng.lognormvariate(math.log(median), sigma)))


def text(rng: random.Random, chars: int) -> str:
    out, size = [], 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)


def responses(count: int, seed: int = 4) -> list[Example]:
    rng = random.Random(seed)
    return [Example(input=text(rng, 80), output=text(rng, lognormal_chars(rng, 430, 14_000)),
                    context=tuple(text(rng, lognormal_chars(rng, 1_900, 19_000) // 3) for _ in range(3)))
            for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--responses", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=parallel.scoring_workers())
    args = parser.parse_args()
    scorers = scoring.scorers_for(OnlineEvalsSettings())
    pairs = [(name, example) for example in responses(args.responses) for name in scorers]
    best = {1: float("inf"), args.workers: float("inf")}
    results = {}
    for _ in range(3):
        for workers in best:
            began = time.perf_counter()
            results[workers] = parallel.score_pairs(pairs, scorers, workers=workers, min_chars=0)
            best[workers] = min(best[workers], time.perf_counter() - began)
    assert results[1] == results[args.workers], "outcomes differ between worker counts"
    print(f"{args.responses:,} responses of real lengths x {len(scorers)} default scorers = {len(pairs):,} pairs, "
          f"best of 3 (outcomes identical)")
    for workers, seconds in best.items():
        print(f"workers={workers}: {seconds:.2f} s, {args.responses / seconds:,.0f} responses/s, "
              f"{best[1] / seconds:.2f}x the 1-worker baseline")


if __name__ == "__main__":
    main()
