"""Benchmark of the alerts (issue 13, "Speed"; run by hand, not by pytest). One run, SQLite store, a temporary
in-memory Dagster instance.

    .venv/bin/python bench/bench_alerts.py [--rules 50] [--groups 20] [--hours 168] 2>/dev/null

(stderr: the notifications the log destination writes to the sensor's log, part of the tick.)

* ``evaluate``: ``--rules`` threshold / anomaly rules over ``--hours`` hourly windows of a rollup with
  ``--groups`` routes (pure pandas, what the check op does per run before attribution).
* setup (not measured against the target): the rollup rows in the store's ``request_rollup_hourly``, then the
  real ``alerts_rules_job`` of the code location over those hours: one check evaluation per rule and hour in
  the instance, every judged group's result queued in the store (``alert_pending_results``).
* ``tick``: one real ``alerts_sensor`` tick (the sensor of ``build_definitions``, evaluated by Dagster with the
  store resource) over that week of results: take the queued results, record the alert states and the outbox,
  deliver to the log. Target: under 2 s. Then a tick with nothing queued, and a tick after the same hours'
  results are queued again (an hour judged twice: nothing new to send).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--hours", type=int, default=168)
    args = parser.parse_args()
    home = tempfile.mkdtemp()
    Path(home, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = home
    logging.getLogger("obs_pipelines.alerts").setLevel(logging.ERROR)

    import dagster as dg
    import pandas as pd
    import sqlalchemy as sa

    from obs_pipelines.alerts.defs import RULES_JOB
    from obs_pipelines.alerts.evaluate import by_window, evaluate
    from obs_pipelines.alerts.results import pending_count
    from obs_pipelines.alerts.tables import alert_pending_results
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.monitoring.tables import request_rollup_hourly
    from obs_pipelines.settings import Settings
    from obs_pipelines.store import db
    from obs_pipelines.store.resource import TraceStore

    start = datetime(2026, 11, 2)
    end = start + timedelta(hours=args.hours)
    rng = random.Random(1)
    frame = pd.DataFrame([
        {"window_start": start + timedelta(hours=h), "window_end": start + timedelta(hours=h + 1),
         "dimension": "route", "dimension_value": f"route_{g}",
         "error_rate": rng.uniform(0, 0.1) + (0.5 if rng.random() < 0.01 else 0), "request_count": 200}
        for h in range(args.hours) for g in range(args.groups)])
    rules = [
        {"name": f"rule_{i}", "kind": "threshold" if i % 2 else "anomaly", "table": "request_rollup_hourly",
         "metric": "error_rate", "group_by": "route", "sample_column": "request_count", "min_samples": 20,
         **({"threshold": 0.3} if i % 2 else {"baseline": "trailing_hours", "baseline_windows": 6,
                                                "min_abs_change": 0.2})}
        for i in range(args.rules)]
    store = TraceStore(db_url=f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    store.create_tables()
    settings = Settings(db_url=store.db_url, phases=["monitoring"], partitions_start="2026-11-01-00:00",
                        alerts={"rules": rules})
    parsed = settings.alerts.parsed_rules()

    t = time.perf_counter()
    for r in parsed:
        by_window(evaluate(r, frame, start, end))
    evaluate_s = time.perf_counter() - t
    print(f"evaluate: {args.rules} rules x {args.hours} h x {args.groups} groups in {evaluate_s:.2f} s", flush=True)

    db.insert_rows(store.engine, request_rollup_hourly, frame.to_dict("records"))
    defs = build_definitions(settings)
    # in-memory instance: recording thousands of check events into the SQLite run storage costs minutes of
    # setup on a shared disk; the tick reads the store, not the instance
    instance = dg.DagsterInstance.ephemeral()
    t = time.perf_counter()
    result = defs.resolve_job_def(RULES_JOB).execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": start.strftime("%Y-%m-%d-%H:%M"),
                                 "dagster/asset_partition_range_end": (end - timedelta(hours=1)).strftime(
                                     "%Y-%m-%d-%H:%M")},
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    evaluations = sum(1 for e in result.get_asset_check_evaluations() if e.partition)
    queued = pending_count(store.engine)
    print(f"setup: {RULES_JOB} over {args.hours} h recorded {evaluations} check evaluations and queued {queued} "
          f"results in {time.perf_counter() - t:.1f} s", flush=True)
    with store.engine.connect() as conn:
        week = [dict(r) for r in conn.execute(sa.select(alert_pending_results)).mappings()]
    for row in week:
        del row["id"]

    sensor = defs.resolve_sensor_def("alerts_sensor")

    def tick(cursor: str | None = None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                          resources={"trace_store": store})
        t = time.perf_counter()
        data = sensor.evaluate_tick(context)
        return data, time.perf_counter() - t

    data, tick_s = tick()
    print(f"tick: {queued} queued results of {evaluations} evaluations -> {data.skip_message} in {tick_s:.2f} s "
          f"(target < 2 s)", flush=True)
    data, again_s = tick(data.cursor)
    print(f"tick with nothing queued: {data.skip_message} in {again_s:.3f} s", flush=True)
    db.insert_rows(store.engine, alert_pending_results, week)
    data, requeued_s = tick(data.cursor)
    print(f"tick over the same hours queued again (nothing new to send): {data.skip_message} in {requeued_s:.2f} s",
          flush=True)


if __name__ == "__main__":
    main()
