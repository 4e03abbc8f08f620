"""Big JSON-lines files are decoded and mapped by worker processes: same rows, same counts, same rejects as
the in-process path."""

from __future__ import annotations

import gzip
import json

import pytest

from obs_pipelines.ingest import runner
from obs_pipelines.ingest.runner import ingest_paths
from obs_pipelines_tests.ingest.otlp_builders import comparable, reject_rows, span_rows
from obs_pipelines_tests.real_trace_counts import real_counts

TRACES_FILE = "framework-traces.otlp.jsonl"


@pytest.fixture
def parallel_everything(monkeypatch):
    """Every JSON-lines file takes the worker path, in chunks of a few lines."""
    monkeypatch.setattr(runner, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(runner, "CHUNK_BYTES", 50_000)
    calls = []
    real = runner._ingest_jsonl_parallel

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_ingest_jsonl_parallel", spy)
    return calls


def _mixed_file(tmp_path, real_traces_dir, gz=False):
    lines = (real_traces_dir / TRACES_FILE).read_bytes().splitlines()
    bad = [lines[3][:200], b"\xff\xfe not utf-8", b"[1]"]
    data = b"\n".join(lines[:10] + bad + lines[10:]) + b"\n"
    path = tmp_path / ("mixed.jsonl.gz" if gz else "mixed.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _ingest(store, path, workers):
    summary = ingest_paths(store.engine, [path], workers=workers)
    rows = {k: comparable(v) for k, v in span_rows(store.engine).items()}
    rejects = [(r["location"], r["reason"], r["payload"]) for r in reject_rows(store.engine)]
    return summary, rows, rejects


def test_worker_processes_give_the_same_rows_counts_and_rejects_as_in_process(
    store, tmp_path, real_traces_dir, parallel_everything
):
    path = _mixed_file(tmp_path, real_traces_dir)
    parallel = _ingest(store, path, workers=2)
    assert parallel_everything == [path]
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM spans")
        conn.exec_driver_sql("DELETE FROM ingest_rejects")
    in_process = _ingest(store, path, workers=0)
    assert parallel_everything == [path]  # the second run did not use workers
    assert parallel == in_process
    summary, rows, rejects = parallel
    real = real_counts()  # plus the three bad lines, read and rejected
    assert (summary.read, summary.stored, summary.duplicate, summary.rejected) == (real.read + 3, real.stored, real.duplicate, 3)
    assert [loc for loc, _, _ in rejects] == ["line 11", "line 12", "line 13"]


def test_a_gzipped_jsonl_file_takes_the_worker_path(store, tmp_path, real_traces_dir, parallel_everything):
    summary, rows, _ = _ingest(store, _mixed_file(tmp_path, real_traces_dir, gz=True), workers=2)
    assert len(parallel_everything) == 1
    assert (summary.stored, summary.rejected) == (real_counts().stored, 3)


def test_a_truncated_gzip_file_keeps_what_was_read_and_rejects_the_rest(
    store, tmp_path, real_traces_dir, parallel_everything
):
    full = gzip.compress((real_traces_dir / TRACES_FILE).read_bytes())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(full[: len(full) * 2 // 3])
    summary, rows, rejects = _ingest(store, path, workers=2)
    assert summary.read == summary.stored + summary.duplicate + summary.rejected
    assert rejects[-1][1].startswith("read error")


def test_a_batch_the_database_refuses_is_retried_row_by_row_in_process(
    store, tmp_path, real_traces_dir, parallel_everything, monkeypatch
):
    real_write = runner.write_prepared_spans
    failed = []

    def refuse_first(engine, prepared):
        if not failed:
            failed.append(prepared.count)
            raise ValueError("refused")
        return real_write(engine, prepared)

    monkeypatch.setattr(runner, "write_prepared_spans", refuse_first)
    summary, rows, rejects = _ingest(store, real_traces_dir / TRACES_FILE, workers=2)
    assert failed and (summary.stored, summary.rejected) == (real_counts().stored, 0)


def test_reingesting_through_workers_counts_duplicates(store, real_traces_dir, parallel_everything):
    ingest_paths(store.engine, [real_traces_dir / TRACES_FILE], workers=2)
    again = ingest_paths(store.engine, [real_traces_dir / TRACES_FILE], workers=2)
    read = real_counts().read
    assert (again.read, again.stored, again.duplicate) == (read, 0, read)


def test_workers_are_not_used_for_small_files(store, real_traces_dir, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "_ingest_jsonl_parallel", lambda *a, **k: calls.append(a))
    summary = ingest_paths(store.engine, [real_traces_dir / TRACES_FILE], workers=2)
    assert calls == [] and summary.stored == real_counts().stored


def test_worker_count_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(runner.WORKERS_ENV, "3")
    assert runner.ingest_workers() == 3
    monkeypatch.setenv(runner.WORKERS_ENV, "0")
    assert runner.ingest_workers() == 0


def test_json_lines_with_an_unreadable_chunk_boundary_line_are_all_accounted(
    store, tmp_path, real_traces_dir, parallel_everything
):
    lines = (real_traces_dir / TRACES_FILE).read_text().splitlines()
    reqs = [json.loads(x) for x in lines]
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in reqs * 3) + "\n\n")
    summary = ingest_paths(store.engine, [path], workers=2)
    real = real_counts()  # the file three times: everything past the first copy is a duplicate
    assert (summary.read, summary.stored, summary.duplicate) == (3 * real.read, real.stored, 3 * real.read - real.stored)


def test_parallel_ingest_turns_the_cyclic_gc_back_on(store, tmp_path, real_traces_dir, parallel_everything):
    """The writing process runs the parallel path with the automatic GC off; it must be on again after,
    also when the parallel path fails."""
    import gc

    path = _mixed_file(tmp_path, real_traces_dir)
    assert gc.isenabled()
    ingest_paths(store.engine, [path], workers=2)
    assert gc.isenabled()
    orig = runner._ingest_jsonl_parallel_gc_off

    def boom(*args, **kwargs):
        assert not gc.isenabled()
        raise RuntimeError("boom")

    runner._ingest_jsonl_parallel_gc_off = boom
    try:  # an unexpected error in a file is that file's reject, not the run's end
        summary = ingest_paths(store.engine, [path], workers=2)
    finally:
        runner._ingest_jsonl_parallel_gc_off = orig
    assert summary.rejected >= 1
    assert gc.isenabled()
