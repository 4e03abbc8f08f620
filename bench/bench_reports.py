"""Benchmark of the reports (issue 22, "Speed"; run by hand, not by pytest).

    .venv/bin/python bench/bench_reports.py [--days 30] [--routes 20] [--models 10] [--db-url URL]

Setup (not timed): ``--days`` of hourly rollups (request, error, step, usage, SLO status, score rollups) of
``--routes`` routes x ``--models`` models, written to a fresh SQLite store (or ``--db-url``), and one month's
worth of alerts. The ``spans`` table stays empty: the reports read rollups and alerts only.

* baseline: reading the rollup rows the dashboard reads (30 days), i.e. the floor any report pays;
* dashboard: the full refresh as the asset does it (read, figures, 8 charts to SVG, HTML, write); target 5 s;
* monthly: the month's SLA report (this month and the previous one, incidents, 5 charts to SVG and PNG, HTML,
  JSON, write); target 30 s.
Each is the median of ``--repeat`` runs after one warm-up (vl-convert starts its engine on first use), as wall
time and as the process's CPU time (all threads), which other load on the machine does not inflate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from obs_pipelines.orchestration.resource import TraceStore  # noqa: E402
from obs_pipelines.reports import sla  # noqa: E402
from obs_pipelines.reports.output import write_report  # noqa: E402
from obs_pipelines.reports.pages import build_dashboard, build_sla  # noqa: E402
from obs_pipelines.reports.reading import read_rollups  # noqa: E402
from obs_pipelines_tests.reports.rollup_rows import rollup_rows, write_alert, write_rollups  # noqa: E402

END = datetime(2026, 12, 1)  # the dashboard ends here; the month before it is the monthly report's


CPU: dict[str, float] = {}  # CPU seconds of the process (all threads) per measurement: what the load cannot inflate


def _median(fn, repeat: int, name: str = "") -> float:
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU[name] = statistics.median(cpu)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--routes", type=int, default=20)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--db-url", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_reports_"))
    store = TraceStore(db_url=args.db_url or f"sqlite:///{tmp / 'traces.db'}")
    store.create_tables()
    engine = store.engine
    start = END - timedelta(days=args.days)
    rows = rollup_rows(start, args.days * 24, routes=[f"route_{i:02d}" for i in range(args.routes)],
                       models=[f"model_{i}" for i in range(args.models)])
    write_rollups(engine, rows)
    for day in range(0, args.days, 2):  # an incident every other day, 3 hours long
        t = start + timedelta(days=day, hours=9)
        write_alert(engine, rule=f"rule_{day % 5}", start=t, last=t + timedelta(hours=4), good=2, status="resolved",
                    group={"route": f"route_{day % args.routes:02d}"})
    with engine.connect() as conn:
        spans = conn.execute(sa.text("SELECT count(*) FROM spans")).scalar_one()
    print(f"setup: {sum(map(len, rows.values())):,} rollup rows over {args.days} days, {args.routes} routes x "
          f"{args.models} models; spans table rows: {spans} ({engine.url.get_backend_name()})")
    out = str(tmp / "out")
    month = sla.period_of("month", END - timedelta(hours=1))
    baseline = _median(lambda: read_rollups(engine, END - timedelta(days=30), END), args.repeat, "baseline")
    dashboard = _median(lambda: write_report(build_dashboard(engine, END), out), args.repeat, "dashboard")
    monthly = _median(lambda: write_report(build_sla(engine, month, [{"name": "avail", "metric": "error_rate",
                                                                      "objective": "< 0.05", "target": 0.95}]),
                                           out, pngs=True), args.repeat, "monthly")
    print(f"baseline (read 30 days of rollups): {baseline:.2f} s wall, {CPU['baseline']:.2f} s CPU")
    print(f"dashboard refresh: {dashboard:.2f} s wall, {CPU['dashboard']:.2f} s CPU "
          f"({dashboard / baseline:.1f}x baseline; target 5 s)")
    print(f"monthly SLA report {month.label}: {monthly:.2f} s wall, {CPU['monthly']:.2f} s CPU "
          f"({monthly / baseline:.1f}x baseline; target 30 s)")


if __name__ == "__main__":
    main()
