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
* ``attribution`` (``--attribution-rate`` requests an hour, 8 hours, 7 trailing baseline hours; best of 3, cold;
  ratios within the run): the cause of one quality alert (a route's mean groundedness) without and with the
  day's clusters of failing inputs (the cluster check reads the cluster rows, the route's day counts, the hour's
  passed flags and inputs), and one agent-loop alert per route against per route x tool (tool_loops parsed).
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
    parser.add_argument("--attribution-rate", type=int, default=1000)
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
    from obs_pipelines.orchestration.resource import TraceStore
    from obs_pipelines.settings import Settings
    from obs_pipelines.store import db

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
    attribution(args.attribution_rate)


def attribution(rate: int, hours: int = 8) -> None:
    """The cost of the richer causes per alert (see the module docstring)."""
    import json

    import pandas as pd

    from obs_pipelines.alerts import causes, source
    from obs_pipelines.alerts.evaluate import RuleResult
    from obs_pipelines.alerts.rules import parse_rule
    from obs_pipelines.observability.agents import tool_loops
    from obs_pipelines.observability.tables import agent_paths
    from obs_pipelines.online_evals.tables import failure_clusters_daily
    from obs_pipelines.orchestration.resource import TraceStore
    from obs_pipelines.store import db

    store = TraceStore(db_url=f"sqlite:///{tempfile.mkdtemp()}/attribution.db")
    store.create_tables()
    rng = random.Random(2)
    start = datetime(2026, 11, 2, 6)
    breached = start + timedelta(hours=hours - 1)
    topics = ["refund order weekend", "reset password email", "invoice pdf download", "cancel plan renewal"]
    spans, scores, paths = [], [], []
    for h in range(hours):
        hour = start + timedelta(hours=h)
        for i in range(rate):
            trace, topic = f"{h:02d}{i:06d}", topics[i % 4]
            at = hour + timedelta(seconds=3600 * i / rate)
            spans.append({"trace_id": trace, "span_id": f"{h:04d}{i:012d}", "parent_span_id": None, "name": "kb",
                          "kind": "chain", "start_time": at, "end_time": at + timedelta(seconds=1), "route": "kb",
                          "status": "ok", "input": f"question about {topic} number {i}"})
            # the breached hour: the refund questions fail
            score = 0.2 if h == hours - 1 and topic.startswith("refund") else rng.uniform(0.75, 1.0)
            scores.append({"window_start": hour, "window_end": hour + timedelta(hours=1), "trace_id": trace,
                           "span_id": f"{h:04d}{i:012d}", "span_kind": "root", "route": "kb", "model": "m",
                           "prompt_version": "v1", "rule": "r", "scorer": "groundedness", "scorer_version": "1",
                           "score": score, "threshold": 0.7, "passed": score >= 0.7})
            looping = (h == hours - 1 and i % 3 == 0) or rng.random() < 0.01
            names = ["lookup"] * (6 if looping else 1) + ["set_priority"]
            evidence = {"repeated_call": {"tool": "lookup", "args_hash": "a", "count": 6}} if looping else {}
            spans.append({**spans[-1], "trace_id": f"a{trace}", "span_id": f"a{h:04d}{i:011d}", "name": "triage",
                          "route": "/triage", "input": None})
            paths.append({"window_start": hour, "window_end": hour + timedelta(hours=1), "trace_id": f"a{trace}",
                          "route": "/triage", "tool_calls": len(names), "loop_detected": looping,
                          "loop_evidence": json.dumps(evidence) if evidence else None,
                          "tool_loops": json.dumps(tool_loops(names, evidence))})
    db.insert_spans(store.engine, spans)
    try:  # eval_scores' compact storage (issue 23), once it exists
        from obs_pipelines.online_evals.score_store import insert_scores
    except ImportError:
        from obs_pipelines.online_evals.tables import eval_scores

        db.insert_rows(store.engine, eval_scores, scores)
    else:
        insert_scores(store.engine, pd.DataFrame(scores))
    db.insert_rows(store.engine, agent_paths, paths)

    def best(fn, repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            source._BREACHES.clear()  # cold: nothing shared between repeats
            causes._SUMMARIES.clear()
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    def anomaly(**fields):
        return parse_rule({"name": "bench_rule", "kind": "anomaly", "baseline": "trailing_hours",
                           "baseline_windows": hours - 1, **fields})

    def alert(rule, group):
        result = RuleResult("bench_rule", breached, breached + timedelta(hours=1), group, 1.0, 0.5, 100.0, True,
                            False)
        found = {}
        seconds = best(lambda: found.update(cause=source.attribution(store.engine, rule, result),
                                            exemplars=source.exemplar_trace_ids(store.engine, rule, result)))
        return seconds, found

    quality = anomaly(table="score_rollup_hourly", dimension="route", group_by=["scorer", "route"],
                      metric="mean_score", direction="down")
    group = {"scorer": "groundedness", "route": "kb"}
    plain, _ = alert(quality, group)
    day = breached.replace(hour=0)
    db.insert_rows(store.engine, failure_clusters_daily, [
        {"window_start": day, "window_end": day + timedelta(days=1), "cluster": 0, "label": "refund / order / weekend",
         "top_terms": json.dumps(["refund", "weekend"]), "failure_count": rate // 4, "traffic_count": rate * 2,
         "failure_share": 0.9, "traffic_share": 0.25, "lift": 3.6, "failure_rate": 0.125, "top_route": "kb",
         "top_route_share": 1.0, "top_scorers": json.dumps({"groundedness": rate // 4})}])
    clustered, found = alert(quality, group)
    named = [a["value"] for a in found["cause"] if a["dimension"] == "input_cluster"]
    print(f"attribution ({rate} requests/h, {hours - 1} baseline hours, SQLite): quality alert {plain:.3f} s, with "
          f"the day's failure clusters {clustered:.3f} s ({clustered / plain:.2f}x; cluster named: {named})",
          flush=True)
    route, _ = alert(anomaly(table="agent_paths", group_by=["route"], aggregate="mean", metric="loop_detected"),
                     {"route": "/triage"})
    tool, found = alert(anomaly(table="agent_paths", explode={"tool": "tool_loops"}, group_by=["route", "tool"],
                                aggregate="mean", metric="tool_loops"), {"route": "/triage", "tool": "lookup"})
    top = found["cause"][0] if found["cause"] else {}
    print(f"attribution: agent loop alert per route {route:.3f} s, per route x tool {tool:.3f} s "
          f"({tool / route:.2f}x; top {top.get('dimension')}={top.get('value')}, {len(found['exemplars'])} exemplars)",
          flush=True)


if __name__ == "__main__":
    main()
