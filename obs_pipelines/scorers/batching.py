"""Scoring many examples in one go: the garbage-collector setting both eval phases score their batches under
(online_evals/parallel.py per chunk of an hour, offline_evals/experiments.py per experiment)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# the garbage collector's first threshold while a batch is scored (CPython's default: 700 allocations)
BATCH_GC_THRESHOLD = 50_000


@contextmanager
def batch_gc() -> Iterator[None]:
    """Fewer garbage collections while scorers run: they allocate millions of short-lived sets and tuples that
    reference counting frees (no cycles), and every collection also walks the long-lived caches of prepared
    documents; at the default threshold collections took ~20-30% of the scoring time. Cycles are still
    collected, every BATCH_GC_THRESHOLD allocations instead of every 700."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], BATCH_GC_THRESHOLD), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
