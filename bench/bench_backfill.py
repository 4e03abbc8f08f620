"""Benchmark of a backfill of history in one run per phase (issue 23; run by hand, not by pytest). Everything is
measured in ONE run on a shared machine: compare the ratios, and read the seconds as this box's, at its load.

    .venv/bin/python bench/bench_backfill.py [--days 1] [--rate 0.65] [--db postgresql|sqlite]
        [--config config/example.yaml] [--pg-url postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test]

* generates ``--days`` days of traffic with the synth generator (``--rate`` traces a second with its diurnal
  shape: ~15k spans an hour on average at the default) straight into a fresh store (a temporary SQLite file,
  or a temporary PostgreSQL schema), starting on a Monday 00:00 UTC;
* runs the four phases (monitoring, observability, online_evals, offline_evals), each as ONE run over the whole
  range (``materialize_phase``: every job of the phase, what ``obs-pipelines run PHASE`` does), with the
  settings of ``--config`` (the shipped example: every phase and the example alert rules on), each in a fresh
  process with its own temporary Dagster home; per phase: wall time, seconds per hour of traffic and peak
  RSS (resource.getrusage of the process itself and of its children, the forked scoring workers, at exit);
* runs the four phases again over the same, unchanged range: re-run / first-run per phase (target for a
  scored range, online_evals: < 5 %) and for the whole pipeline;
* the bytes of eval_scores (its compact tables, with indexes) against the bytes of spans for the same hours
  (pg_total_relation_size / SQLite's dbstat). Target <= 0.5.

Targets (issue 23): a month through the four phases < 30 minutes on this 2-core machine, peak memory < 2 GiB
whatever the range, re-run < 5 %, eval_scores <= half of spans. The month figure printed is the measured range
scaled linearly by hours (state the machine's load beside it: the box is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("monitoring", "observability", "online_evals", "offline_evals")
START = datetime(2026, 3, 2)  # a Monday
EVAL_TABLES = ("eval_responses", "eval_results", "eval_scorer_refs", "eval_texts")
GIB = 1024 ** 3


def child(phase: str, days: int, config: str) -> None:
    """One phase over the whole range in this process; prints its figures as JSON on the last line."""
    import dagster as dg

    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.orchestration.local_runs import materialize_phase
    from obs_pipelines.settings import load_settings

    began = time.perf_counter()
    settings = load_settings(config)
    instance = dg.DagsterInstance.get()  # the temporary DAGSTER_HOME the parent made
    result = materialize_phase(phase, START, START + timedelta(days=days) - timedelta(hours=1),
                               build_definitions(settings), instance)
    wall = time.perf_counter() - began
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"phase": phase, "success": result.success, "wall": wall, "rss_self": own,
                      "rss_children": kids}))


def run_phase(phase: str, days: int, config: str, db_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_backfill_home_") as home:
        Path(home, "dagster.yaml").write_text("")
        env = {**os.environ, "DAGSTER_HOME": home, "OBS_PIPELINES_DB_URL": db_url}
        began = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--child", phase, "--days", str(days), "--config", config],
                              env=env, cwd=home, capture_output=True, text=True)
        wall = time.perf_counter() - began
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"{phase}: exit {done.returncode}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if not figures["success"]:
        sys.stderr.write(done.stderr[-5000:])
        raise SystemExit(f"{phase}: the run failed")
    figures["process_wall"] = wall
    figures["peak"] = figures["rss_self"] + figures["rss_children"]  # (upper bound: the two peaks summed)
    return figures


def generate(engine, days: int, rate: float) -> int:
    from obs_pipelines.store import db
    from obs_pipelines.synth.generator import generate_traces

    db.create_tables(engine)
    total = 0
    for day in range(days):
        for hour in range(24):
            start = START + timedelta(days=day, hours=hour)
            rows = [row for trace in generate_traces(start, 1, rate, seed=day * 24 + hour) for row in trace]
            total += db.insert_spans(engine, rows)
    return total


def table_bytes(engine, tables) -> int:
    import sqlalchemy as sa

    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return sum(conn.execute(sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}).scalar()
                       for t in tables)
        names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE tbl_name IN ({})".format(
            ", ".join(f"'{t}'" for t in tables)))).scalars().all()
        return conn.execute(sa.text("SELECT SUM(pgsize) FROM dbstat WHERE name IN ({})".format(
            ", ".join(f"'{n}'" for n in names)))).scalar() or 0


@contextlib.contextmanager
def store_url(kind: str, pg_url: str):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench_backfill_db_") as tmp:
            yield f"sqlite:///{tmp}/traces.db"
        return
    from obs_pipelines_tests.pg_schemas import private_schema

    with private_schema(pg_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.65, help="traces per second (diurnal mean)")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--config", default=str(ROOT / "config" / "example.yaml"))
    parser.add_argument("--pg-url", default=os.environ.get(
        "OBS_PIPELINES_BENCH_PG_URL", "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"))
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.days, args.config)
        return

    from obs_pipelines.store import db

    hours = args.days * 24
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine)")
    with store_url(args.db, args.pg_url) as url:
        engine = db.make_engine(url)
        began = time.perf_counter()
        spans = generate(engine, args.days, args.rate)
        print(f"generated {spans:,} spans over {hours} h ({spans / hours:,.0f} an hour) on {args.db} "
              f"in {time.perf_counter() - began:.0f} s")
        runs: dict[str, list[dict]] = {p: [] for p in PHASES}
        for attempt in ("first run", "re-run (unchanged range)"):
            print(f"\n{attempt}:")
            print(f"  {'phase':<14} {'wall s':>8} {'s / hour':>9} {'peak RSS':>10}  (self + children)")
            for phase in PHASES:
                figures = run_phase(phase, args.days, args.config, url)
                runs[phase].append(figures)
                print(f"  {phase:<14} {figures['process_wall']:8.1f} {figures['process_wall'] / hours:9.2f} "
                      f"{figures['peak'] / 2**20:8.0f} MB  ({figures['rss_self'] / 2**20:.0f} + "
                      f"{figures['rss_children'] / 2**20:.0f})")
            print(f"  load average now: {os.getloadavg()[0]:.1f}")
        first = sum(r[0]["process_wall"] for r in runs.values())
        again = sum(r[1]["process_wall"] for r in runs.values())
        peak = max(f["peak"] for r in runs.values() for f in r)
        span_bytes, eval_bytes = table_bytes(engine, ["spans"]), table_bytes(engine, EVAL_TABLES)
        engine.dispose()
    month = first / hours * 720
    print("\nsummary")
    print(f"  first run, four phases: {first:.0f} s for {hours} h -> a 30-day month ~{month / 60:.0f} min "
          f"(linear in hours; target < 30 min)  {'OK' if month < 1800 else 'MISSED'}")
    own = max(f["rss_self"] for r in runs.values() for f in r)
    print(f"  peak RSS of any phase, process + children summed: {peak / 2**20:.0f} MB (target < {2 * 1024} MB, "
          f"whatever the range)  {'OK' if peak < 2 * GIB else 'MISSED'}; the process alone: {own / 2**20:.0f} MB "
          "(forked workers share the parent's pages until written: the sum is an upper bound)")
    for phase in PHASES:
        print(f"  re-run / first run, {phase}: {runs[phase][1]['process_wall'] / runs[phase][0]['process_wall']:.1%}")
    evals = runs["online_evals"][1]["process_wall"] / runs["online_evals"][0]["process_wall"]
    print(f"  re-run / first run, online_evals (the scored range): {evals:.1%} (target < 5%)  "
          f"{'OK' if evals < 0.05 else 'MISSED'}")
    print(f"  re-run / first run, four phases: {again / first:.1%}")
    print(f"  eval_scores bytes / spans bytes: {eval_bytes:,} / {span_bytes:,} = {eval_bytes / span_bytes:.2f} "
          f"(target <= 0.5)  {'OK' if eval_bytes <= span_bytes / 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
