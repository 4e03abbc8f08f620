"""Benchmark of `feedback import` (run by hand, not by pytest): peak memory independent of the file's size.

    .venv/bin/python bench/bench_feedback_import.py [--rows 1000000] [--pg]

Writes a CSV of N feedback rows (default 1,000,000; every 1000th row has a bad trace id, so rejects are on the
path too), then, each in a fresh subprocess so its peak RSS is its own:
  - baseline: the same process start (imports, a fresh store with its tables), no import;
  - the import of N/10 rows and of N rows into a fresh SQLite file (and a fresh PostgreSQL schema with --pg).
Prints rows/s, peak RSS, and the peak over the baseline for both sizes: bounded memory means the N-row import
costs about what the N/10-row one does. Target: peak < 300 MiB for 1M rows.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"
TARGET_RSS_MIB = 300


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = ["great", "wrong answer", "too slow", "rude, and wrong", "très bien", "missed the point"]
    with open(path, "w", encoding="utf-8") as out:
        out.write("trace_id,span_id,name,value,comment,created_at\n")
        for i in range(rows):
            trace = "nothex" if i % 1000 == 999 else f"{rng.getrandbits(128):032x}"
            out.write(f'{trace},{rng.getrandbits(64):016x},thumbs,{rng.choice(("up", "down", "4", "5"))},'
                      f'"{rng.choice(words)}",2026-11-02T10:{i % 60:02d}:00Z\n')


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from obs_pipelines.ingest.feedback import import_feedback
from obs_pipelines.store import db
engine = db.make_engine({url!r})
db.create_tables(engine)
t = time.perf_counter()
summary = import_feedback(engine, {path!r}) if {run!r} else None
took = time.perf_counter() - t
print(json.dumps({{"seconds": took, "summary": summary and summary.__dict__,
                   "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(url: str, path: Path | None, run: bool) -> dict:
    code = CHILD.format(root=str(ROOT), url=url, path=str(path), run=run)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def stores(use_pg: bool, work: Path):
    yield "sqlite", lambda name: f"sqlite:///{work / name}.db"
    if use_pg:
        from obs_pipelines_tests.pg_schemas import private_schema

        schemas = []

        def pg(name: str) -> str:
            ctx = private_schema(DEFAULT_PG_URL)
            schemas.append(ctx)
            return ctx.__enter__()

        yield "postgresql", pg
        for ctx in schemas:
            ctx.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg", action="store_true", help="also into a fresh PostgreSQL schema")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small, big = work / "small.csv", work / "big.csv"
        write_csv(small, args.rows // 10)
        write_csv(big, args.rows)
        print(f"files: {args.rows // 10} rows {small.stat().st_size / 2**20:.0f} MiB, "
              f"{args.rows} rows {big.stat().st_size / 2**20:.0f} MiB")
        for name, url_of in stores(args.pg, work):
            base = child(url_of("base"), None, False)["peak_mib"]
            print(f"{name}: baseline (start, imports, empty store) peak {base:.0f} MiB")
            for label, path, rows in (("N/10", small, args.rows // 10), ("N", big, args.rows)):
                out = child(url_of(label.replace("/", "_")), path, True)
                s = out["summary"]
                verdict = "ok" if out["peak_mib"] < TARGET_RSS_MIB else f"OVER {TARGET_RSS_MIB} MiB"
                print(f"{name} {label:>4}: {rows} rows in {out['seconds']:.1f} s ({rows / out['seconds']:,.0f} rows/s), "
                      f"stored {s['stored']}, rejected {s['rejected']}; peak {out['peak_mib']:.0f} MiB "
                      f"= baseline x {out['peak_mib'] / base:.2f} [{verdict}]")


if __name__ == "__main__":
    main()
