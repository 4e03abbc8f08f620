"""Benchmark of the trace generator's OTLP/JSON writer (run by hand).

    .venv/bin/python bench/bench_generate.py [--hours 2] [--rate 5] [--repeat 3] [--workers N] [--dir DIR]

Times ``write_otlp_jsonl`` (generate traces, convert to OTLP, serialize, write) in-process (workers=1) and
with forked workers (default: the CPU count), and reports spans/s. Baseline, measured in the same run on
the same machine: writing the very same requests as pre-built dicts (read back from the file) with
``orjson.dumps`` one line per trace, i.e. the cost of serialization + I/O alone.

Floor: the same bytes, already encoded, written to DIR and fsync'ed (what the disk can take), and the
parallel writer followed by an fsync (end to end). From these it extrapolates a week at 10 traces/s: the
seconds the bytes alone need on this disk, and the seconds the parallel generator needs (the larger of its
CPU time and the disk's; the page cache lets the two overlap at best). Best of ``--repeat`` runs for every
figure, so a busy machine distorts less.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.synth.generator import parse_incident, write_otlp_jsonl  # noqa: E402

START = datetime(2026, 11, 2, 8)
TARGET_SPANS_PER_S = 20_000
WEEK_TRACES = 10 * 7 * 86400  # a week at a mean of 10 traces/s
WRITE_CHUNK = 8 * 2**20


def _baseline(requests: list[dict], path: Path) -> float:
    t0 = time.perf_counter()
    dumps = orjson.dumps
    with path.open("wb") as fh:
        buf = []
        for req in requests:
            buf.append(dumps(req))
            if len(buf) >= 512:
                buf.append(b"")
                fh.write(b"\n".join(buf))
                buf.clear()
        buf.append(b"")
        fh.write(b"\n".join(buf))
    return time.perf_counter() - t0


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(data: bytes, copies: int, path: Path) -> float:
    """Seconds to write already-encoded bytes ``copies`` times over and get them onto the disk."""
    view = memoryview(data)
    t0 = time.perf_counter()
    with path.open("wb") as fh:
        for _ in range(copies):
            for i in range(0, len(view), WRITE_CHUNK):
                fh.write(view[i : i + WRITE_CHUNK])
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - t0


def _best(fn, repeat: int, cleanup: Path | None = None) -> float:
    times = []
    for _ in range(repeat):
        times.append(fn())
        if cleanup is not None:
            cleanup.unlink(missing_ok=True)  # (keeps the page cache and the disk from filling up)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=5.0, help="mean traces per second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for the parallel writer")
    ap.add_argument("--dir", default=None, help="where to write (default: the system temp dir)")
    ap.add_argument("--floor-mb", type=int, default=2048,
                    help="MB written for the disk floor (the sample repeated): enough to get past disk caches")
    args = ap.parse_args()
    incidents = [
        parse_incident("latency_spike@2026-11-02T08:20+10m"),
        parse_incident("tool_loop@2026-11-02T08:40+10m"),
        parse_incident("provider_outage@2026-11-02T09:00+10m"),
    ]

    def writer(path: Path, workers: int, fsync: bool = False):
        def run() -> float:
            t0 = time.perf_counter()
            write_otlp_jsonl(path, START, args.hours, args.rate, args.seed, incidents, workers=workers)
            if fsync:
                _fsync(path)
            return time.perf_counter() - t0

        return run

    with tempfile.TemporaryDirectory(prefix="bench_generate_", dir=args.dir) as tmp:
        out, ser_out, copy = Path(tmp) / "traces.jsonl", Path(tmp) / "serial.jsonl", Path(tmp) / "copy.jsonl"
        summary = write_otlp_jsonl(out, START, args.hours, args.rate, args.seed, incidents, workers=args.workers)
        data = out.read_bytes()
        serial = _best(writer(ser_out, 1), args.repeat)
        assert ser_out.read_bytes() == data, "serial and parallel writers disagree"
        parallel = _best(writer(out, args.workers), args.repeat)
        parallel_fsync = _best(writer(out, args.workers, fsync=True), args.repeat)
        copies = max(1, round(args.floor_mb * 1e6 / len(data)))
        disk = _best(lambda: _write_bytes(data, copies, copy), args.repeat, cleanup=copy) / copies

        # the baseline: the same requests, already built as dicts (read back, not timed)
        requests = [orjson.loads(line) for line in data.splitlines()]
        assert len(requests) == summary.traces
        gc.collect()
        gc.freeze()  # the pre-built dicts should not make the timed loop pay for GC scans
        base = _best(lambda: _baseline(requests, Path(tmp) / "baseline.jsonl"), args.repeat)

    spans, size = summary.spans, len(data)
    ser_rate, par_rate = spans / serial, spans / parallel
    disk_mb_s = size / disk / 1e6
    week_spans = WEEK_TRACES * spans / summary.traces
    week_bytes = week_spans * size / spans
    week_disk_s = week_bytes / (disk_mb_s * 1e6)
    week_cpu_s = week_spans / par_rate
    week_e2e_s = week_spans / (spans / parallel_fsync)
    print(f"generated {summary.traces:,} traces, {spans:,} spans, {size / 1e6:.1f} MB "
          f"({size / spans:.0f} bytes/span); best of {args.repeat}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"write_otlp_jsonl serial    : {serial:6.2f} s  {ser_rate:10,.0f} spans/s")
    print(f"write_otlp_jsonl {args.workers} workers : {parallel:6.2f} s  {par_rate:10,.0f} spans/s  "
          f"({serial / parallel:.2f}x serial)")
    print(f"  ... + fsync              : {parallel_fsync:6.2f} s  {spans / parallel_fsync:10,.0f} spans/s")
    print(f"baseline (orjson.dumps of pre-built dicts + write): {base:6.2f} s  {spans / base:10,.0f} spans/s")
    print(f"ratio generator / baseline time: serial {serial / base:.1f}x, parallel {parallel / base:.1f}x")
    print(f"target > {TARGET_SPANS_PER_S:,} spans/s: {'OK' if par_rate > TARGET_SPANS_PER_S else 'MISSED'}")
    print("floor:")
    print(f"  write the encoded bytes + fsync ({copies * size / 1e6:,.0f} MB): {disk_mb_s:8,.0f} MB/s; "
          f"the sample's bytes alone {disk:.2f} s ({parallel / disk:.1f}x faster than the parallel writer)")
    print(f"  a week at 10 traces/s: {WEEK_TRACES:,} traces, {week_spans / 1e6:,.1f}M spans, "
          f"{week_bytes / 1e9:,.1f} GB")
    print(f"    bytes alone on this disk        : {week_disk_s:7,.0f} s")
    print(f"    parallel generator (CPU)        : {week_cpu_s:7,.0f} s  "
          f"({week_cpu_s / week_disk_s:.1f}x the disk floor)")
    print(f"    -> at best max(CPU, disk)       : {max(week_cpu_s, week_disk_s):7,.0f} s")
    print(f"    parallel + fsync, extrapolated  : {week_e2e_s:7,.0f} s")
    print(f"    serial generator (CPU)          : {week_spans / ser_rate:7,.0f} s")


if __name__ == "__main__":
    main()
