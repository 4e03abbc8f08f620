"""Alert state and delivery through the outbox, on SQLite and PostgreSQL, to a real HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from obs_pipelines.alerts import notifiers, outbox
from obs_pipelines.alerts.outbox import Observation
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_outbox, alerts

H = datetime(2026, 11, 2, 14, 0)
HOUR = timedelta(hours=1)
NOW = datetime(2026, 11, 2, 15, 30)
RULE = {"name": "provider_errors", "kind": "threshold", "table": "error_rollup_hourly", "group_by": "provider",
        "metric": "error_rate", "threshold": 0.25, "severity": "critical"}


def settings(**extra) -> AlertSettings:
    return AlertSettings(
        rules=[RULE, {**RULE, "name": "rate_limits"}],
        destinations={"hook": {"type": "webhook", "url_env": "OBS_PIPELINES_ALERT_WEBHOOK_URL"}},
        retry_backoff_seconds=30, **extra)


def rules(s: AlertSettings) -> dict:
    return {r.name: r for r in s.parsed_rules()}


def obs(hour: int, passed: bool, rule: str = "provider_errors", provider: str = "openai") -> Observation:
    start = H + hour * HOUR
    return Observation(rule=rule, window_start=start, window_end=start + HOUR, group={"provider": provider},
                       value=0.1 if passed else 0.84, threshold=0.25, judged=True, passed=passed,
                       metric="error_rate", samples=440, exemplar_trace_ids=["ab" * 16],
                       attribution=[{"dimension": "error_class", "value": "provider_5xx", "share": 0.74}])


def tick(store, s: AlertSettings, observations: list[Observation], now: datetime = NOW, **kw):
    transitions = outbox.record(store.engine, rules(s), observations, s, now=now)
    return transitions, outbox.deliver_due(store.engine, s, now=now, **kw)


def test_a_breach_is_stored_and_posted_with_the_alert_payload(store, webhook):
    s = settings()
    tick(store, s, [obs(0, False)])
    [request] = webhook.received
    alert = request["body"]
    assert alert["status"] == "firing" and alert["rule"] == "provider_errors" and alert["group"] == {"provider": "openai"}
    assert set(alert) >= {"id", "severity", "metric", "value", "threshold", "window_start", "window_end",
                          "attribution", "exemplar_trace_ids", "summary"}
    assert "openai" in alert["summary"] and "provider_5xx" in alert["summary"]
    assert request["headers"]["Idempotency-Key"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(alerts.c.id, alerts.c.status)).all() == [(alert["id"], "firing")]


def test_a_webhook_answering_500_three_times_then_200_delivers_exactly_once(store, webhook):
    s = settings()
    webhook.script = [500, 500, 500]
    tick(store, s, [obs(0, False)])
    now = NOW
    for _ in range(6):  # later ticks, each after the backoff has passed
        now += timedelta(minutes=10)
        outbox.deliver_due(store.engine, s, now=now)
    assert [r["status"] for r in webhook.received] == [500, 500, 500, 200]
    assert len({r["headers"]["Idempotency-Key"] for r in webhook.received}) == 1
    assert outbox.pending(store.engine) == []


def test_a_failed_delivery_waits_for_its_backoff_before_the_next_attempt(store, webhook):
    s = settings()
    webhook.script = [500, 500]
    tick(store, s, [obs(0, False)])
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=10))  # before the 30 s backoff
    assert len(webhook.received) == 1
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=31))
    assert len(webhook.received) == 2
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=31 + 50))  # second wait is 60 s
    assert len(webhook.received) == 2
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=31 + 61))
    assert [r["status"] for r in webhook.received] == [500, 500, 200]


def test_two_ticks_over_the_same_state_deliver_once(store, webhook):
    s = settings()
    tick(store, s, [obs(0, False)])
    tick(store, s, [obs(0, False)], now=NOW + HOUR)  # the same check result seen again (a re-read, a re-run)
    assert len(webhook.received) == 1


def test_a_crash_between_send_and_record_resends_with_the_same_idempotency_key(store, webhook):
    s = settings()

    class Crash(BaseException):
        """The process dies right after the POST returned."""

    def send_then_die(*args, **kwargs):
        notifiers.deliver(*args, **kwargs)
        raise Crash

    outbox.record(store.engine, rules(s), [obs(0, False)], s, now=NOW)
    with pytest.raises(Crash):
        outbox.deliver_due(store.engine, s, now=NOW, send=send_then_die)
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=1))  # the restarted process
    keys = [r["headers"]["Idempotency-Key"] for r in webhook.received]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert webhook.received[0]["body"] == webhook.received[1]["body"]
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=2))
    assert len(webhook.received) == 2


def test_recovery_sends_one_resolved_alert_after_the_good_windows(store, webhook):
    s = settings(resolve_after_windows=2)
    tick(store, s, [obs(0, False)])
    tick(store, s, [obs(1, True)])
    assert len(webhook.received) == 1  # one good window is not enough
    tick(store, s, [obs(2, True)])
    tick(store, s, [obs(3, True)])
    statuses = [r["body"]["status"] for r in webhook.received]
    assert statuses == ["firing", "resolved"]
    assert webhook.received[0]["body"]["id"] == webhook.received[1]["body"]["id"]
    assert webhook.received[0]["headers"]["Idempotency-Key"] != webhook.received[1]["headers"]["Idempotency-Key"]


def test_a_flapping_group_stays_one_alert(store, webhook):
    s = settings(resolve_after_windows=2)
    tick(store, s, [obs(0, False), obs(1, True), obs(2, False), obs(3, True), obs(4, False)])
    assert [r["body"]["status"] for r in webhook.received] == ["firing"]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alerts)).scalar() == 1


def test_a_new_breach_after_a_resolution_is_a_new_alert(store, webhook):
    s = settings(resolve_after_windows=1)
    tick(store, s, [obs(0, False), obs(1, True), obs(2, False)])
    bodies = [r["body"] for r in webhook.received]
    assert [b["status"] for b in bodies] == ["firing", "resolved", "firing"]
    assert bodies[0]["id"] != bodies[2]["id"]


def test_related_alerts_of_one_window_are_one_notification_listing_the_rules(store, webhook):
    s = settings()
    tick(store, s, [obs(0, False), obs(0, False, rule="rate_limits"), obs(0, False, provider="anthropic")])
    [request] = webhook.received
    body = request["body"]
    assert body["rules"] == ["provider_errors", "rate_limits"] and len(body["alerts"]) == 3
    assert "provider_errors" in body["summary"] and "rate_limits" in body["summary"]


def test_unjudged_results_neither_fire_nor_resolve(store, webhook):
    s = settings(resolve_after_windows=1)
    unjudged = obs(0, False)
    unjudged.judged = False
    tick(store, s, [unjudged])
    assert webhook.received == []


def test_a_missing_url_env_var_is_retried_not_lost(store, webhook, monkeypatch):
    s = settings()
    monkeypatch.delenv("OBS_PIPELINES_ALERT_WEBHOOK_URL")
    _, report = tick(store, s, [obs(0, False)])
    assert "OBS_PIPELINES_ALERT_WEBHOOK_URL" in next(iter(report.failed.values()))
    monkeypatch.setenv("OBS_PIPELINES_ALERT_WEBHOOK_URL", webhook.url)
    outbox.deliver_due(store.engine, s, now=NOW + HOUR)
    assert len(webhook.received) == 1


def test_slack_destination_posts_blocks_with_exemplars(store, webhook, monkeypatch):
    monkeypatch.setenv("SLACK_URL", webhook.url)
    s = AlertSettings(rules=[RULE], destinations={"slack": {"type": "slack", "url_env": "SLACK_URL"}})
    tick(store, s, [obs(0, False)])
    [request] = webhook.received
    assert request["body"]["text"].startswith("[FIRING] provider_errors")
    text = json.dumps(request["body"]["blocks"])
    assert "ab" * 16 in text and "provider_5xx" in text


def test_log_destination_writes_the_summary_to_the_log(store, caplog):
    s = AlertSettings(rules=[RULE])  # default destination: the log
    with caplog.at_level("WARNING", logger="obs_pipelines.alerts"):
        tick(store, s, [obs(0, False)])
    assert "[FIRING] provider_errors" in caplog.text


# ---- one deliverer at a time, ordering, give-ups, the tick's deadline (issue 20) -------------------------------
def test_two_deliverers_at_once_post_each_notification_once(store, webhook):
    s = settings()
    for hour in range(3):  # three windows: three notifications
        outbox.record(store.engine, rules(s), [obs(hour, False, provider=f"p{hour}")], s, now=NOW)
    first_send, second_done = threading.Event(), threading.Event()

    def slow_send(*args, **kwargs):  # the first deliverer is mid-send while the second one starts
        first_send.set()
        assert second_done.wait(60)
        notifiers.deliver(*args, **kwargs)

    reports = {}
    first = threading.Thread(target=lambda: reports.setdefault(
        "first", outbox.deliver_due(store.engine, s, now=NOW, send=slow_send)))
    first.start()
    assert first_send.wait(60)
    reports["second"] = outbox.deliver_due(store.engine, s, now=NOW)
    second_done.set()
    first.join(60)
    assert reports["second"].busy and reports["second"].delivered == []
    assert len(reports["first"].delivered) == 3
    assert len(webhook.received) == 3
    assert len({r["headers"]["Idempotency-Key"] for r in webhook.received}) == 3


def test_a_resolved_notification_waits_while_its_firing_one_is_backing_off(store, webhook):
    s = settings(resolve_after_windows=1)
    webhook.script = [500]  # the FIRING's first POST fails: it waits 30 s (retry_backoff_seconds)
    tick(store, s, [obs(0, False)])
    _, report = tick(store, s, [obs(1, True)], now=NOW + timedelta(seconds=10))  # RESOLVED due, FIRING not
    assert report.delivered == []
    outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=31))
    assert [(r["status"], r["body"]["status"]) for r in webhook.received] == [
        (500, "firing"), (200, "firing"), (200, "resolved")]


def test_a_failed_firing_holds_back_its_resolved_in_the_same_tick(store, webhook):
    s = settings(resolve_after_windows=1)
    outbox.record(store.engine, rules(s), [obs(0, False), obs(1, True)], s, now=NOW)  # both queued, in order
    webhook.script = [500]
    report = outbox.deliver_due(store.engine, s, now=NOW)
    assert [r["body"]["status"] for r in webhook.received] == ["firing"] and report.delivered == []


def test_a_given_up_notification_is_logged_marked_and_alerted_to_the_other_destinations(store, webhook, caplog):
    s = AlertSettings(rules=[RULE], max_attempts=2, retry_backoff_seconds=30,
                      destinations={"hook": {"type": "webhook", "url_env": "OBS_PIPELINES_ALERT_WEBHOOK_URL"},
                                    "ops_log": {"type": "log"}})
    webhook.script = [500, 500]
    with caplog.at_level("WARNING", logger="obs_pipelines.alerts"):
        tick(store, s, [obs(0, False)])
        report = outbox.deliver_due(store.engine, s, now=NOW + timedelta(seconds=31))  # the 2nd and last attempt
    assert len(report.given_up) == 1 and report.given_up[0].endswith("@hook")
    assert "GAVE UP" in caplog.text and "[FIRING] alert_delivery_failed" in caplog.text  # via ops_log
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alert_outbox.c.destination, alert_outbox.c.gave_up_at, alert_outbox.c.payload)
                            .order_by(alert_outbox.c.id)).all()
    gave_up = [(d, json.loads(p)["rule"]) for d, g, p in rows if g is not None]
    assert gave_up == [("hook", "provider_errors")]
    health = [d for d, _, p in rows if json.loads(p)["rule"] == "alert_delivery_failed"]
    assert health == ["ops_log"]  # never to the destination that is failing
    outbox.deliver_due(store.engine, s, now=NOW + HOUR)
    assert len(webhook.received) == 2  # given up: not tried again


def test_a_webhook_that_never_answers_cannot_hold_a_tick_past_its_deadline(store, monkeypatch):
    listener = socket.socket()  # accepts connections (the kernel's backlog) and never reads or answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    monkeypatch.setenv("OBS_PIPELINES_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    s = settings()
    for hour in range(6):  # six due notifications, each allowed the destination's 10 s timeout
        outbox.record(store.engine, rules(s), [obs(hour, False, provider=f"p{hour}")], s, now=NOW)
    began = time.monotonic()
    report = outbox.deliver_due(store.engine, s, now=NOW, deadline_s=1.0)
    took = time.monotonic() - began
    listener.close()
    assert took < 5  # 1 s of deadline plus the bookkeeping, not 6 x 10 s
    assert len(report.failed) == 1 and "deadline" in next(iter(report.failed.values()))
    assert len(report.deferred) == 5 and report.delivered == []
    assert len(outbox.pending(store.engine)) == 6  # all still queued for the next tick


def test_slack_text_from_app_data_cannot_mention_or_link(store, webhook, monkeypatch):
    monkeypatch.setenv("SLACK_URL", webhook.url)
    s = AlertSettings(rules=[RULE], destinations={"slack": {"type": "slack", "url_env": "SLACK_URL"}})
    hostile = "<!channel> see <https://evil.example|click> & <@U0123>"
    tick(store, s, [obs(0, False, provider=hostile)])
    text = json.dumps(webhook.received[0]["body"])
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U0123>" not in text
    assert "&lt;!channel&gt; see &lt;https://evil.example|click&gt; &amp; &lt;@U0123&gt;" in text


def test_slack_escape_turns_only_slacks_three_control_characters_into_entities():
    # the three characters Slack's docs say to escape; everything else (emoji codes, *bold*) is left alone
    assert notifiers.slack_escape("a<b>&c *d* :x:") == "a&lt;b&gt;&amp;c *d* :x:"
