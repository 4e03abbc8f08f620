"""The local (CPU-bound) scorers of an hour on every core: the (scorer, example) pairs are split into contiguous
chunks scored by forked workers (obs_pipelines/forking.py), results taken back in task order, so the hour's rows
are the same whatever the worker count (each pair is scored by the same pure function; only where it runs
changes).

The pairs are left in a module global before the pool forks: the workers read them from the copy of the parent's
memory they start with, so no input text is pickled; only the scores travel back. Fewer pairs than
``MIN_CHARS`` of text, one worker, or a process where forking is not safe (more than one thread) score in process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from obs_pipelines.forking import fork_context, ordered_map, reset_worker_signals
from obs_pipelines.scorers.base import Example, Score, Scorer
from obs_pipelines.scorers.batching import batch_gc

WORKERS_ENV = "OBS_PIPELINES_SCORING_WORKERS"
# below this much text (outputs, inputs and contexts of all pairs), forking and sending the scores back cost more
# than the second core saves: the scorers' work grows with the text, not with the number of pairs
MIN_CHARS = 8_000_000
CHUNK_PAIRS = 500

# (scorer name, example) pairs and the scorers, visible to the forked workers
_PAIRS: Sequence[tuple[str, Example]] = ()
_SCORERS: Mapping[str, Scorer] = {}

# (value, reason, details) of the score, or (None, None, None, "<Type>: <message>") when the scorer raised: plain
# tuples, because unpickling a frozen dataclass per pair costs half as much as scoring it
Outcome = tuple[float | None, str | None, Mapping | None, str | None]


def scoring_workers() -> int:
    """Worker processes: env OBS_PIPELINES_SCORING_WORKERS, else the CPUs this process may use."""
    env = os.environ.get(WORKERS_ENV)
    if env is not None and env.strip():
        return max(1, int(env))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _score(name: str, example: Example, scorers: Mapping[str, Scorer]) -> Outcome:
    try:
        score: Score = scorers[name](example)
    except Exception as exc:  # noqa: BLE001 - one response must not fail the hour
        return None, None, None, f"{type(exc).__name__}: {exc}"
    return score.value, score.reason, score.details, None


class _score_chunk_skipping:  # noqa: N801 - a picklable function of the chunk bounds
    """Scores a chunk of _PAIRS, leaving None at the indexes already scored in the parent."""

    def __init__(self, done: Mapping[int, Outcome]) -> None:
        self.done = frozenset(done)

    def __call__(self, bounds: tuple[int, int]) -> list[Outcome | None]:
        first, last = bounds
        with batch_gc():
            return [None if first + i in self.done else _score(name, example, _SCORERS)
                    for i, (name, example) in enumerate(_PAIRS[first:last])]


def _text_size(pairs: Sequence[tuple[str, Example]], enough: int) -> int:
    """Characters the pairs' scorers read (stops counting once ``enough``)."""
    total = 0
    for _name, example in pairs:
        total += len(example.output or "") + len(example.input or "") + sum(len(c) for c in example.context or ())
        if total >= enough:
            break
    return total


def score_pairs(pairs: Sequence[tuple[str, Example]], scorers: Mapping[str, Scorer],
                workers: int | None = None, min_chars: int | None = None) -> list[Outcome]:
    """One outcome per pair, in the pairs' order."""
    global _PAIRS, _SCORERS
    workers = scoring_workers() if workers is None else workers
    min_chars = MIN_CHARS if min_chars is None else min_chars
    context = fork_context() if workers > 1 and _text_size(pairs, min_chars) >= min_chars else None
    if context is None:
        with batch_gc():
            return [_score(name, example, scorers) for name, example in pairs]
    # the first pair of each scorer is scored here, before the fork: what a scorer loads on first use (a
    # language model, compiled patterns, caches) is then in the memory every worker starts from, instead of
    # being loaded again by each worker of each hour
    first: dict[int, Outcome] = {}
    seen: set[str] = set()
    for index, (name, example) in enumerate(pairs):
        if name not in seen:
            seen.add(name)
            first[index] = _score(name, example, scorers)
    _PAIRS, _SCORERS = pairs, scorers
    try:
        chunks = [(i, min(i + CHUNK_PAIRS, len(pairs))) for i in range(0, len(pairs), CHUNK_PAIRS)]
        outcomes: list[Outcome] = []
        with context.Pool(workers, initializer=reset_worker_signals) as pool:
            for (start, _end), chunk in ordered_map(pool, _score_chunk_skipping(first), chunks, 2 * workers):
                for offset, outcome in enumerate(chunk):
                    outcomes.append(first.get(start + offset, outcome))
        return outcomes
    finally:
        _PAIRS, _SCORERS = (), {}
