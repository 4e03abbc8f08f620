"""Benchmark of reading a judge's verdict (scorers/verdict.py; issue 20.4; run by hand, not by pytest).

    .venv/bin/python bench/bench_judge_parse.py [--sizes 200000,400000,800000,1600000]

For each answer shape (a normal verdict padded with reasoning, and the hostile shapes: runs of ``{``, deep
nesting of a valid prefix, the verdict key repeated with unclosed strings, quotes, backslashes) the parse is
timed at growing sizes, best of 3, in ONE run. The figure to read is the ratio of time per character at each
size to that at the smallest size: flat (about 1x) means linear; a quadratic parse doubles it at every doubling.
For the baseline, the regex the old parser used (a greedy ``\\{.*\\}`` search) is timed on the smallest run of
``{`` only (it never finishes at the probe's 200,000).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.scorers.verdict import parse_verdict

LABELS = ("A", "B", "C", "D", "E")
SHAPES = {
    "verdict after long reasoning": lambda n: '{"reasoning": "' + "it said 5 days {a}. " * (n // 20)
                                             + '", "choice": "D"}',
    "open braces": lambda n: "{" * n,
    "nested valid prefix": lambda n: '{"a":' * (n // 5),
    "verdict key, strings unclosed": lambda n: '{"choice": "' * (n // 12),
    "key lines": lambda n: "Choice: " * (n // 8),
    "quotes": lambda n: '"' * n,
    "backslashes": lambda n: "\\" * n,
}


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200000,400000,800000,1600000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print(f"sizes (characters): {sizes}; ratio = (seconds per character at a size) / (at {sizes[0]})")
    for name, make in SHAPES.items():
        cells, base = [], None
        for size in sizes:
            text = make(size)
            seconds = best_of(lambda text=text: parse_verdict(text, LABELS))
            per_char = seconds / len(text)
            base = base or per_char
            cells.append(f"{seconds * 1000:8.1f} ms ({per_char / base:4.1f}x)")
        print(f"{name:32s} " + "  ".join(cells))
    small = "{" * 5000
    old = best_of(lambda: re.search(r"\{.*\}", small, re.DOTALL), 1)
    new = best_of(lambda: parse_verdict(small, LABELS), 1)
    print(f"\nbaseline, 5,000 '{{': old greedy regex {old * 1000:.1f} ms vs parse_verdict {new * 1000:.1f} ms "
          f"({old / new:.0f}x); the old one grows with the square (x{(200_000 / 5000) ** 2:.0f} at 200,000)")


if __name__ == "__main__":
    main()
