"""Benchmark of the clusters of failing inputs (issue 19, "Speed"; run by hand, not by pytest): a day of
``--requests`` requests (default 100,000) with ``--failing`` of them failing (default 5 %), most of the failures
planted on one kind of question. Target: under 30 s for the default day.

    .venv/bin/python bench/bench_clusters.py [--requests 100000] [--failing 0.05]

Baseline in the same run: the TF-IDF fit over the day's inputs alone (the least any text clustering of the day
must do), so the ratio says what the SVD, k-means and assignment add on top of reading the words.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.online_evals.clusters import cluster_failures  # noqa: E402

SUBJECTS = ["invoice", "password reset", "shipping delay", "refund for a damaged item", "account deletion",
            "plan upgrade", "two-factor login", "gift card balance", "address change", "warranty claim",
            "data export", "team invitation", "API rate limit", "dark mode", "mobile app crash"]
FRAMES = ["how do I handle {s}?", "question about {s} for order {n}", "{s} is not working since {d}",
          "can you explain the {s} policy", "my manager asked about {s}", "urgent: {s} on account {n}",
          "is there a fee for {s}", "where can I see my {s}", "{s} - what are the steps", "help with {s} please"]
DAYS = ["Monday", "Tuesday", "yesterday", "last week", "this morning"]


def day(requests: int, failing: float, seed: int = 5) -> pd.DataFrame:
    rng = random.Random(seed)
    planted = "warranty claim"
    # the planted subject holds ~70 % of the failures; the rest fail at random
    planted_rate = min(1.0, failing * 0.7 * len(SUBJECTS))
    other_rate = failing * 0.3 * len(SUBJECTS) / (len(SUBJECTS) - 1)
    rows = []
    for i in range(requests):
        subject = rng.choice(SUBJECTS)
        text = rng.choice(FRAMES).format(s=subject, n=rng.randint(1000, 99999), d=rng.choice(DAYS))
        fail = rng.random() < (planted_rate if subject == planted else other_rate)
        rows.append((f"{i:032x}", text, fail, rng.choice(["web", "mobile", "api"]), "quality" if fail else ""))
    return pd.DataFrame(rows, columns=["trace_id", "input", "failing", "route", "failing_scorers"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--failing", type=float, default=0.05)
    args = parser.parse_args()
    frame = day(args.requests, args.failing)
    from sklearn.feature_extraction.text import TfidfVectorizer

    began = time.perf_counter()
    TfidfVectorizer(sublinear_tf=True).fit_transform(frame["input"])
    baseline = time.perf_counter() - began
    began = time.perf_counter()
    clusters = cluster_failures(frame)
    seconds = time.perf_counter() - began
    top = clusters.iloc[0]
    print(f"requests {len(frame):,}, failing {int(frame['failing'].sum()):,}, clusters {len(clusters)}")
    print(f"top cluster: {top['label']!r}, {top['failure_share']:.0%} of failures, {top['traffic_share']:.1%} of "
          f"traffic, lift {top['lift']:.1f}")
    print(f"baseline (TF-IDF fit only): {baseline:.2f} s")
    print(f"cluster_failures: {seconds:.2f} s = {seconds / baseline:.1f}x the baseline; target 30 s: "
          f"{'met' if seconds < 30 else 'NOT met'} ({seconds / 30:.2f} of it)")


if __name__ == "__main__":
    main()
