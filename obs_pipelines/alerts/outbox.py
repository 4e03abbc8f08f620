"""Alert state and delivery: check results -> alert transitions -> outbox rows -> destinations.

Exactly-once, as far as a network allows:
- an alert's state change and its outbox rows are written in ONE transaction (`record`): a process that dies
  before the commit leaves neither, one that dies after leaves both, and the outbox delivers them;
- the outbox key (destination, idempotency_key) is unique, and the key is derived from the alerts and their
  status: the same state never queues a second notification, whichever tick or process sees it;
- `deliver_due` sends, then records the 2xx. A process dying in between re-sends on a later tick with the
  same Idempotency-Key header, so the receiver can drop the copy; a failed send is retried with doubling
  backoff (retry_backoff_seconds x 2^(n-1)) up to max_attempts.

Flapping: a firing alert resolves only after ``resolve_after_windows`` consecutive good windows of its group;
a breach in between resets the count. Related alerts that change state in the same window are grouped into
one notification per destination (rule names listed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import notifiers, payload
from obs_pipelines.alerts.evaluate import RuleResult, group_key
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_outbox, alerts, alerts_metadata
from obs_pipelines.store import db


@dataclass
class Observation(RuleResult):
    """One rule's result for one group in one window as the asset check recorded it, with what the alert
    needs besides: the metric's name, attribution, exemplar traces and the partition's UI link."""

    metric: str = ""
    attribution: list[dict] = field(default_factory=list)
    exemplar_trace_ids: list[str] = field(default_factory=list)
    link: str | None = None


@dataclass
class Transition:
    alert: dict[str, Any]
    window_start: datetime  # the window that caused it (grouping key)
    destinations: list[str]


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)  # idempotency keys
    failed: dict[str, str] = field(default_factory=dict)  # key -> error
    given_up: list[str] = field(default_factory=list)


def ensure_tables(engine: Engine) -> None:
    db.create_tables(engine, alerts_metadata)


def _naive(value: Any) -> datetime:
    return db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def record(engine: Engine, rules: dict[str, Any], observations: Iterable[Observation], settings: AlertSettings,
           now: datetime | None = None) -> list[Transition]:
    """Apply the observations (in window order) to the alerts' state; queue one notification per window,
    status and destination for what fired or resolved. One transaction."""
    now = now or db.utcnow()
    ensure_tables(engine)
    observations = sorted((o for o in observations if o.rule in rules and o.judged), key=lambda o: o.window_start)
    transitions: list[Transition] = []
    with engine.begin() as conn:
        opened = {
            (r.rule, r.group_key): dict(r._mapping)
            for r in conn.execute(sa.select(alerts).where(alerts.c.status == "firing"))
        }
        # alerts that fired (and maybe resolved) in these windows before: one query, not one per breach
        known = set(conn.execute(sa.select(alerts.c.id).where(
            alerts.c.window_start >= _naive(observations[0].window_start),
            alerts.c.window_start <= _naive(observations[-1].window_start))).scalars()) if observations else set()
        for obs in observations:
            rule = rules[obs.rule]
            key = (obs.rule, group_key(obs.group))
            start = _naive(obs.window_start)
            current = opened.get(key)
            if current is not None and start <= _naive(current["last_window_start"]):
                continue  # a re-run of a window already judged for this alert
            if not obs.passed:
                if current is not None:  # still breached: stays firing, the good-window count restarts
                    conn.execute(sa.update(alerts).where(alerts.c.id == current["id"]).values(
                        last_window_start=start, good_windows=0, updated_at=now))
                    current.update(last_window_start=start, good_windows=0)
                    continue
                alert = payload.build_alert(
                    rule=rule, status="firing", metric=obs.metric, value=obs.value, threshold=obs.threshold,
                    window_start=start, window_end=_naive(obs.window_end), group=obs.group,
                    attribution=obs.attribution, exemplar_trace_ids=obs.exemplar_trace_ids, link=obs.link,
                    samples=obs.samples)
                if alert["id"] in known:
                    continue  # this window's alert fired (and resolved) before
                known.add(alert["id"])
                row = {"id": alert["id"], "rule": obs.rule, "group_key": key[1], "severity": rule.severity,
                       "status": "firing", "window_start": start, "window_end": _naive(obs.window_end),
                       "last_window_start": start, "good_windows": 0, "payload": json.dumps(alert, default=str),
                       "created_at": now, "updated_at": now}
                conn.execute(sa.insert(alerts), row)
                opened[key] = row
                transitions.append(Transition(alert, start, rule.destinations))
            elif current is not None:
                good = current["good_windows"] + 1
                if good < settings.resolve_after_windows:
                    conn.execute(sa.update(alerts).where(alerts.c.id == current["id"]).values(
                        last_window_start=start, good_windows=good, updated_at=now))
                    current.update(last_window_start=start, good_windows=good)
                    continue
                alert = json.loads(current["payload"])
                alert["status"] = "resolved"
                alert["resolved_window_start"] = start.isoformat()
                alert["summary"] = alert["summary"].replace("[FIRING]", "[RESOLVED]", 1) + (
                    f"; resolved after {good} good window(s), last value {payload._fmt(obs.value)}")
                conn.execute(sa.update(alerts).where(alerts.c.id == current["id"]).values(
                    status="resolved", last_window_start=start, good_windows=good,
                    payload=json.dumps(alert, default=str), updated_at=now))
                del opened[key]
                transitions.append(Transition(alert, start, rule.destinations))
        _queue(conn, transitions, settings, now)
    return transitions


def record_event(engine: Engine, alert: dict[str, Any], group_key_: str, destinations: list[str],
                 settings: AlertSettings, now: datetime | None = None) -> bool:
    """An alert that is not a rule's state (a failed pipeline run): stored once by its id with its outbox
    rows, in one transaction. False when that alert was recorded before."""
    now = now or db.utcnow()
    ensure_tables(engine)
    start = _naive(alert["window_start"])
    with engine.begin() as conn:
        if conn.execute(sa.select(alerts.c.id).where(alerts.c.id == alert["id"])).first():
            return False
        conn.execute(sa.insert(alerts), {
            "id": alert["id"], "rule": alert["rule"], "group_key": group_key_, "severity": alert["severity"],
            "status": alert["status"], "window_start": start, "window_end": _naive(alert["window_end"]),
            "last_window_start": start, "good_windows": 0, "payload": json.dumps(alert, default=str),
            "created_at": now, "updated_at": now})
        _queue(conn, [Transition(alert, start, destinations)], settings, now)
    return True


def _queue(conn: sa.Connection, transitions: list[Transition], settings: AlertSettings, now: datetime) -> None:
    """One outbox row per (window, status, destination) with the alerts bound for it."""
    batches: dict[tuple[datetime, str, str], list[dict]] = {}
    for t in transitions:
        for dest in t.destinations or sorted(settings.destinations):
            batches.setdefault((t.window_start, t.alert["status"], dest), []).append(t.alert)
    for (_, status, dest), batch in sorted(batches.items(), key=lambda kv: kv[0]):
        key = payload.idempotency_key(batch)
        exists = conn.execute(sa.select(alert_outbox.c.id).where(
            alert_outbox.c.destination == dest, alert_outbox.c.idempotency_key == key)).first()
        if exists:
            continue
        conn.execute(sa.insert(alert_outbox), {
            "destination": dest, "idempotency_key": key, "status": status,
            "alert_ids": json.dumps([a["id"] for a in batch]),
            "payload": json.dumps(payload.notification(batch), default=str), "attempts": 0,
            "next_attempt_at": now, "delivered_at": None, "last_error": None, "created_at": now})


Sender = Callable[..., None]


def deliver_due(engine: Engine, settings: AlertSettings, now: datetime | None = None,
                logger: logging.Logger | None = None, send: Sender = notifiers.deliver) -> DeliveryReport:
    """Send every queued notification that is due; record each outcome right after its send."""
    now = now or db.utcnow()
    ensure_tables(engine)
    report = DeliveryReport()
    with engine.connect() as conn:
        due = conn.execute(sa.select(alert_outbox).where(
            alert_outbox.c.delivered_at.is_(None), alert_outbox.c.next_attempt_at <= now,
            alert_outbox.c.attempts < settings.max_attempts).order_by(alert_outbox.c.id)).mappings().all()
    for row in due:
        destination = settings.destinations.get(row["destination"])
        attempts = row["attempts"] + 1
        try:
            if destination is None:
                raise notifiers.DeliveryError(f"destination {row['destination']!r} is no longer configured")
            send(destination, json.loads(row["payload"]), row["idempotency_key"], logger)
        except Exception as exc:  # noqa: BLE001 (any failure of a destination is retried, never lost)
            wait = timedelta(seconds=settings.retry_backoff_seconds * 2 ** (attempts - 1))
            with engine.begin() as conn:
                conn.execute(sa.update(alert_outbox).where(alert_outbox.c.id == row["id"]).values(
                    attempts=attempts, next_attempt_at=now + wait, last_error=str(exc)[:1000]))
            report.failed[row["idempotency_key"]] = str(exc)
            if attempts >= settings.max_attempts:
                report.given_up.append(row["idempotency_key"])
            continue
        with engine.begin() as conn:
            conn.execute(sa.update(alert_outbox).where(alert_outbox.c.id == row["id"]).values(
                attempts=attempts, delivered_at=now, last_error=None))
        report.delivered.append(row["idempotency_key"])
    return report


def pending(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(alert_outbox).where(
            alert_outbox.c.delivered_at.is_(None)).order_by(alert_outbox.c.id)).mappings()]


def recent_alerts(engine: Engine, limit: int = 50) -> list[dict]:
    ensure_tables(engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(alerts).order_by(alerts.c.updated_at.desc(), alerts.c.id).limit(limit)).mappings()]
