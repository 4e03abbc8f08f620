"""The queue of rule results between the checks and the alerts: each result applied once, on SQLite and
PostgreSQL, delivered to a real HTTP server."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from obs_pipelines.alerts import outbox, results
from obs_pipelines.alerts.evaluate import RuleResult
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_outbox, alerts

H = datetime(2026, 11, 2, 14, 0)
HOUR = timedelta(hours=1)
RULE = {"name": "provider_errors", "kind": "threshold", "table": "error_rollup_hourly", "group_by": "provider",
        "metric": "error_rate", "threshold": 0.25, "severity": "critical"}
PROVIDERS = ("openai", "anthropic", "mistral")


def settings() -> AlertSettings:
    # these hours (November) are replayed as if live: every change is delivered whatever its age
    return AlertSettings(rules=[RULE], resolve_after_windows=2, deliver_max_age_hours=None,
                         destinations={"hook": {"type": "webhook", "url_env": "OBS_PIPELINES_ALERT_WEBHOOK_URL"}})


def rules(s: AlertSettings) -> dict:
    return {r.name: r for r in s.parsed_rules()}


def hour_row(hour: int, breached: set[str] = frozenset(), unjudged: set[str] = frozenset()) -> dict:
    """The queue row the check writes for one hour: every provider judged, `breached` ones over 0.25."""
    start = H + hour * HOUR
    found = []
    for p in PROVIDERS:
        found.append(RuleResult("provider_errors", start, start + HOUR, {"provider": p},
                                0.84 if p in breached else 0.1, 0.25, 440.0, p not in unjudged, p not in breached))
    attribution = {id(r): ([{"dimension": "error_class", "value": "provider_5xx", "share": 0.74}], ["ab" * 16])
                   for r in found if not r.passed}
    return results.row("provider_errors", "error_rate", start, start + HOUR, found,
                       f"http://ui/assets/error_rollup_hourly?partition={start:%Y-%m-%d-%H:%M}", attribution)


def tick(store, s: AlertSettings, **kw):
    applied = results.apply_pending(store.engine, rules(s), s, **kw)
    return applied, outbox.deliver_due(store.engine, s)


def outbox_rows(store) -> list[tuple]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(alert_outbox.c.destination, alert_outbox.c.idempotency_key,
                                      alert_outbox.c.status).order_by(alert_outbox.c.id)).all()


def test_queued_results_are_applied_once_and_leave_the_queue(store, webhook):
    s = settings()
    results.queue(store.engine, [hour_row(0, {"openai"}), hour_row(1, {"openai"})])
    assert results.pending_count(store.engine) == 2
    applied, report = tick(store, s)
    assert applied.consumed == 2 and [t.alert["status"] for t in applied.transitions] == ["firing"]
    assert results.pending_count(store.engine) == 0
    [request] = webhook.received
    alert = request["body"]
    assert alert["group"] == {"provider": "openai"} and alert["value"] == 0.84 and alert["samples"] == 440.0
    assert alert["attribution"][0]["value"] == "provider_5xx" and alert["exemplar_trace_ids"] == ["ab" * 16]
    assert alert["link"].endswith("partition=2026-11-02-14:00") and alert["metric"] == "error_rate"
    again, _ = tick(store, s)  # nothing queued: nothing read, nothing sent
    assert again.consumed == 0 and again.transitions == [] and len(webhook.received) == 1


def test_the_same_hours_queued_again_deliver_nothing_twice(store, webhook):
    """A re-run of the hours of an incident that fired, stayed and resolved: no alert fires again (also not
    for the incident's second breached hour), no notification is queued."""
    s = settings()
    week = [hour_row(0, {"openai"}), hour_row(1, {"openai"}), hour_row(2), hour_row(3), hour_row(4, {"mistral"})]
    results.queue(store.engine, week)
    applied, _ = tick(store, s)
    assert [(t.alert["status"], t.alert["group"]["provider"]) for t in applied.transitions] == [
        ("firing", "openai"), ("resolved", "openai"), ("firing", "mistral")]
    sent, queued = len(webhook.received), outbox_rows(store)
    results.queue(store.engine, week)
    results.queue(store.engine, week[1:3])
    again, _ = tick(store, s)
    assert again.consumed == len(week) + 2 and again.transitions == []
    assert outbox_rows(store) == queued and len(webhook.received) == sent == 3
    with store.engine.connect() as conn:
        assert sorted(conn.execute(sa.select(alerts.c.status)).scalars()) == ["firing", "resolved"]


def test_good_hours_of_a_firing_group_resolve_it_over_later_ticks(store, webhook):
    """Good hours of groups without an alert are dropped before they are applied, not those of a group whose
    alert is firing: they count towards its resolution, tick after tick."""
    s = settings()
    results.queue(store.engine, [hour_row(0, {"openai"}), hour_row(1, unjudged={"openai"})])
    tick(store, s)
    results.queue(store.engine, [hour_row(2)])
    applied, _ = tick(store, s)
    assert applied.transitions == []  # one good hour of two
    results.queue(store.engine, [hour_row(3)])
    applied, _ = tick(store, s)
    [resolved] = applied.transitions
    assert resolved.alert["status"] == "resolved"
    assert resolved.alert["resolved_window_start"] == (H + 3 * HOUR).isoformat()
    assert "resolved after 2 good window(s), last value 0.1" in resolved.alert["summary"]
    assert [r["body"]["status"] for r in webhook.received] == ["firing", "resolved"]


def test_a_tick_that_fails_leaves_its_results_queued(store, webhook, monkeypatch):
    s = settings()
    results.queue(store.engine, [hour_row(0, {"openai"})])

    def broken(*args, **kwargs):
        raise RuntimeError("died while applying")

    with monkeypatch.context() as m:
        m.setattr(outbox, "apply_judgements", broken)
        with pytest.raises(RuntimeError):
            tick(store, s)
    assert results.pending_count(store.engine) == 1 and outbox_rows(store) == []
    applied, _ = tick(store, s)
    assert applied.consumed == 1 and len(applied.transitions) == 1 and len(webhook.received) == 1


def test_two_consumers_at_once_apply_each_result_once(store, webhook):
    """Two processes' ticks side by side (the sensor and `alerts evaluate`), taking small chunks: every row is
    applied by one of them, and the alerts and the outbox are those of one consumer alone."""
    s = settings()
    hours = [hour_row(h, {"openai"} if h % 7 in (0, 1) else {"anthropic"} if h % 5 == 0 else set())
             for h in range(60)]
    results.queue(store.engine, hours)
    consumed: list[int] = []
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            consumed.append(results.apply_pending(store.engine, rules(s), s, chunk_rows=4, max_chunks=100).consumed)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sum(consumed) == len(hours) and results.pending_count(store.engine) == 0
    with store.engine.connect() as conn:
        together = sorted(map(tuple, conn.execute(sa.select(alerts.c.id, alerts.c.status)).all()))
    together_outbox = sorted(outbox_rows(store))

    # the same rows through one consumer in one go, on a clean state
    with store.engine.begin() as conn:
        conn.execute(sa.delete(alerts))
        conn.execute(sa.delete(alert_outbox))
    results.queue(store.engine, hours)
    results.apply_pending(store.engine, rules(s), s, chunk_rows=4, max_chunks=100)
    with store.engine.connect() as conn:
        alone = sorted(map(tuple, conn.execute(sa.select(alerts.c.id, alerts.c.status)).all()))
    assert together == alone and len(alone) > 4
    assert sorted(outbox_rows(store)) == together_outbox
