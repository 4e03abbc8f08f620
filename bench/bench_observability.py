"""Benchmark of the observability hourly tables against monitoring's request rollup over the same hour (issue
11; run by hand, not by pytest). Everything is measured in ONE run: compare the ratios, not the seconds.

    .venv/bin/python bench/bench_observability.py [--rate 3.0] [--repeat 3] [--sqlite]

One hour of generated traffic (obs_pipelines.synth, ``--rate`` traces per second; the issue's figure is one
hour of 1,000,000 spans, about ``--rate 35``) plus the same hour the day before (the attribution baseline,
``baseline_days=1``) is loaded into a fresh PostgreSQL schema (or a SQLite file with ``--sqlite``). Then,
best of ``--repeat``:

* ``request_rollup``: monitoring's request rollup of the hour (the floor);
* ``traces``: the observability ``traces`` frame of the hour (its reads included). Target <= 1.5x;
* ``hourly``: every observability hourly table of the hour (``hourly.hourly_tables``). Target <= 3x;

and the peak RSS of this process (target < 2 GiB).

Env: OBS_PIPELINES_BENCH_PG_URL (default postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.monitoring import rollups  # noqa: E402  (the floor: monitoring's own rollup)
from obs_pipelines.observability import reading, requests  # noqa: E402
from obs_pipelines.observability.config import ObservabilitySettings  # noqa: E402
from obs_pipelines.observability.hourly import hourly_tables  # noqa: E402
from obs_pipelines.pricing import load_prices  # noqa: E402
from obs_pipelines.store import db  # noqa: E402
from obs_pipelines.store.query import run_concurrently  # noqa: E402
from obs_pipelines.store.schema import MODEL_CALL_KINDS  # noqa: E402
from obs_pipelines.synth.generator import generate_traces  # noqa: E402

HOUR = datetime(2026, 11, 2, 14, 0)
PG_URL = os.environ.get("OBS_PIPELINES_BENCH_PG_URL", "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    schema = None
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        schema = f"bench_obs_{uuid.uuid4().hex[:8]}"
        with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = str(sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
                  .render_as_string(hide_password=False))
    engine = db.make_engine(url)
    db.create_tables(engine)
    spans = 0
    try:
        for start, seed in ((HOUR - timedelta(days=1), 2), (HOUR, 1)):
            batch: list[dict] = []
            for trace in generate_traces(start, 1, args.rate, seed):
                batch.extend(trace)
                if len(batch) > 50_000:
                    spans += db.insert_spans(engine, batch)
                    batch = []
            spans += db.insert_spans(engine, batch)
        if not args.sqlite:
            with engine.begin() as conn:
                conn.execute(sa.text("ANALYZE spans"))
        end = HOUR + timedelta(hours=1)
        prices, settings = load_prices(), ObservabilitySettings(baseline_days=1)

        def traces_table():  # what hourly.Hour reads for it (concurrently on PostgreSQL, as it does), and the frame
            if args.sqlite:
                spans = reading.spans(engine, HOUR, end, kinds=MODEL_CALL_KINDS, failed=True)
                requests.traces_frame(reading.requests(engine, HOUR, end), reading.trace_aggregates(engine, HOUR, end),
                                      spans, prices)
                return
            reads = run_concurrently(engine, {
                "requests": lambda: reading.requests(engine, HOUR, end),
                "aggregates": lambda: reading.trace_aggregates(engine, HOUR, end),
                "calls": lambda: reading.trace_calls(engine, HOUR, end, prices),
                "failed": lambda: reading.spans(engine, HOUR, end, failed=True)})
            requests.traces_frame(reads["requests"], reads["aggregates"], reads["failed"], prices,
                                  calls=reads["calls"])

        floor = _best(lambda: rollups.request_rollup(engine, HOUR, end), args.repeat)
        traces = _best(traces_table, args.repeat)
        hourly = _best(lambda: hourly_tables(engine, HOUR, end, settings, prices), args.repeat)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{'sqlite' if args.sqlite else 'postgresql'}: {spans} spans over 2 hours (the measured hour and its "
              f"baseline), best of {args.repeat}")
        print(f"  request_rollup (floor)   {floor:7.2f} s")
        print(f"  traces                   {traces:7.2f} s   {traces / floor:5.2f}x   (target <= 1.5x)")
        print(f"  all hourly tables        {hourly:7.2f} s   {hourly / floor:5.2f}x   (target <= 3x)")
        print(f"  peak RSS                 {peak:7.0f} MiB          (target < 2048)")
    finally:
        engine.dispose()
        if schema:
            with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
