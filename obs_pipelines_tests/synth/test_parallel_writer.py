"""write_otlp_jsonl with forked workers: the same bytes as in-process, in-process when forking does not pay."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import datetime, timedelta

import pytest

from obs_pipelines.synth import writer
from obs_pipelines.synth.generator import INCIDENT_NAMES, Incident, write_otlp_jsonl

START = datetime(2026, 11, 2, 8)
HOURS, RATE, SEED = 1.0, 0.5, 13  # ~1,800 traces: many batches of 100


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(writer, "BATCH_TRACES", 100)
    monkeypatch.setattr(writer, "PARALLEL_MIN_TRACES", 0)


def _every_incident() -> list[Incident]:
    # overlapping 10-minute windows, one after another, all inside the run
    return [
        Incident(name, START + timedelta(minutes=5 + 6 * i), timedelta(minutes=10))
        for i, name in enumerate(INCIDENT_NAMES)
    ]


def test_parallel_writer_writes_the_same_bytes_as_the_serial_writer(tmp_path, small_batches):
    serial = write_otlp_jsonl(tmp_path / "serial.jsonl", START, HOURS, RATE, SEED, _every_incident(), workers=1)
    parallel = write_otlp_jsonl(tmp_path / "parallel.jsonl", START, HOURS, RATE, SEED, _every_incident(), workers=2)
    assert (serial.workers, parallel.workers) == (1, 2)
    assert serial.traces > 10 * writer.BATCH_TRACES
    assert (parallel.traces, parallel.spans) == (serial.traces, serial.spans)
    assert parallel.path.read_bytes() == serial.path.read_bytes()


def test_batches_too_big_for_shared_memory_still_arrive_intact(tmp_path, small_batches, monkeypatch):
    monkeypatch.setattr(writer, "SLOT_BYTES", 64 * 1024)  # most batches of 100 traces are bigger
    serial = write_otlp_jsonl(tmp_path / "serial.jsonl", START, HOURS, RATE, SEED, workers=1)
    parallel = write_otlp_jsonl(tmp_path / "parallel.jsonl", START, HOURS, RATE, SEED, workers=2)
    assert parallel.workers == 2
    assert parallel.path.read_bytes() == serial.path.read_bytes()


def test_small_outputs_are_written_in_process(tmp_path):
    summary = write_otlp_jsonl(tmp_path / "t.jsonl", START, 0.1, 0.5, SEED, workers=2)
    assert summary.traces > 0 and summary.workers == 1


def test_a_caller_with_threads_running_is_served_in_process(tmp_path, small_batches):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        summary = write_otlp_jsonl(tmp_path / "t.jsonl", START, 0.2, RATE, SEED, workers=2)
    finally:
        stop.set()
        thread.join()
    assert summary.workers == 1


def test_a_worker_error_reaches_the_caller_and_leaves_no_worker_behind(tmp_path, small_batches, monkeypatch):
    def broken(active, batch):
        raise RuntimeError("encode failed")

    monkeypatch.setattr(writer, "_encode_batch", broken)  # the forked workers inherit it
    with pytest.raises(RuntimeError, match="encode failed"):
        write_otlp_jsonl(tmp_path / "t.jsonl", START, HOURS, RATE, SEED, workers=2)
    assert multiprocessing.active_children() == []
