"""Benchmark of the trace generator's OTLP/JSON writer (run by hand).

    .venv/bin/python bench/bench_generate.py [--hours 2] [--rate 5] [--repeat 3]

Times ``write_otlp_jsonl`` (generate traces, convert to OTLP, serialize, write) and reports spans/s
(target > 20,000). Baseline, measured in the same run on the same machine: writing the very same
requests as pre-built dicts (read back from the file) with ``orjson.dumps`` one line per trace, i.e. the
cost of serialization + I/O alone. The ratio says how much generation and conversion add on top.
Best of ``--repeat`` runs for both, so a busy machine distorts less.
"""

from __future__ import annotations

import argparse
import gc
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--rate", type=float, default=5.0, help="mean traces per second")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    incidents = [
        parse_incident("latency_spike@2026-11-02T08:20+10m"),
        parse_incident("tool_loop@2026-11-02T08:40+10m"),
        parse_incident("provider_outage@2026-11-02T09:00+10m"),
    ]

    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        out = Path(tmp) / "traces.jsonl"
        gen_times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            summary = write_otlp_jsonl(out, START, args.hours, args.rate, args.seed, incidents)
            gen_times.append(time.perf_counter() - t0)
        size = out.stat().st_size

        # the baseline: the same requests, already built as dicts (read back, not timed)
        requests = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert len(requests) == summary.traces
        gc.collect()
        gc.freeze()  # the pre-built dicts should not make the timed loop pay for GC scans
        base_times = [_baseline(requests, Path(tmp) / "baseline.jsonl") for _ in range(args.repeat)]

    gen, base = min(gen_times), min(base_times)
    rate = summary.spans / gen
    print(f"generated {summary.traces:,} traces, {summary.spans:,} spans, {size / 1e6:.1f} MB "
          f"({size / summary.spans:.0f} bytes/span)")
    print(f"write_otlp_jsonl : {gen:6.2f} s  {rate:10,.0f} spans/s  (best of {args.repeat})")
    print(f"baseline (orjson.dumps of pre-built dicts + write): {base:6.2f} s  {summary.spans / base:10,.0f} spans/s")
    print(f"ratio generator / baseline time: {gen / base:.1f}x")
    print(f"target > {TARGET_SPANS_PER_S:,} spans/s: {'OK' if rate > TARGET_SPANS_PER_S else 'MISSED'}")


if __name__ == "__main__":
    main()
