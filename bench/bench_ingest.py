"""Benchmark of OTLP/JSON ingest (run by hand, not by pytest).

    .venv/bin/python bench/bench_ingest.py [--spans 1000000] [--file PATH] [--keep-file] [--batch-size 5000]

1. Makes an OTLP/JSON lines file of N spans (default 1,000,000) with the synthetic trace generator
   (`obs_pipelines.synth.generator.write_otlp_jsonl`), or uses --file.
2. Times, each in a fresh subprocess (so peak RSS belongs to that phase alone):
   - baseline: plain `json.loads` of every line (and, for information, `orjson.loads`);
   - ingest into a fresh SQLite file;
   - ingest into a fresh PostgreSQL schema (env OBS_PIPELINES_BENCH_PG_URL, default
     postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test).
   Prints spans/s, the ratio of each ingest to the json.loads baseline, and peak RSS.
Targets: >= 30,000 spans/s into each store, peak RSS < 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"
TARGET_SPANS_PER_S = 30_000
TARGET_RSS_MIB = 1024


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_children_rss_mib() -> float:
    """Largest peak RSS among this process's terminated children (the ingest worker processes)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


# ---- the input file -------------------------------------------------------------------------------


def make_file(path: Path, spans: int) -> int:
    """Write about `spans` spans (whole traces, first line past the target stops) and return the count."""
    from obs_pipelines.synth.generator import write_otlp_jsonl

    tmp = path.with_suffix(".full.jsonl")
    # the generator makes ~120k spans per hour at rate 10 around midday: ask for 25% more than needed
    hours = max(0.05, spans / 120_000 * 1.25)
    start = datetime(2026, 1, 5, 8, 0)
    t0 = time.perf_counter()
    summary = write_otlp_jsonl(tmp, start=start, hours=hours, rate=10.0, seed=7)
    if summary.spans < spans:
        tmp.unlink()
        raise SystemExit(f"generator made only {summary.spans} spans; raise the hours")
    n = 0
    with tmp.open("rb") as src, path.open("wb") as dst:
        for line in src:
            if n >= spans:
                break
            n += line.count(b'"spanId"')
            dst.write(line)
    tmp.unlink()
    print(f"generated {n:,} spans in {time.perf_counter() - t0:.1f}s -> {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return n


# ---- phases (each in its own process) ---------------------------------------------------------------


def phase_baseline(path: Path) -> dict:
    t0 = time.perf_counter()
    n = 0
    with path.open("rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
    stdlib_s = time.perf_counter() - t0
    import orjson

    t0 = time.perf_counter()
    with path.open("rb") as fh:
        for line in fh:
            orjson.loads(line)
    orjson_s = time.perf_counter() - t0
    return {"lines": n, "seconds": stdlib_s, "orjson_seconds": orjson_s, "peak_rss_mib": peak_rss_mib()}


def phase_ingest(path: Path, url: str, batch_size: int) -> dict:
    from obs_pipelines.ingest.runner import ingest_paths, ingest_workers
    from obs_pipelines.store import db

    engine = db.make_engine(url)
    db.create_tables(engine)
    t0 = time.perf_counter()
    summary = ingest_paths(engine, [path], batch_size=batch_size)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {
        "seconds": seconds,
        "read": summary.read,
        "stored": summary.stored,
        "duplicate": summary.duplicate,
        "rejected": summary.rejected,
        "peak_rss_mib": peak_rss_mib(),
        "worker_peak_rss_mib": peak_children_rss_mib(),
        "workers": ingest_workers(),
    }


def run_phase(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- main -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--file", type=Path, help="use this OTLP/JSON lines file instead of generating one")
    ap.add_argument("--keep-file", action="store_true")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--skip-pg", action="store_true")
    ap.add_argument("--phase", choices=["baseline", "ingest"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase == "baseline":
        print(json.dumps(phase_baseline(args.file)))
        return
    if args.phase == "ingest":
        print(json.dumps(phase_ingest(args.file, args.url, args.batch_size)))
        return

    import sqlalchemy as sa

    workdir = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    if args.file:
        path = args.file
        n_spans = sum(line.count(b'"spanId"') for line in path.open("rb"))
    else:
        path = workdir / "spans.otlp.jsonl"
        n_spans = make_file(path, args.spans)

    results: dict[str, dict] = {}
    base = run_phase(["--phase", "baseline", "--file", str(path)])
    results["baseline json.loads"] = base

    sqlite_path = workdir / "bench.db"
    try:
        results["ingest SQLite"] = run_phase(
            ["--phase", "ingest", "--file", str(path), "--url", f"sqlite:///{sqlite_path}",
             "--batch-size", str(args.batch_size)]
        )
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)

    if not args.skip_pg:
        pg_base = os.environ.get("OBS_PIPELINES_BENCH_PG_URL", DEFAULT_PG_URL)
        schema = f"bench_ingest_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(pg_base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            pg_url = sa.make_url(pg_base).update_query_dict({"options": f"-csearch_path={schema}"})
            results["ingest PostgreSQL"] = run_phase(
                [
                    "--phase", "ingest", "--file", str(path),
                    "--url", pg_url.render_as_string(hide_password=False),
                    "--batch-size", str(args.batch_size),
                ]
            )
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()

    base_rate = n_spans / base["seconds"]
    print()
    print(f"input: {n_spans:,} spans in {base['lines']:,} lines, {path.stat().st_size / 2**20:.0f} MiB")
    print(f"{'phase':<22} {'seconds':>8} {'spans/s':>10} {'vs json.loads':>14} {'peak RSS':>10}   result")
    print(f"{'':<22} {'':>8} {'':>10} {'':>14} {'(main)':>10}")
    ok = True
    for name, r in results.items():
        rate = n_spans / r["seconds"]
        ratio = r["seconds"] / base["seconds"]
        if name.startswith("ingest"):
            verdict = []
            if rate < TARGET_SPANS_PER_S:
                verdict.append(f"BELOW {TARGET_SPANS_PER_S:,}/s")
                ok = False
            if r["peak_rss_mib"] >= TARGET_RSS_MIB:
                verdict.append("RSS over 1 GiB")
                ok = False
            if r["peak_rss_mib"] + r["workers"] * r["worker_peak_rss_mib"] >= TARGET_RSS_MIB:
                verdict.append("RSS of main + workers over 1 GiB")
                ok = False
            counts = (
                f"stored {r['stored']:,} dup {r['duplicate']:,} rej {r['rejected']:,}; "
                f"{r['workers']} workers, peak RSS {r['worker_peak_rss_mib']:.0f} MiB each"
            )
            result = ("OK  " if not verdict else "; ".join(verdict) + "  ") + counts
        else:
            result = f"(orjson.loads: {n_spans / r['orjson_seconds']:,.0f} spans/s)"
        print(
            f"{name:<22} {r['seconds']:8.1f} {rate:10,.0f} {ratio:13.2f}x {r['peak_rss_mib']:8.0f} MiB   {result}"
        )
    print("targets met" if ok else "targets NOT met")
    if not args.keep_file and not args.file:
        path.unlink()
    if not any(workdir.iterdir()):
        workdir.rmdir()


if __name__ == "__main__":
    main()
