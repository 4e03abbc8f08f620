"""The OTLP/JSON lines writer: batches of traces built and encoded in-process or by forked workers, written
in order (the same bytes for any number of workers)."""

from __future__ import annotations

import gc
import mmap
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import cast

from obs_pipelines.forking import fork_context, ordered_map, reset_worker_signals
from obs_pipelines.synth.incidents import Incident
from obs_pipelines.synth.otlp import encode_trace
from obs_pipelines.synth.routes import build_trace
from obs_pipelines.synth.trace_builder import NO_EFFECTS, ActiveIncident, effects_at
from obs_pipelines.synth.traffic import Arrival, arrival_stream


@dataclass(frozen=True)
class GenerateSummary:
    traces: int
    spans: int
    path: Path
    workers: int = 1  # processes that built and encoded the traces (1: in-process)


# =====================================================================================================
# the OTLP/JSON writer
# =====================================================================================================

BATCH_TRACES = 1000  # traces per worker task (~7 MB of output)
PARALLEL_MIN_TRACES = 4 * BATCH_TRACES  # expected traces below this: in-process (forking does not pay)


def _encode_batch(active: list[ActiveIncident], batch: list[Arrival]) -> tuple[bytes, int]:
    """The OTLP/JSON lines (each ending in a newline) of a batch of arrivals, and their span count.

    The one code path for the serial and the parallel writer, so both write the same bytes.
    """
    rng = random.Random()
    lines: list[bytes] = []
    n_spans = 0
    for trace_seed, t_us, route, user_id, session_id, turn in batch:
        rng.seed(trace_seed)
        fx = effects_at(active, t_us) if active else NO_EFFECTS
        rows = build_trace(rng, fx, t_us, route, user_id, session_id, turn, False)
        n_spans += len(rows)
        lines.append(encode_trace(rows))
    lines.append(b"")
    return b"\n".join(lines), n_spans


SLOT_BYTES = 32 * 2**20  # a batch's output travels through shared memory when it fits (it almost always does)
_worker_active: list[ActiveIncident] = []
_worker_slots: mmap.mmap | None = None


def _worker_init(active: list[ActiveIncident], slots: mmap.mmap) -> None:
    global _worker_active, _worker_slots
    reset_worker_signals()
    # the parent's heap came along with the fork: keep full collections from traversing it again and again
    gc.freeze()
    _worker_active, _worker_slots = active, slots


def _worker_encode(task: tuple[int, list[Arrival]]) -> tuple[int, int, bytes | None]:
    """(bytes written to the task's slot, spans, the bytes themselves only when they did not fit)."""
    slot, batch = task
    data, n_spans = _encode_batch(_worker_active, batch)
    if len(data) > SLOT_BYTES:
        return len(data), n_spans, data
    start = slot * SLOT_BYTES
    slots = cast(mmap.mmap, _worker_slots)  # set by _worker_init in this worker
    slots[start : start + len(data)] = data  # saves pickling and piping ~all of the output
    return len(data), n_spans, None


def _batches(arrivals: Iterator[Arrival], size: int) -> Iterator[list[Arrival]]:
    while batch := list(islice(arrivals, size)):
        yield batch


def write_otlp_jsonl(
    path: str | Path,
    start: datetime,
    hours: float,
    rate: float,
    seed: int,
    incidents: Sequence[Incident] = (),
    workers: int | None = None,
) -> GenerateSummary:
    """Write one OTLP/JSON ExportTraceServiceRequest per line (one trace per line).

    ``workers`` processes (default: the CPU count; 1 = in-process) build and encode batches of traces
    while this process runs the master stream and writes the batches in order; the bytes are the same for
    any number of workers. Small outputs, or a caller with threads running (fork is unsafe), stay in-process.
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    active = [ActiveIncident(i) for i in incidents]
    arrivals = arrival_stream(start, hours, rate, seed)
    workers = (os.cpu_count() or 1) if workers is None else max(1, workers)
    ctx = fork_context() if workers > 1 and rate * hours * 3600 >= PARALLEL_MIN_TRACES else None
    n_traces = n_spans = 0
    with path.open("wb") as fh:
        if ctx is None:
            workers = 1
            for batch in _batches(arrivals, 512):
                data, spans = _encode_batch(active, batch)
                fh.write(data)
                n_traces += len(batch)
                n_spans += spans
        else:
            in_flight = 2 * workers
            # ordered_map hands a result over only after submitting the next task, so the slot of the
            # result being written must differ from those of the tasks in flight: one slot more than them
            n_slots = in_flight + 1
            tasks = ((k % n_slots, batch) for k, batch in enumerate(_batches(arrivals, BATCH_TRACES)))
            with mmap.mmap(-1, n_slots * SLOT_BYTES) as slots, memoryview(slots) as view, ctx.Pool(
                workers, initializer=_worker_init, initargs=(active, slots)
            ) as pool:
                for (slot, batch), (size, spans, data) in ordered_map(pool, _worker_encode, tasks, in_flight):
                    fh.write(view[slot * SLOT_BYTES : slot * SLOT_BYTES + size] if data is None else data)
                    n_traces += len(batch)
                    n_spans += spans
    return GenerateSummary(traces=n_traces, spans=n_spans, path=path, workers=workers)
