"""The fast path (alerts/realtime.py, alerts_realtime_sensor's tick): the rules on the monitoring rollups
judged over the last minutes of spans, paging through the same outbox as the hourly checks, on both databases,
against a real webhook. Traffic from the second, independent trace source (obs_pipelines_tests/second_app) and
small hand-written cases."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from obs_pipelines.alerts import realtime, results
from obs_pipelines.alerts.defs import hour_metadata, realtime_tick
from obs_pipelines.alerts.evaluate import HOUR, evaluate
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alerts
from obs_pipelines.monitoring import rollups
from obs_pipelines.store import db
from obs_pipelines_tests.second_app import Profile, SupportBot, ingest_hours

# a provider failing more than a quarter of its spans is broken (an absolute rule: no history needed)
PROVIDER_RULE = {"name": "provider_error_rate", "kind": "threshold", "table": "error_rollup_hourly",
                 "group_by": "provider", "metric": "error_rate", "comparison": ">", "threshold": 0.25,
                 "sample_column": "span_count", "min_samples": 20, "severity": "critical"}


def settings(**extra) -> AlertSettings:
    return AlertSettings(rules=[PROVIDER_RULE], destinations={
        "hook": {"type": "webhook", "url_env": "OBS_PIPELINES_ALERT_WEBHOOK_URL"}}, **extra)


def fast(s: AlertSettings) -> list:
    return realtime.fast_rules(s.parsed_rules())


def llm_span(trace: int, provider: str, failed: bool, start: datetime) -> dict:
    """One request = one root llm span of ``provider``."""
    return {"trace_id": f"{trace:032x}", "span_id": f"{trace:016x}", "parent_span_id": None, "name": "chat",
            "kind": "llm", "start_time": start, "end_time": start + timedelta(milliseconds=400),
            "status": "error" if failed else "ok", "error_type": "provider_5xx" if failed else None,
            "error_message": "503 Service Unavailable" if failed else None, "provider": provider,
            "model": "m-1", "route": "chat", "attributes": {}}


# One fixed clock for the tests and for the code they call (results.process and the outbox read db.utcnow()).
# The second app's traffic over the hour before now depends on which hour that is (its seed and its day-shaped
# load), so with the real clock the newest 5 minutes held 17-75 Cohere spans depending on the date and hour the
# test ran: on 2026-12-27 between 05:20 and 06:19 UTC they held 17, under the rule's 20 samples, the 15-minute
# window judged the outage instead and the tests asserting the 5-minute window failed. At this instant: 50.
NOW = datetime(2026, 11, 2, 15, 37, 23)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(db, "utcnow", lambda: NOW)


def now_minute() -> datetime:
    """Now, but at least 20 minutes into the hour, so that the 15-minute window stays inside one hour (the
    hand-written cases count spans per window)."""
    now = db.utcnow().replace(microsecond=0)
    return now if now.minute >= 20 else now.replace(minute=20, second=0) - HOUR


def ingest_outage_hour(store, tmp_path, now: datetime, mode: str | None = "provider_outage") -> None:
    """The second app's traffic over the hour before ``now`` (1,200 requests an hour: at NOW its newest 5
    minutes hold 50 Cohere spans, 76% of them failed, above the rule's 20 samples), with the failure mode over
    all of it."""
    bot = SupportBot(Profile(requests_per_hour=1200, scale=0.1, seed=11))
    start = now - HOUR
    ingest_hours(store.engine, tmp_path, bot, start, 1, {start: mode} if mode else None)


def test_an_outage_of_the_last_minutes_pages_once_as_the_current_hours_alert(store, webhook, tmp_path):
    now = now_minute()
    ingest_outage_hour(store, tmp_path, now)
    s = settings()
    breaches, _, _ = realtime_tick(store.engine, s, fast(s), now)
    assert [(b.rule.name, b.result.group) for b in breaches] == [("provider_error_rate", {"provider": "cohere"})]
    assert breaches[0].minutes == 5  # the shortest window that shows it
    [request] = webhook.received
    alert = request["body"]
    assert alert["status"] == "firing" and alert["group"] == {"provider": "cohere"}
    hour = now.replace(minute=0, second=0)
    assert alert["window_start"] == hour.isoformat() and alert["metric"] == "error_rate (last 5 min)"
    assert alert["value"] > 0.25 and "(last 5 min)" in alert["summary"] and "%" in alert["summary"]
    assert alert["link"].endswith("/assets/error_rollup_hourly?view=partitions&partition="
                                  + hour.strftime("%Y-%m-%d-%H%%3A%M"))


def test_the_next_ticks_over_the_same_outage_page_nothing_more(store, webhook, tmp_path):
    now = now_minute()
    ingest_outage_hour(store, tmp_path, now)
    s = settings()
    for minute in range(3):  # three ticks a minute apart (the sensor's interval)
        realtime_tick(store.engine, s, fast(s), now + timedelta(minutes=minute))
    assert len(webhook.received) == 1
    assert results.pending_count(store.engine) == 0


def test_the_hourly_check_of_that_hour_updates_the_same_alert_without_paging_again(store, webhook, tmp_path):
    now = now_minute()
    ingest_outage_hour(store, tmp_path, now)
    s = settings()
    [rule] = fast(s)
    realtime_tick(store.engine, s, [rule], now)
    [fired] = webhook.received
    # the hourly check of the hour, as the rule check does it: the hour's rollup judged, its row queued
    hour = now.replace(minute=0, second=0)
    frame = rollups.error_rollup(store.engine, hour, hour + HOUR)
    judged = evaluate(rule, frame, hour, hour + HOUR)
    _, _, found = hour_metadata(store.engine, rule, judged, "http://ui/link")
    results.queue(store.engine, [results.row(rule.name, rule.metric, hour, hour + HOUR, judged, "http://ui/link",
                                             found, "run-hourly", db.utcnow())])
    results.process(store.engine, s)
    assert webhook.received == [fired]  # no second page
    with store.engine.connect() as conn:
        [(status, stored)] = conn.execute(sa.select(alerts.c.status, alerts.c.payload)).all()
    stored = json.loads(stored)
    [cohere] = [r for r in judged if r.group == {"provider": "cohere"}]
    assert status == "firing" and stored["id"] == fired["body"]["id"]
    assert stored["detected_by"] == {"path": "realtime", "metric": "error_rate (last 5 min)",
                                     "confirmed": "hourly check"}
    assert stored["metric"] == "error_rate" and stored["value"] == pytest.approx(cohere.value, rel=1e-5)
    assert stored["summary"].endswith("(confirmed by the hourly check)")


def test_clean_traffic_of_the_second_app_pages_nothing(store, webhook, tmp_path):
    # its background noise (a few timeouts and 5xx) stays far under a quarter of any provider's spans
    now = now_minute()
    ingest_outage_hour(store, tmp_path, now, mode=None)
    s = settings()
    breaches, _, _ = realtime_tick(store.engine, s, fast(s), now)
    assert breaches == [] and webhook.received == []


def test_hand_written_minutes_half_failed_fire_and_a_twentieth_failed_does_not(store, webhook):
    now = now_minute()
    rows = []
    for i in range(40):  # acme: 20 of 40 requests failed in the last 4 minutes -> 50% > 25%
        rows.append(llm_span(i, "acme", i % 2 == 0, now - timedelta(seconds=6 * i + 1)))
    for i in range(40):  # zeta: 2 of 40 failed -> 5%, under 25%
        rows.append(llm_span(100 + i, "zeta", i < 2, now - timedelta(seconds=6 * i + 2)))
    db.insert_spans(store.engine, rows)
    s = settings()
    breaches, _, _ = realtime_tick(store.engine, s, fast(s), now)
    [b] = breaches
    assert b.result.group == {"provider": "acme"} and b.result.value == 0.5 and b.result.samples == 40
    [request] = webhook.received
    assert request["body"]["summary"].startswith(
        "[FIRING] provider_error_rate: error_rate (last 5 min) = 50% (threshold 25%) for provider=acme")


def test_spans_older_than_the_longest_window_are_not_judged(store, webhook):
    now = now_minute()
    # 40 failed requests 16-20 minutes ago: outside the 15-minute window, left to the hourly check
    db.insert_spans(store.engine, [llm_span(i, "acme", True, now - timedelta(minutes=16, seconds=6 * i))
                                   for i in range(40)])
    s = settings()
    breaches, _, _ = realtime_tick(store.engine, s, fast(s), now)
    assert breaches == [] and webhook.received == []


def test_a_count_metric_is_scaled_to_the_hour_and_judged_on_the_longest_window_only():
    # traffic: 30 requests in 15 minutes is 120 an hour; the newest minutes miss requests still in flight
    rule = AlertSettings(rules=[{"name": "traffic", "kind": "threshold", "table": "request_rollup_hourly",
                                 "metric": "request_count", "comparison": "<", "threshold": 100}]).parsed_rules()[0]
    assert realtime.windows_for(rule, [5, 15]) == [15]
    import pandas as pd

    scaled = realtime.hourly_scale(rule, pd.DataFrame({"request_count": [30], "error_rate": [0.1]}), 15)
    assert scaled["request_count"].tolist() == [120] and scaled["error_rate"].tolist() == [0.1]
