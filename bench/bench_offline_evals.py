"""Benchmark of the offline evals phase (issue 14; run by hand, not by pytest).

    .venv/bin/python bench/bench_offline_evals.py [--days 30] [--rate 0.386] [--cases 1000] [--sleep 0.1]
        [--parts dataset,experiment,import] [--import-cases 1000000] [--import-db sqlite|pg] [--no-scrub]

* ``dataset`` (PostgreSQL): ``--days`` days of generated traffic at ``--rate`` traces/s (0.386/s = about 1M
  traces a month) with incidents every day (outage, tool loop, retrieval miss, 1 h each) and negative feedback
  on 1 % of traces, loaded into a fresh schema; then what the daily asset does for every day of the range:
  curate the day's cases (all sources), replace the day's rows, build the dataset version. Target: the whole
  month under 60 s. With fewer ``--days`` the month figure is extrapolated (per day x 30) and says so.
* ``experiment``: ``--cases`` cases, a task that sleeps ``--sleep`` s, at the default concurrency, async and
  sync (threads). Target: 1,000 cases of 100 ms under 10 s.
* ``import``: ``dataset import`` of a generated JSONL file of ``--import-cases`` cases (and of a tenth of
  that) in a fresh process; peak RSS against the same process started without reading anything. Target: 1M
  cases under 300 MiB, and the peak not following the file size.

Env: OBS_PIPELINES_BENCH_PG_URL (default postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.offline_evals import curate, datasets, experiments  # noqa: E402
from obs_pipelines.offline_evals.tables import regression_cases  # noqa: E402
from obs_pipelines.settings import OfflineEvalsSettings  # noqa: E402
from obs_pipelines.store import db  # noqa: E402
from obs_pipelines.store.schema import feedback  # noqa: E402
from obs_pipelines.synth.generator import generate_traces  # noqa: E402
from obs_pipelines.synth.incidents import Incident  # noqa: E402

PG_URL = os.environ.get("OBS_PIPELINES_BENCH_PG_URL", "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test")
START = datetime(2026, 10, 1)


def _schema_url() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def _drop(schema: str) -> None:
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _load(engine, days: int, rate: float) -> tuple[int, int]:
    incidents = []
    for d in range(days):
        day = START + timedelta(days=d)
        incidents += [Incident("provider_outage", day + timedelta(hours=9), timedelta(hours=1)),
                      Incident("tool_loop", day + timedelta(hours=13), timedelta(hours=1)),
                      Incident("retrieval_miss", day + timedelta(hours=17), timedelta(hours=1))]
    rng = random.Random(1)
    traces = spans = 0
    batch: list[dict] = []
    votes: list[dict] = []
    for trace in generate_traces(START, 24 * days, rate, 11, incidents):
        traces += 1
        batch.extend(trace)
        if rng.random() < 0.01:
            votes.append({"trace_id": trace[0]["trace_id"], "name": "thumbs", "value": 0.0, "source": "user",
                          "created_at": trace[0]["start_time"]})
        if len(batch) >= 50_000:
            spans += db.insert_spans(engine, batch)
            batch = []
    spans += db.insert_spans(engine, batch)
    db.insert_rows(engine, feedback, votes)
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE spans"))
    return traces, spans


def bench_dataset(days: int, rate: float) -> None:
    url, schema = _schema_url()
    try:
        engine = db.make_engine(url)
        db.create_tables(engine)
        began = time.perf_counter()
        traces, spans = _load(engine, days, rate)
        print(f"loaded {traces:,} traces / {spans:,} spans over {days} days in {time.perf_counter() - began:.0f} s")
        rules = OfflineEvalsSettings().datasets["production"]
        selected = cases = 0
        began = time.perf_counter()
        for d in range(days):
            start = START + timedelta(days=d)
            end = start + timedelta(days=1)
            curated = curate.curate_day(engine, start, end, rules)
            selected += sum(curated.selected.values())
            cases += len(curated.cases)
            db.replace_window(engine, regression_cases, start, end,
                              curate.cases_frame("production", start, end, curated.cases))
            version, _created, kept = curate.build_version(engine, "production", rules, start, end)
        took = time.perf_counter() - began
        month = took / days * 30
        flagged = selected / max(traces, 1)
        print(f"dataset: {days} days curated in {took:.1f} s ({took / days:.2f} s a day); {selected:,} selections "
              f"({flagged:.1%} of traces), {cases:,} cases after dedup; last version {version} ({len(kept)} cases)")
        note = "" if days == 30 else f" (extrapolated from {days} days)"
        print(f"  a month: {month:.0f} s{note} — target < 60 s: {'OK' if month < 60 else 'MISSED'}")
    finally:
        db.make_engine.cache_clear()
        _drop(schema)


def bench_experiment(n: int, sleep_s: float) -> None:
    cfg = OfflineEvalsSettings()
    cases = [{"case_id": datasets.case_id(f"q{i}"), "input": f"q{i}", "expected": None, "context": [], "tags": []}
             for i in range(n)]

    async def async_task(text: str) -> str:
        await asyncio.sleep(sleep_s)
        return text

    def sync_task(text: str) -> str:
        time.sleep(sleep_s)
        return text

    for name, task in (("async", async_task), ("sync", sync_task)):
        began = time.perf_counter()
        exp = experiments.run_experiment("bench", "v", cases, task, name, [], concurrency=cfg.concurrency,
                                         timeout_s=cfg.timeout_s)
        took = time.perf_counter() - began
        floor = n * sleep_s / cfg.concurrency
        print(f"experiment ({name}): {n} cases x {sleep_s * 1000:.0f} ms at concurrency {cfg.concurrency}: "
              f"{took:.1f} s (floor {floor:.1f} s, {exp.error_count} errors) — target < 10 s: "
              f"{'OK' if took < 10 else 'MISSED'}")


_IMPORT_CHILD = """
import resource, sys, time
from pathlib import Path
import sqlalchemy as sa
sys.path.insert(0, {root!r})
from obs_pipelines.offline_evals import importing
from obs_pipelines.store import db
engine = db.make_engine({url!r})
db.create_tables(engine)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began = time.perf_counter()
if {path!r}:
    version, created, report = importing.import_jsonl(engine, "bench", Path({path!r}), scrub_pii={scrub!r})
    print(f"{{report.cases}} cases, {{report.rejected}} rejected, {{report.merged}} merged, version {{version}}")
print("took", time.perf_counter() - began)
print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, before)
"""


def _import_child(url: str, path: str, scrub: bool) -> tuple[float, float, str]:
    """(peak RSS MiB, seconds, summary line) of a fresh process importing ``path`` ('' = only start up)."""
    import subprocess

    code = _IMPORT_CHILD.format(root=str(Path(__file__).resolve().parents[1]), url=url, path=path, scrub=scrub)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    took = float(next(x for x in lines if x.startswith("took")).split()[1])
    peak = int(next(x for x in lines if x.startswith("maxrss_kib")).split()[1]) / 1024
    return peak, took, lines[0] if path else ""


def _write_cases(path: Path, n: int) -> int:
    """n distinct cases, each with context, expected, tags and a few duplicates and bad lines mixed in."""
    rng = random.Random(3)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            if i % 10_000 == 9_999:
                out.write('{"input": "bad", "tags": 7}\n')  # a reject every 10k lines
                continue
            out.write(json.dumps({"input": f"How do I change the plan of account {i}? " + "x" * rng.randint(0, 80),
                                  "context": [f"Plans can be changed in settings, article {i % 977}."],
                                  "expected": f"Go to settings ({i % 13}).", "tags": ["billing", f"t{i % 7}"]})
                      + "\n")
    return path.stat().st_size


def bench_import(n: int, db_kind: str, scrub: bool) -> None:
    """Peak memory of `dataset import` of n cases vs the same process only started (the baseline), and vs
    n / 10 cases: memory must not follow the file (target: 1M cases under 300 MiB)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        schema = None
        if db_kind == "pg":
            url, schema = _schema_url()
        else:
            url = f"sqlite:///{folder}/store.sqlite"
        try:
            idle, _t, _s = _import_child(url, "", scrub)
            for size in (n // 10, n):
                path = Path(folder) / f"cases_{size}.jsonl"
                mib = _write_cases(path, size) / 2**20
                peak, took, summary = _import_child(url, str(path), scrub)
                path.unlink()
                print(f"import ({db_kind}, scrub={scrub}): {size:,} lines, {mib:.0f} MiB file: peak RSS {peak:.0f} MiB "
                      f"(process started, nothing read: {idle:.0f} MiB; x{peak / idle:.2f}), {took:.0f} s "
                      f"({size / took:,.0f} lines/s) — {summary}"
                      + (f" — target < 300 MiB: {'OK' if peak < 300 else 'MISSED'}" if size == n else ""))
        finally:
            if schema:
                _drop(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0.386)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--parts", default="dataset,experiment,import")
    parser.add_argument("--import-cases", type=int, default=1_000_000)
    parser.add_argument("--import-db", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--no-scrub", action="store_true", help="import without PII scrubbing")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if "import" in parts:
        bench_import(args.import_cases, args.import_db, not args.no_scrub)
    if "experiment" in parts:
        bench_experiment(args.cases, args.sleep)
    if "dataset" in parts:
        bench_dataset(args.days, args.rate)


if __name__ == "__main__":
    main()
