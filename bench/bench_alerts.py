"""Benchmark of the alerts (issue 13, "Speed"; run by hand, not by pytest). One run, SQLite store, a temporary
in-memory Dagster instance (the check events are the setup, not what is measured).

    .venv/bin/python bench/bench_alerts.py [--rules 50] [--groups 20] [--hours 168]

* ``evaluate``: ``--rules`` threshold / anomaly rules over ``--hours`` hourly windows of a rollup with
  ``--groups`` routes (pure pandas, what the check op does per run before attribution).
* ``tick``: one alerts_sensor tick over the check evaluations of those rules for every hour (one evaluation
  per rule and hour, each carrying its groups): read the events, record the alert states and the outbox, deliver
  to the log. Target: under 2 s.
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

    from obs_pipelines.alerts.defs import encode_results, hour_metadata, process_check_events
    from obs_pipelines.alerts.evaluate import by_window, evaluate
    from obs_pipelines.orchestration.reporting import check_evaluation
    from obs_pipelines.settings import Settings
    from obs_pipelines.store.resource import TraceStore

    start = datetime(2026, 11, 2)
    end = start + timedelta(hours=args.hours)
    rng = random.Random(1)
    frame = pd.DataFrame([
        {"window_start": start + timedelta(hours=h), "dimension": "route", "dimension_value": f"route_{g}",
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
    settings = Settings(db_url=store.db_url, phases=["monitoring"], alerts={"rules": rules})
    parsed = settings.alerts.parsed_rules()

    t = time.perf_counter()
    results = {r.name: by_window(evaluate(r, frame, start, end)) for r in parsed}
    evaluate_s = time.perf_counter() - t
    print(f"evaluate: {args.rules} rules x {args.hours} h x {args.groups} groups in {evaluate_s:.2f} s", flush=True)

    @dg.asset(partitions_def=dg.HourlyPartitionsDefinition("2026-11-01-00:00"), name="request_rollup_hourly")
    def rollup():
        return None

    @dg.multi_asset_check(specs=[dg.AssetCheckSpec(r.name, asset="request_rollup_hourly") for r in parsed])
    def checks():
        hour = start
        while hour < end:
            for rule in parsed:
                # attribution / exemplars need the store's spans: the bench's groups carry none
                passed, metadata = hour_metadata(store.engine, rule, [], "http://ui")
                hour_results = results[rule.name].get(hour, [])
                breached = [r for r in hour_results if not r.passed]
                entries = [{"group": r.group, "value": r.value, "threshold": r.threshold, "samples": r.samples,
                            "judged": r.judged, "passed": r.passed, "baseline": r.baseline, "attribution": [],
                            "exemplar_trace_ids": []} for r in hour_results]
                metadata["results"] = dg.MetadataValue.json([e for e in entries if not e["passed"]])
                metadata["passed_results"] = dg.MetadataValue.text(encode_results([e for e in entries if e["passed"]]))
                yield check_evaluation(dg.AssetKey("request_rollup_hourly"), rule.name, hour.strftime(
                    "%Y-%m-%d-%H:%M"), not breached, dg.AssetCheckSeverity.WARN, metadata)
            hour += timedelta(hours=1)
        for rule in parsed:
            yield dg.AssetCheckResult(asset_key="request_rollup_hourly", check_name=rule.name, passed=True)

    # in-memory instance: recording thousands of check events into the SQLite run storage costs minutes of
    # setup on a shared disk; the tick's reads are the same API on any storage
    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[rollup], asset_checks=[checks],
                          jobs=[dg.define_asset_job("checks", selection=dg.AssetSelection.checks(checks))])
    t = time.perf_counter()
    defs.resolve_job_def("checks").execute_in_process(
        instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    print(f"recording {args.rules * args.hours} check evaluations (setup): {time.perf_counter() - t:.1f} s", flush=True)

    t = time.perf_counter()
    _, transitions, report = process_check_events(instance, store.engine, settings, 0.0)
    tick_s = time.perf_counter() - t
    print(f"tick: {args.rules * args.hours} evaluations, {len(transitions)} alert changes, "
          f"{len(report.delivered)} notifications in {tick_s:.2f} s (target < 2 s)")
    t = time.perf_counter()
    process_check_events(instance, store.engine, settings, 0.0)
    print(f"tick again over the same evaluations (nothing new to send): {time.perf_counter() - t:.2f} s", flush=True)


if __name__ == "__main__":
    main()
