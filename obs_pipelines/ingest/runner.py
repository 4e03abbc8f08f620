"""Ingest OTLP files into the trace store: read -> map -> write batches, every reject kept.

`ingest_paths(engine, paths)` is what the CLI, the landing-directory job (`ingest_file`) and the benchmark
call. It never raises on bad input: unreadable records and unmappable spans go to `ingest_rejects` with
their reason and raw payload (capped, see `IngestLimits`), and a batch the database refuses is split until
the offending rows are found and rejected. Spans that would fail a blocking data-quality check are
quarantined there too. A file that fails in an unexpected way gets one reject row and the run goes on
with the next file. Database connection errors are retried with backoff; when they persist,
`IngestDatabaseError` (one readable line) is raised: the batches committed before stay, and re-running the
same ingest converges.

Accounting: read = spans seen + unreadable records; read == stored + duplicate + rejected.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from obs_pipelines.forking import fork_context, ordered_map, reset_worker_signals
from obs_pipelines.ingest.landing import path_text
from obs_pipelines.ingest.limits import DEFAULT_LIMITS, IngestLimits
from obs_pipelines.ingest.mapping import Reject, dumps_text, escape_payload, map_request
from obs_pipelines.ingest.readers import (
    Record,
    cap_payload,
    damage_reason,
    decode_jsonl_line,
    expand_paths,
    is_jsonl_file,
    iter_file,
    iter_line_chunks,
    open_stream,
    raw_text,
)
from obs_pipelines.store.db import (
    create_tables,
    insert_rows,
    insert_spans,
    prepare_spans,
    utcnow,
    write_prepared_spans,
)
from obs_pipelines.store.schema import ingest_rejects
from obs_pipelines.store.span_checks import may_fail, row_failure

if TYPE_CHECKING:
    from multiprocessing.context import ForkContext

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000

try:  # pragma: no cover - psycopg2 is a dependency, but keep ingest importable without it
    import psycopg2

    _INFRA_ERRORS: tuple[type[BaseException], ...] = (
        sqlite3.OperationalError,
        sqlite3.InterfaceError,
        psycopg2.OperationalError,
        psycopg2.InterfaceError,
        sa_exc.OperationalError,
        sa_exc.InterfaceError,
        sa_exc.DisconnectionError,
    )
except ImportError:  # pragma: no cover
    _INFRA_ERRORS = (sqlite3.OperationalError, sqlite3.InterfaceError, sa_exc.OperationalError)

T = TypeVar("T")


class IngestDatabaseError(RuntimeError):
    """The trace store stayed unreachable through every retry. The batches committed before it stay;
    re-running the same ingest stores the rest (spans already stored count as duplicates)."""


# never turned into a reject: they stop the run (after the retries)
_FATAL_ERRORS = (IngestDatabaseError, *_INFRA_ERRORS)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _INFRA_ERRORS)


def with_db_retry(engine: Engine, limits: IngestLimits, fn: Callable[..., T], *args) -> T:
    """`fn(*args)`, retried on connection errors (server restart, network drop, locked SQLite) with
    exponential backoff; after `limits.db_retry_attempts` attempts, IngestDatabaseError. Safe to retry:
    a write that failed was rolled back, and span writes ignore rows already stored."""
    delay = limits.db_retry_delay_s
    for attempt in range(1, limits.db_retry_attempts + 1):
        try:
            return fn(*args)
        except Exception as exc:
            if not _is_connection_error(exc):
                raise
            if attempt >= limits.db_retry_attempts:
                raise IngestDatabaseError(
                    f"trace store unreachable after {attempt} attempts ({_one_line(exc)}); the batches "
                    "committed before stay stored, re-run the same ingest to store the rest"
                ) from exc
            log.warning("database error (attempt %d, retrying in %.1fs): %s", attempt, delay, _one_line(exc))
            engine.dispose()  # pooled connections to a restarted server are dead
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


@dataclass
class IngestSummary:
    read: int = 0  # spans seen + unreadable records
    stored: int = 0  # new rows in `spans`
    duplicate: int = 0  # spans already stored (same trace_id, span_id), including repeats in the input
    rejected: int = 0  # rows written to `ingest_rejects`
    files: int = 0

    def __add__(self, other: IngestSummary) -> IngestSummary:
        return IngestSummary(
            self.read + other.read,
            self.stored + other.stored,
            self.duplicate + other.duplicate,
            self.rejected + other.rejected,
            self.files + other.files,
        )


class _Writer:
    """Buffers rows and rejects and writes them in batches on a background thread.

    Database drivers release the GIL while the database works, so parsing and mapping the next batch
    overlaps with writing the previous one. All writes happen on that one thread (SQLite has a single
    writer anyway); the counts it keeps are read only after `finish()` joined it.
    """

    def __init__(self, engine: Engine, batch_size: int, threaded: bool = True, limits: IngestLimits = DEFAULT_LIMITS):
        self.engine = engine
        self.limits = limits
        self.batch_size = max(1, int(batch_size))
        self.rows: list[dict] = []
        self.origins: list[tuple[str, str]] = []
        self.rejects: list[dict] = []
        self.summary = IngestSummary()
        self._error: BaseException | None = None
        self._threaded = threaded
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None

    # -- input (main thread)

    def unreadable(self, rec: Record) -> None:
        self.summary.read += 1
        self._reject(rec.source, rec.location, rec.error or "unreadable", rec.raw or "")

    def mapped(self, origin: tuple[str, str], rows: list[dict], rejects: list[Reject]) -> None:
        self.summary.read += len(rows) + len(rejects)
        for r in rejects:
            loc = f"{origin[1]}: {r.location}" if r.location else origin[1]
            self._reject(origin[0], loc, r.reason, r.payload)
        rows, quarantined = quarantine(rows)
        for row, why in quarantined:
            self._reject(origin[0], _row_location(origin[1], row), why, dumps_text(row))
        if rows:
            self.rows.extend(rows)
            self.origins.extend([origin] * len(rows))
            if len(self.rows) >= self.batch_size:
                self.flush()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _reject(self, source: str, location: str, reason: str, payload: str) -> None:
        self.rejects.append(_reject_row(source, location, reason, payload, self.limits))
        if len(self.rejects) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self._error is not None:
            raise self._error
        rows, origins, rejects = self.rows, self.origins, self.rejects
        self.rows, self.origins, self.rejects = [], [], []
        if not rows and not rejects:
            return
        if not self._threaded:
            self._write(rows, origins, rejects)
            return
        if self._thread is None:  # started on first use, stopped by drain() / close()
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._run, name="obs-ingest-writer", daemon=True)
            self._thread.start()
        cast(queue.Queue, self._queue).put((rows, origins, rejects))  # made with the thread

    def finish(self) -> IngestSummary:
        try:
            self.flush()
        finally:
            self.close()
        if self._error is not None:
            raise self._error
        s = self.summary
        s.duplicate = s.read - s.stored - s.rejected
        return s

    def close(self) -> None:
        if self._thread is not None:
            cast(queue.Queue, self._queue).put(None)  # made with the thread
            self._thread.join()
            self._thread = None

    # -- output (writer thread)

    def _run(self) -> None:
        q = cast(queue.Queue, self._queue)  # made before this thread started
        while True:
            item = q.get()
            try:
                if item is None:
                    return
                if self._error is not None:
                    continue  # drain after a failure; the main thread raises it
                self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._error = exc
            finally:
                q.task_done()

    def drain(self) -> None:
        """Write everything buffered and stop the writer thread (this process is single-threaded after)."""
        self.flush()
        self.close()
        if self._error is not None:
            raise self._error

    def _write(self, rows: list[dict], origins: list[tuple[str, str]], rejects: list[dict]) -> None:
        if rows:
            self.summary.stored += self.insert(rows, origins)
        if rejects:
            self.summary.rejected += self._insert_rejects(rejects)

    def _insert_rejects(self, rejects: list[dict]) -> int:
        return with_db_retry(self.engine, self.limits, insert_rows, self.engine, ingest_rejects, rejects)

    def insert(self, rows: list[dict], origins: list[tuple[str, str]]) -> int:
        """insert_spans; when the database refuses the batch, bisect to reject only the bad rows."""
        try:
            return with_db_retry(self.engine, self.limits, insert_spans, self.engine, rows)
        except _FATAL_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - data the database refuses is a reject, not a crash
            if len(rows) == 1:
                row = rows[0]
                reject = _reject_row(
                    origins[0][0],
                    _row_location(origins[0][1], row),
                    f"database refused the row: {type(exc).__name__}: {str(exc).strip()[:500]}",
                    dumps_text(row),
                    self.limits,
                )
                self.summary.rejected += self._insert_rejects([reject])
                return 0
            mid = len(rows) // 2
            return self.insert(rows[:mid], origins[:mid]) + self.insert(rows[mid:], origins[mid:])


def _reject_row(source: str, location: str, reason: str, payload: str, limits: IngestLimits = DEFAULT_LIMITS) -> dict:
    return {
        "source": path_text(source),  # a file name that is not UTF-8 cannot be stored as it is
        "location": location,
        "reason": escape_payload(reason),
        "payload": escape_payload(cap_payload(payload, limits.max_reject_payload_bytes)),
        "rejected_at": utcnow(),
    }


# ---- quarantine: what ingest stores must pass the blocking (ERROR) checks of the hourly quality gate ------
# The checks are the span contract's (store/span_checks.py), which monitoring's quality gate runs too. Ids,
# end >= start and status are already guaranteed by the mapping; checked again here because one bad row would
# block its whole hour.


def quarantine_reason(row: dict) -> str | None:
    """Why `row` would fail a blocking data-quality check (the reason names the check), else None."""
    bad = row_failure(row)
    return None if bad is None else f"quarantined: fails blocking quality check {bad}"


def quarantine(rows: list[dict]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """(rows to store, [(row, reason)] to reject); `rows` itself when all pass (the common case)."""
    try:
        if not any(map(may_fail, rows)):
            return rows, []
    except (KeyError, TypeError):  # a row not shaped like the mapping's: take the slow path
        pass
    keep: list[dict] = []
    bad: list[tuple[dict, str]] = []
    for r in rows:
        why = quarantine_reason(r)
        if why is None:
            keep.append(r)
        else:
            bad.append((r, why))
    return keep, bad


def _row_location(loc: str, row: dict) -> str:
    return f"{loc}: trace {row.get('trace_id')} span {row.get('span_id')}"


# ---- parallel path for big JSON-lines files ----------------------------------------------------------
# Worker processes decode, map and serialize (to the exact COPY text / parameter tuples of the store);
# this process only writes, so decoding and mapping run beside the database instead of before it.

PARALLEL_MIN_BYTES = 32 * 2**20  # smaller files: in-process (starting workers is not worth it)
CHUNK_BYTES = 4 * 2**20
WORKERS_ENV = "OBS_PIPELINES_INGEST_WORKERS"


def ingest_workers() -> int:
    """Worker processes for big files: env OBS_PIPELINES_INGEST_WORKERS, else the CPU count (max 4);
    0 or 1 CPU -> in-process only."""
    env = os.environ.get(WORKERS_ENV)
    if env is not None and env.strip():
        return max(0, int(env))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cpus) if cpus > 1 else 0


def _map_lines(source: str, first: int, lines: list, limits: IngestLimits = DEFAULT_LIMITS):
    """Decode and map a chunk of JSON lines (bytes, or `Oversize` for a line over the limit):
    (rows, row origins, reject rows, read count)."""
    rows: list[dict] = []
    origins: list[tuple[str, str]] = []
    rejects: list[dict] = []
    read = 0
    depth = limits.max_json_depth
    for i, line in enumerate(lines):
        loc = f"line {first + i}"
        if type(line) is not bytes:
            read += 1
            rejects.append(_reject_row(source, loc, line.reason(limits), line.payload(), limits))
            continue
        if not line.strip():
            continue
        payload, error = decode_jsonl_line(line, depth)
        if error is None:
            try:
                out, rej = map_request(payload)
            except Exception as exc:  # noqa: BLE001
                error = f"mapping error: {type(exc).__name__}: {exc}"
        if error is not None:
            read += 1
            rejects.append(_reject_row(source, loc, error, raw_text(line), limits))
            continue
        read += len(out) + len(rej)
        for r in rej:
            rejects.append(_reject_row(source, f"{loc}: {r.location}" if r.location else loc, r.reason, r.payload, limits))
        out, quarantined = quarantine(out)
        for row, why in quarantined:
            rejects.append(_reject_row(source, _row_location(loc, row), why, dumps_text(row), limits))
        if out:
            rows.extend(out)
            origins.extend([(source, loc)] * len(out))
    return rows, origins, rejects, read


def _worker_init() -> None:
    reset_worker_signals()
    # a forked worker inherits the whole heap of the parent (SQLAlchemy, pandas ...): keep the cyclic
    # GC from traversing it again and again while mapping allocates millions of short-lived containers
    gc.freeze()
    # and keep it off while a chunk is mapped: the decoded payloads and rows of a chunk stay alive until
    # the chunk is done, so every young-generation collection would re-traverse them (it was ~half the
    # decode time). They hold no reference cycles; whatever cycles there are get collected per chunk.
    gc.disable()


def _work_chunk(args):
    dialect, source, first, lines, batch_size, limits = args
    rows, _, rejects, read = _map_lines(source, first, lines, limits)
    prepared = [prepare_spans(dialect, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    del rows
    _collect_sometimes()
    return prepared, rejects, read


_chunks_done = 0


def _collect_sometimes() -> None:
    """Collect cycles every 16 chunks in a worker (its automatic GC is off, see _worker_init)."""
    global _chunks_done
    _chunks_done += 1
    if _chunks_done % 16 == 0:
        gc.collect()


def _ingest_jsonl_parallel(engine: Engine, path, writer: _Writer, workers: int) -> None:
    # this process only unpickles prepared batches and writes them: no reference cycles are made, and
    # the automatic GC would only keep re-traversing the batches in flight
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _ingest_jsonl_parallel_gc_off(engine, path, writer, workers)
    finally:
        if gc_was_enabled:
            gc.enable()


def _ingest_jsonl_parallel_gc_off(engine: Engine, path, writer: _Writer, workers: int) -> None:
    source = str(path)
    dialect = engine.dialect.name
    bs = writer.batch_size
    limits = writer.limits
    summary = writer.summary
    read_error: str | None = None
    opened = open_stream(path, limits)

    def tasks():
        nonlocal read_error
        chunks = iter_line_chunks(opened, CHUNK_BYTES, limits)
        while True:
            try:
                first, lines = next(chunks)
            except StopIteration:
                damage = opened.damage()  # gzip damage / a limit: what came before was read
                read_error = damage_reason(damage) if damage is not None else None
                return
            except (OSError, EOFError, ValueError) as exc:  # I/O error
                read_error = f"read error: {type(exc).__name__}: {exc}"
                return
            yield dialect, source, first, lines, bs, limits

    def write(fn, *args):
        return with_db_retry(engine, limits, fn, engine, *args)

    try:
        # the caller (_ingest_one) takes this path only when fork_context() is not None
        with cast("ForkContext", fork_context()).Pool(workers, initializer=_worker_init) as pool:
            chunks_written = 0
            # the next chunk is submitted before this one is written, so the workers stay busy meanwhile
            for (_, _, first, lines, _, _), (prepared_list, rejects, read) in ordered_map(
                pool, _work_chunk, tasks(), 2 * workers
            ):
                summary.read += read
                for k, prepared in enumerate(prepared_list):
                    try:
                        summary.stored += write(write_prepared_spans, prepared)
                    except _FATAL_ERRORS:
                        raise
                    except Exception:  # noqa: BLE001 - find the refused rows in-process
                        rows, origins, _, _ = _map_lines(source, first, lines, limits)
                        rows, _ = quarantine(rows)  # the same rows the worker prepared
                        summary.stored += writer.insert(rows[k * bs : (k + 1) * bs], origins[k * bs : (k + 1) * bs])
                if rejects:
                    summary.rejected += write(insert_rows, ingest_rejects, rejects)
                chunks_written += 1
                if chunks_written % 64 == 0:  # whatever cycles the driver / pool made meanwhile
                    gc.collect()
    finally:
        opened.close()
    if read_error is not None:
        summary.read += 1
        summary.rejected += write(insert_rows, ingest_rejects, [_reject_row(source, "file", read_error, "", limits)])


def _use_parallel(path, workers: int) -> bool:
    if workers < 1 or not is_jsonl_file(path):
        return False
    try:
        return os.path.getsize(path) >= PARALLEL_MIN_BYTES
    except OSError:
        return False


def _consume(writer: _Writer, records: Iterable[Record]) -> None:
    for rec in records:
        if rec.error is not None:
            writer.unreadable(rec)
            continue
        try:
            rows, rejects = map_request(rec.payload)
        except Exception as exc:  # noqa: BLE001 - map_request guards per span; this is a last resort
            error = f"mapping error: {type(exc).__name__}: {exc}"
            writer.unreadable(Record(rec.source, rec.location, error=error, raw=_payload_text(rec.payload)))
            continue
        writer.mapped((rec.source, rec.location), rows, rejects)


def _payload_text(payload) -> str:
    try:
        return dumps_text(payload)
    except Exception:  # noqa: BLE001 - e.g. nested too deep for the stdlib fallback
        return ""


def _ingest_one(engine: Engine, path, writer: _Writer, workers: int) -> None:
    if _use_parallel(path, workers):
        writer.drain()
        if fork_context() is not None:
            _ingest_jsonl_parallel(engine, path, writer, workers)
            return
    _consume(writer, iter_file(path, writer.limits))


def ingest_paths(
    engine: Engine,
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    limits: IngestLimits | None = None,
) -> IngestSummary:
    """Ingest every OTLP file named by `paths` (files, directories recursively, glob patterns).

    Idempotent: spans already stored are counted as `duplicate`, never written twice. JSON-lines files
    of PARALLEL_MIN_BYTES or more are decoded and mapped by `workers` processes (default
    `ingest_workers()`; 0 = in-process only). `limits` (default `IngestLimits()`, usually
    `settings.ingest_limits`) bound what one hostile file can cost. Raises IngestDatabaseError when the
    store stays unreachable through the retries; nothing else about a file stops the run.
    """
    limits = limits or DEFAULT_LIMITS
    with_db_retry(engine, limits, create_tables, engine)
    files = expand_paths(paths)
    workers = ingest_workers() if workers is None else workers
    writer = _Writer(engine, batch_size, limits=limits)
    try:
        for path in files:
            read_before = writer.summary.read
            try:
                _ingest_one(engine, path, writer, workers)
            except _FATAL_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad file never stops the others
                if writer.failed:
                    raise
                log.warning("%s: unexpected error, rest of the file not read: %s", path, _one_line(exc))
                error = f"unexpected error, the rest of the file was not read: {_one_line(exc)}"
                writer.unreadable(Record(str(path), "file", error=error, raw=""))
            writer.summary.files += 1
            log.debug("%s: read %d records/spans", path, writer.summary.read - read_before)
    except BaseException:
        writer.close()
        raise
    summary = writer.finish()
    log.info(
        "ingested %d files: read %d, stored %d, duplicate %d, rejected %d",
        summary.files,
        summary.read,
        summary.stored,
        summary.duplicate,
        summary.rejected,
    )
    return summary


def ingest_file(
    engine: Engine,
    path: str | os.PathLike,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    limits: IngestLimits | None = None,
) -> IngestSummary:
    """Ingest one file (what the landing-directory sensor's job runs)."""
    return ingest_paths(engine, [path], batch_size=batch_size, workers=workers, limits=limits)


def ingest_requests(
    engine: Engine,
    requests: Iterable[dict],
    source: str = "memory",
    batch_size: int = DEFAULT_BATCH_SIZE,
    limits: IngestLimits | None = None,
) -> IngestSummary:
    """Ingest already-decoded OTLP/JSON ExportTraceServiceRequest objects (tests, generators, HTTP)."""
    limits = limits or DEFAULT_LIMITS
    with_db_retry(engine, limits, create_tables, engine)
    writer = _Writer(engine, batch_size, limits=limits)
    try:
        _consume(writer, (Record(source, f"request {i}", payload=req) for i, req in enumerate(requests)))
    except BaseException:
        writer.close()
        raise
    return writer.finish()


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "IngestDatabaseError",
    "IngestSummary",
    "ingest_file",
    "ingest_paths",
    "ingest_requests",
    "ingest_workers",
    "quarantine",
    "quarantine_reason",
    "with_db_retry",
]
