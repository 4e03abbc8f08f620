"""End to end under a real `dagster-daemon run` (issue 13): the Dagster instance on PostgreSQL through
deploy/dagster.yaml, the trace store on PostgreSQL, the webhook a real HTTP server. Slow by nature (the
daemon's start and a 30 s sensor interval: about a minute); it runs with the rest of the suite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import TickStatus

from obs_pipelines.store import db
from obs_pipelines_tests.alerts import daemon_harness as h
from obs_pipelines_tests.pg_schemas import private_schema

RULE, GROUP = "provider_error_rate", {"provider": "openai"}
DELIVERY_TIMEOUT_S = 240
SHUTDOWN_TIMEOUT_S = 60


@pytest.fixture
def pg_url() -> str:
    """The CI's PostgreSQL (.ci/run exports both variables): the store's database, on the server that also
    gets this test's own Dagster database."""
    url = os.environ.get("OBS_PIPELINES_TEST_PG_URL")
    if not url or not os.environ.get("OBS_PIPELINES_TEST_DAGSTER_PG_DB"):
        pytest.skip("OBS_PIPELINES_TEST_PG_URL / OBS_PIPELINES_TEST_DAGSTER_PG_DB are not set (see .ci/run)")
    return url


@pytest.mark.slow  # ~1 min: a label for readers and `-m "not slow"`, never a skip
def test_daemon_delivers_a_provider_outage_to_the_webhook_exactly_once_and_shuts_down_cleanly(
        pg_url, webhook, tmp_path, monkeypatch):
    now = db.utcnow()
    outage = h.outage_hour(now)
    with h.fresh_database(pg_url) as dagster_db, private_schema(pg_url) as store_url:
        # the autouse fixture's DAGSTER_HOME (a temporary directory) becomes the production instance
        home = Path(os.environ["DAGSTER_HOME"])
        for name, value in h.deploy_env(home, pg_url, dagster_db).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OBS_PIPELINES_CONFIG", str(h.write_settings(tmp_path, outage - h.HOUR, now)))
        monkeypatch.setenv("OBS_PIPELINES_DB_URL", store_url)
        assert h.load_outage(store_url, outage) > 0

        instance = dg.DagsterInstance.get()
        daemon = None
        try:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            # the phase's run evaluates the rules on its tables itself: the daemon only has to deliver
            run = h.roll_up(Path(os.environ["OBS_PIPELINES_CONFIG"]), outage - h.HOUR, outage, instance)
            assert run.success

            daemon = h.Daemon(h.write_workspace(tmp_path), Path.cwd(), dict(os.environ), tmp_path / "daemon.log")
            [first] = h.wait_for(lambda: h.deliveries_of(webhook.received, RULE, outage), DELIVERY_TIMEOUT_S,
                                 f"the {RULE} alert at the webhook", daemon)
            delivered_at = time.time()
            # one more alerts_sensor tick after the delivery, to its end (its POSTs, if any, are sent by then):
            # it must not send the alert again
            h.wait_for(lambda: [t for t in h.sensor_ticks(instance, "alerts_sensor")
                                if t.timestamp > delivered_at and t.end_timestamp], 90,
                       "an alerts_sensor tick after the delivery", daemon, poll=1.0)

            assert h.deliveries_of(webhook.received, RULE, outage) == [first]
            [alert] = [a for a in h.alerts_of(first["body"]) if a["rule"] == RULE]
            assert alert["group"] == GROUP and alert["severity"] == "critical"
            assert first["status"] == 200
            assert first["headers"]["Idempotency-Key"] == h.expected_idempotency_key(first["body"])
            # the path taken: the phase's run evaluated the rules, so the rules sensor launched no run
            assert [r.job_name for r in instance.get_runs()] == ["monitoring_hourly_job"]
            failed = [t for t in h.sensor_ticks(instance, "alerts_sensor") if t.status == TickStatus.FAILURE]
            assert not failed, failed[0].error

            assert daemon.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT_S) == 0, daemon.log_tail()
            assert daemon.leftovers() == []
        finally:
            if daemon is not None:
                daemon.kill_session()
            instance.dispose()
            h.release_store(store_url)


REALTIME_TIMEOUT_S = 420  # a bound for a hung daemon, not the target: the latency is measured in bench/


@pytest.mark.slow  # ~2-3 min: the daemon's start, then the fast path's 60 s interval
def test_daemon_pages_an_outage_of_the_current_hour_from_its_spans_and_shows_the_hours_of_spans(
        pg_url, webhook, tmp_path, monkeypatch):
    """The fast path under the real daemon: spans of an outage happening now land in the store while the
    daemon runs; alerts_realtime_sensor pages the webhook once, with the current hour's alert, and the
    spans_arrival_sensor reports the closed hours of spans as materialized partitions (the UI's status)."""
    now = db.utcnow()
    first = (now - 3 * h.HOUR).replace(minute=0, second=0, microsecond=0)
    with h.fresh_database(pg_url) as dagster_db, private_schema(pg_url) as store_url:
        home = Path(os.environ["DAGSTER_HOME"])
        for name, value in h.deploy_env(home, pg_url, dagster_db).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OBS_PIPELINES_CONFIG", str(h.write_settings(tmp_path, first, now,
                                                                        deliver_max_age_hours=2)))
        monkeypatch.setenv("OBS_PIPELINES_DB_URL", store_url)
        from obs_pipelines.orchestration.resource import TraceStore

        TraceStore(db_url=store_url).create_tables()
        assert h.load_clean_hours(store_url, first, 2) > 0  # two closed hours of clean traffic

        instance = dg.DagsterInstance.get()
        daemon = None
        try:
            daemon = h.Daemon(h.write_workspace(tmp_path), Path.cwd(), dict(os.environ), tmp_path / "daemon.log")
            h.wait_for(lambda: [t for t in h.sensor_ticks(instance, "alerts_realtime_sensor") if t.end_timestamp],
                       240, "the first alerts_realtime_sensor tick", daemon, poll=0.5)
            landed_at = db.utcnow()
            assert h.load_live_outage(store_url, landed_at) > 0
            hours = {landed_at.replace(minute=0, second=0, microsecond=0).isoformat(),
                     (landed_at.replace(minute=0, second=0, microsecond=0) + h.HOUR).isoformat()}
            [first_post] = h.wait_for(lambda: [r for r in webhook.received for a in h.alerts_of(r["body"])
                                               if a["rule"] == RULE and a["window_start"] in hours],
                                      REALTIME_TIMEOUT_S, "the realtime alert at the webhook", daemon, poll=0.2)
            print(f"spans landed -> webhook: {(db.utcnow() - landed_at).total_seconds():.1f} s")
            [alert] = [a for a in h.alerts_of(first_post["body"]) if a["rule"] == RULE]
            assert alert["group"] == GROUP and alert["metric"].startswith("error_rate (last ")
            assert "?view=partitions&partition=" in alert["link"]
            # one more realtime tick after the delivery: the same outage is not paged again
            delivered = time.time()
            h.wait_for(lambda: [t for t in h.sensor_ticks(instance, "alerts_realtime_sensor")
                                if t.timestamp > delivered and t.end_timestamp], 150,
                       "an alerts_realtime_sensor tick after the delivery", daemon, poll=1.0)
            assert [r for r in webhook.received if any(a["rule"] == RULE for a in h.alerts_of(r["body"]))] == [
                first_post]
            # the closed hours of spans are materialized partitions of `spans`, with their counts
            keys = {f"{first + i * h.HOUR:%Y-%m-%d-%H:%M}" for i in range(2)}
            h.wait_for(lambda: keys <= instance.get_materialized_partitions(dg.AssetKey("spans")), 120,
                       "the spans partitions", daemon, poll=1.0)
            failed = [t for name in ("alerts_realtime_sensor", "spans_arrival_sensor")
                      for t in h.sensor_ticks(instance, name) if t.status == TickStatus.FAILURE]
            assert not failed, failed[0].error
            assert daemon.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT_S) == 0, daemon.log_tail()
        finally:
            if daemon is not None:
                daemon.kill_session()
            instance.dispose()
            h.release_store(store_url)
