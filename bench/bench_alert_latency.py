"""Alert latency under a real daemon (issue 13; run by hand, not by pytest): from an hourly monitoring run's
RUN_SUCCESS event to the webhook receiving the alert it raised. Target: under 60 s.

With --realtime (issue 24): from the spans of an outage happening now landing in the store to the webhook
receiving the fast path's alert (alerts_realtime_sensor, every 60 s). Target: under 5 minutes. Each round is
the generator's provider_outage moved to now, for another provider name (a new incident each round: the
current hour's alert of a provider is paged once).

    OBS_PIPELINES_TEST_PG_URL=postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test \\
        .venv/bin/python bench/bench_alert_latency.py [--rounds 3]

Setup as in obs_pipelines_tests/alerts/test_daemon.py: `dagster-daemon run` at its default tick interval (the
alert sensors' minimum_interval_seconds=30), the Dagster instance on PostgreSQL through deploy/dagster.yaml (a
database made and dropped here), the trace store in a private schema, a local webhook. Each round rolls up a
provider_outage hour in this process (the job evaluates the rules on its tables) and times its alert. A round
starts at a random moment of the sensor's 30 s cycle, so the figures spread over it as real runs' would.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"
RULE = "provider_error_rate"
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="of the random start of each round in the sensor cycle")
    parser.add_argument("--realtime", action="store_true", help="time the fast path (spans landing -> webhook)")
    args = parser.parse_args()
    if args.realtime:
        return realtime_rounds(args)
    pg_url = os.environ.get("OBS_PIPELINES_TEST_PG_URL", DEFAULT_PG_URL)
    work = Path(tempfile.mkdtemp(prefix="bench_alert_latency_"))
    (work / "home").mkdir()
    os.chdir(work)  # nothing lands in the project's .dagster_home or .obs_pipelines

    import dagster as dg

    from obs_pipelines.store import db
    from obs_pipelines_tests.alerts import daemon_harness as h
    from obs_pipelines_tests.alerts.conftest import Webhook
    from obs_pipelines_tests.pg_schemas import private_schema

    rng = random.Random(args.seed)
    now = db.utcnow()
    # one outage day per round, oldest first: an alert state only moves forward in time
    outages = [h.outage_hour(now, days_back=10 + args.rounds - 1 - i) for i in range(args.rounds)]
    webhook = Webhook()
    with h.fresh_database(pg_url) as dagster_db, private_schema(pg_url) as store_url:
        os.environ.update(h.deploy_env(work / "home", pg_url, dagster_db))
        # each round's clean hour resolves the previous round's alert, so every outage fires anew
        settings = h.write_settings(work, outages[0] - h.HOUR, now, resolve_after_windows=1)
        os.environ.update({"OBS_PIPELINES_CONFIG": str(settings), "OBS_PIPELINES_DB_URL": store_url,
                           h.WEBHOOK_ENV: webhook.url})
        t = time.perf_counter()
        # a seed per day: the same seed gives the same trace ids, which the store would ignore as duplicates
        spans = sum(h.load_outage(store_url, outage, seed=7 + i) for i, outage in enumerate(outages))
        print(f"setup: {spans} spans over {args.rounds} outage day(s) in {time.perf_counter() - t:.1f} s", flush=True)

        instance = dg.DagsterInstance.get()
        daemon = h.Daemon(h.write_workspace(work), work, dict(os.environ), work / "daemon.log")
        try:
            t = time.perf_counter()
            h.wait_for(lambda: [k for k in h.sensor_ticks(instance, "alerts_sensor") if k.end_timestamp], 240,
                       "the first alerts_sensor tick", daemon, poll=0.5)
            print(f"daemon: first alerts_sensor tick {time.perf_counter() - t:.1f} s after the start", flush=True)
            latencies = []
            for i, outage in enumerate(outages, 1):
                time.sleep(rng.uniform(0, 30))
                t = time.perf_counter()
                run = h.roll_up(settings, outage - h.HOUR, outage, instance)
                assert run.success, f"round {i}: the monitoring run failed"
                run_s = time.perf_counter() - t
                finished = h.run_success_timestamp(instance, run.run_id)
                h.wait_for(lambda o=outage: h.deliveries_of(webhook.received, RULE, o), 240,
                           f"the {RULE} alert of round {i}", daemon, poll=0.05)
                latencies.append(time.time() - finished)
                print(f"round {i}: outage {outage:%Y-%m-%d %H:00}, monitoring run {run_s:.1f} s, "
                      f"RUN_SUCCESS -> webhook {latencies[-1]:.1f} s", flush=True)
            print(f"latency over {len(latencies)} round(s): min {min(latencies):.1f} s, median "
                  f"{statistics.median(latencies):.1f} s, max {max(latencies):.1f} s (target < {TARGET_S:.0f} s: "
                  f"{'met' if max(latencies) < TARGET_S else 'MISSED'})")
            t = time.perf_counter()
            code = daemon.stop(signal.SIGTERM)
            print(f"daemon: SIGTERM -> exit code {code} in {time.perf_counter() - t:.1f} s, "
                  f"{len(daemon.leftovers())} process(es) of its session left")
        finally:
            daemon.kill_session()
            instance.dispose()
            h.release_store(store_url)
            webhook.close()


def realtime_rounds(args) -> None:
    pg_url = os.environ.get("OBS_PIPELINES_TEST_PG_URL", DEFAULT_PG_URL)
    work = Path(tempfile.mkdtemp(prefix="bench_alert_latency_"))
    (work / "home").mkdir()
    os.chdir(work)

    import dagster as dg

    from obs_pipelines.orchestration.resource import TraceStore
    from obs_pipelines.store import db
    from obs_pipelines_tests.alerts import daemon_harness as h
    from obs_pipelines_tests.alerts.conftest import Webhook
    from obs_pipelines_tests.pg_schemas import private_schema

    rng = random.Random(args.seed)
    webhook = Webhook()
    target_s = 300.0
    with h.fresh_database(pg_url) as dagster_db, private_schema(pg_url) as store_url:
        now = db.utcnow()
        os.environ.update(h.deploy_env(work / "home", pg_url, dagster_db))
        settings = h.write_settings(work, now - 3 * h.HOUR, now, deliver_max_age_hours=2)
        os.environ.update({"OBS_PIPELINES_CONFIG": str(settings), "OBS_PIPELINES_DB_URL": store_url,
                           h.WEBHOOK_ENV: webhook.url})
        TraceStore(db_url=store_url).create_tables()
        instance = dg.DagsterInstance.get()
        daemon = h.Daemon(h.write_workspace(work), work, dict(os.environ), work / "daemon.log")
        try:
            t = time.perf_counter()
            h.wait_for(lambda: [k for k in h.sensor_ticks(instance, "alerts_realtime_sensor") if k.end_timestamp],
                       240, "the first alerts_realtime_sensor tick", daemon, poll=0.5)
            print(f"daemon: first alerts_realtime_sensor tick {time.perf_counter() - t:.1f} s after the start",
                  flush=True)
            latencies = []
            for i in range(1, args.rounds + 1):
                time.sleep(rng.uniform(0, 60))
                landed = db.utcnow()
                provider = f"provider-{i}"
                engine = db.make_engine(store_url)
                outage = h.live_outage_rows(landed, seed=100 + i)
                rows = [r for r in outage if r.get("provider") == "openai"]  # the generator's failing provider
                db.insert_spans(engine, [{**r, "provider": provider} if r.get("provider") == "openai" else r
                                         for r in outage])
                t = time.time()
                h.wait_for(lambda p=provider: [r for r in webhook.received for a in h.alerts_of(r["body"])
                                               if a.get("group") == {"provider": p}], 420,
                           f"the alert of round {i}", daemon, poll=0.05)
                latencies.append(time.time() - t)
                print(f"round {i}: {len(rows)} spans of {provider} landed -> webhook {latencies[-1]:.1f} s", flush=True)
            print(f"latency over {len(latencies)} round(s): min {min(latencies):.1f} s, median "
                  f"{statistics.median(latencies):.1f} s, max {max(latencies):.1f} s (target < {target_s:.0f} s: "
                  f"{'met' if max(latencies) < target_s else 'MISSED'})")
            code = daemon.stop(signal.SIGTERM)
            print(f"daemon: SIGTERM -> exit code {code}")
        finally:
            daemon.kill_session()
            instance.dispose()
            h.release_store(store_url)
            webhook.close()


if __name__ == "__main__":
    main()
