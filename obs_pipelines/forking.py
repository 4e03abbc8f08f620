"""Forked worker pools, shared by ingest and the trace generator.

Fork, not spawn: spawn re-imports the caller's ``__main__``, which a script without a main guard (or a
Dagster process) does not survive. Results are taken in submission order with a bounded number of tasks
in flight, so the parent's memory stays flat however long the input is.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

WORKER_TIMEOUT_S = 600


def fork_context():
    """The fork start method when it is safe here (POSIX, this process runs a single thread), else None."""
    import multiprocessing as mp

    if threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        return mp.get_context("fork")
    return None


def reset_worker_signals() -> None:
    """Call first in a forked worker's initializer.

    A forked worker inherits the parent's signal handlers (Dagster and pytest install their own), and
    Pool.terminate() must be able to stop it with SIGTERM; Ctrl-C is the parent's to handle.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def ordered_map(
    pool, fn: Callable[[Any], Any], tasks: Iterable[Any], in_flight: int
) -> Iterator[tuple[Any, Any]]:
    """``(task, fn(task))`` for each task, run on ``pool``, in task order, at most ``in_flight`` pending.

    Unlike ``Pool.imap`` the tasks are drawn from ``tasks`` in this thread, only as results are taken.
    """
    pending: deque = deque()
    it = iter(tasks)
    for task in it:
        pending.append((task, pool.apply_async(fn, (task,))))
        if len(pending) >= in_flight:
            break
    while pending:
        # a worker killed mid-task (OOM ...) would leave this waiting forever
        done, result = pending.popleft()
        try:
            value = result.get(timeout=WORKER_TIMEOUT_S)
        except BaseException:
            # let the tasks in flight finish before the caller's `with Pool` exit terminates the workers: a
            # worker killed while writing its result keeps the result queue's lock, and Pool.terminate then
            # waits forever for its task handler to write the closing sentinel
            for _task, other in pending:
                other.wait(timeout=WORKER_TIMEOUT_S)
            raise
        for task in it:  # refill one slot before handing the result over
            pending.append((task, pool.apply_async(fn, (task,))))
            break
        yield done, value
