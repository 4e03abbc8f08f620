"""Alert state and delivery: check results -> alert transitions -> outbox rows -> destinations.

Exactly-once, as far as a network allows:
- an alert's state change and its outbox rows are written in ONE transaction (`record`): a process that dies
  before the commit leaves neither, one that dies after leaves both, and the outbox delivers them;
- the outbox key (destination, idempotency_key) is unique, and the key is derived from the alerts and their
  status: the same state never queues a second notification, whichever tick or process sees it;
- `deliver_due` sends, then records the 2xx. A process dying in between re-sends on a later tick with the
  same Idempotency-Key header, so the receiver can drop the copy; a failed send is retried with doubling
  backoff (retry_backoff_seconds x 2^(n-1)) up to max_attempts, then given up (logged, `gave_up_at`, and a
  pipeline-health alert to the other destinations).
- one deliverer at a time (`delivery_lock`), older notifications of the same alerts first (per destination),
  and a deadline per tick (TICK_DELIVERY_DEADLINE_S) whatever a webhook does.

State changes run one at a time (`state_transaction`: SQLite's write lock, a PostgreSQL advisory lock), so
the sensor, `alerts evaluate` and the other sensors each read what the previous one committed.

Flapping: a firing alert resolves only after ``resolve_after_windows`` consecutive good windows of its group;
a breach in between resets the count. A window judged again (a re-run) changes nothing when an alert of its
rule and group judged it already: an open alert up to its newest window, a resolved one from its first breach
to the window it resolved in. Related alerts that change state in the same window are grouped into
one notification per destination (rule names listed).
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import notifiers, payload
from obs_pipelines.alerts.evaluate import RuleResult, group_key
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_outbox, alerts, alerts_metadata
from obs_pipelines.store import db, locks


@dataclass
class Observation(RuleResult):
    """One rule's result for one group in one window as the asset check recorded it, with what the alert
    needs besides: the metric's name, attribution, exemplar traces and the partition's UI link."""

    metric: str = ""
    attribution: list[dict] = field(default_factory=list)
    exemplar_trace_ids: list[str] = field(default_factory=list)
    link: str | None = None
    group_key_: str | None = None  # the group's key when known (the results queue stores it)


@dataclass
class Transition:
    alert: dict[str, Any]
    window_start: datetime  # the window that caused it (grouping key)
    destinations: list[str]


@dataclass
class DeliveryReport:
    """What one delivery tick did; notifications named "<idempotency key>@<destination>"."""

    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # notification -> error of this tick's attempt
    given_up: list[str] = field(default_factory=list)  # failed for the last time (max_attempts)
    deferred: list[str] = field(default_factory=list)  # due, left for the next tick by the deadline
    busy: bool = False  # another deliverer held the lock: this one sent nothing


def ensure_tables(engine: Engine) -> None:
    db.create_tables(engine, alerts_metadata)


def _naive(value: Any) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value
    return db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


# the advisory lock class of the alerts' state ("obs2"; the schema lock is "obs1"), per schema
_ALERTS_LOCK_KEY = 0x6F627332
_LOCK_ALERTS = sa.text("SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))")


@contextmanager
def state_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A transaction that alone changes the alerts' state until it ends: the sensor, `alerts evaluate` and
    the other sensors apply results one after the other, each reading what the previous one committed
    (SQLite: the write lock from the first statement; PostgreSQL: a transaction-scoped advisory lock)."""
    with locks.begin(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK_ALERTS, {"key": _ALERTS_LOCK_KEY})
        yield conn


def record(engine: Engine, rules: dict[str, Any], observations: Iterable[Observation], settings: AlertSettings,
           now: datetime | None = None) -> list[Transition]:
    """Apply the observations (in window order) to the alerts' state; queue one notification per window,
    status and destination for what fired or resolved. One transaction."""
    now = now or db.utcnow()
    ensure_tables(engine)
    with state_transaction(engine) as conn:
        return apply(conn, rules, observations, settings, now)


class Judgement(NamedTuple):
    """One observation as `apply_judgements` reads it: a good one needs no more than this, a breach carries
    its Observation (what the alert shows)."""

    window_start: datetime  # naive UTC
    rule: str
    group_key: str
    passed: bool
    value: Any
    observation: Observation | None = None


def apply(conn: sa.Connection, rules: dict[str, Any], observations: Iterable[Observation], settings: AlertSettings,
          now: datetime) -> list[Transition]:
    """`record` on a connection inside a `state_transaction`."""
    return apply_judgements(conn, rules, [
        Judgement(_naive(o.window_start), o.rule, o.group_key_ or group_key(o.group), o.passed, o.value, o)
        for o in observations if o.judged], settings, now)


def apply_judgements(conn: sa.Connection, rules: dict[str, Any], judgements: Iterable[Judgement],
                     settings: AlertSettings, now: datetime) -> list[Transition]:
    """The state change of `record`, on a connection inside a `state_transaction` (the results queue takes
    its rows in the same one). Worked out in memory and written at the end: one insert of the new alerts, one
    batch of updates of the changed ones, the outbox rows."""
    judgements = sorted((j for j in judgements if j.rule in rules), key=itemgetter(0))  # stable: window order
    transitions: list[Transition] = []
    if not judgements:
        return transitions
    opened = {
        (r["rule"], r["group_key"]): dict(r)
        for r in conn.execute(sa.select(alerts).where(alerts.c.status == "firing")).mappings()
    }
    # the windows each alert judged (first breach .. newest window seen), of the alerts that judged any of
    # these windows: a window judged for an alert, open or resolved, is not judged again (one query)
    judged: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for r in conn.execute(sa.select(alerts.c.rule, alerts.c.group_key, alerts.c.window_start,
                                    alerts.c.last_window_start).where(
            alerts.c.window_start <= judgements[-1].window_start,
            alerts.c.last_window_start >= judgements[0].window_start)):
        judged.setdefault((r.rule, r.group_key), []).append((_naive(r.window_start), _naive(r.last_window_start)))
    inserted: dict[str, dict] = {}  # id -> row of an alert new in this batch (its final state)
    changed: dict[str, dict] = {}  # id -> row of a stored alert that changed
    last_start: dict[tuple[str, str], datetime] = {}  # newest window judged per open alert, naive
    for start, rule_name, group, passed, value, obs in judgements:
        key = (rule_name, group)
        current = opened.get(key)
        if current is not None:
            last = last_start.get(key)
            if last is None:
                last = last_start[key] = _naive(current["last_window_start"])
            if start <= last:
                continue  # a re-run of a window already judged for this alert
        if not passed:
            if current is not None:  # still breached: stays firing, the good-window count restarts
                current.update(last_window_start=start, good_windows=0, updated_at=now)
                last_start[key] = start
                if current["id"] not in inserted:
                    changed[current["id"]] = current
                continue
            if any(first <= start <= last for first, last in judged.get(key, ())):
                continue  # a window an alert of this group judged before (a re-run of its hours)
            rule = rules[rule_name]
            alert = payload.build_alert(
                rule=rule, status="firing", metric=obs.metric, value=obs.value, threshold=obs.threshold,
                window_start=start, window_end=_naive(obs.window_end), group=obs.group,
                attribution=obs.attribution, exemplar_trace_ids=obs.exemplar_trace_ids, link=obs.link,
                samples=obs.samples)
            row = {"id": alert["id"], "rule": rule_name, "group_key": group, "severity": rule.severity,
                   "status": "firing", "window_start": start, "window_end": _naive(obs.window_end),
                   "last_window_start": start, "good_windows": 0, "payload": json.dumps(alert, default=str),
                   "created_at": now, "updated_at": now}
            inserted[row["id"]] = row
            opened[key] = row
            last_start[key] = start
            transitions.append(Transition(alert, start, rule.destinations))
        elif current is not None:
            good = current["good_windows"] + 1
            current.update(last_window_start=start, good_windows=good, updated_at=now)
            last_start[key] = start
            if current["id"] not in inserted:
                changed[current["id"]] = current
            if good < settings.resolve_after_windows:
                continue
            alert = json.loads(current["payload"])
            alert["status"] = "resolved"
            alert["resolved_window_start"] = start.isoformat()
            alert["summary"] = alert["summary"].replace("[FIRING]", "[RESOLVED]", 1) + (
                f"; resolved after {good} good window(s), last value {payload.format_value(value)}")
            current.update(status="resolved", payload=json.dumps(alert, default=str))
            judged.setdefault(key, []).append((_naive(current["window_start"]), start))
            del opened[key]
            del last_start[key]
            transitions.append(Transition(alert, start, rules[rule_name].destinations))
    if inserted:
        conn.execute(sa.insert(alerts), list(inserted.values()))
    if changed:
        conn.execute(
            sa.update(alerts).where(alerts.c.id == sa.bindparam("_id")).values(
                status=sa.bindparam("_status"), last_window_start=sa.bindparam("_last"),
                good_windows=sa.bindparam("_good"), payload=sa.bindparam("_payload"),
                updated_at=sa.bindparam("_updated")),
            [{"_id": r["id"], "_status": r["status"], "_last": r["last_window_start"], "_good": r["good_windows"],
              "_payload": r["payload"], "_updated": r["updated_at"]} for r in changed.values()])
    _queue(conn, transitions, settings, now)
    return transitions


def record_event(engine: Engine, alert: dict[str, Any], group_key_: str, destinations: list[str],
                 settings: AlertSettings, now: datetime | None = None) -> bool:
    """An alert that is not a rule's state (a failed pipeline run): stored once by its id with its outbox
    rows, in one transaction. False when that alert was recorded before."""
    now = now or db.utcnow()
    ensure_tables(engine)
    start = _naive(alert["window_start"])
    with state_transaction(engine) as conn:
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
    """One outbox row per (window, status, destination) with the alerts bound for it (one query for the ones
    already queued, one insert of the others)."""
    batches: dict[tuple[datetime, str, str], list[dict]] = {}
    for t in transitions:
        for dest in t.destinations or sorted(settings.destinations):
            batches.setdefault((t.window_start, t.alert["status"], dest), []).append(t.alert)
    if not batches:
        return
    keyed = [(dest, payload.idempotency_key(batch), status, batch)
             for (_, status, dest), batch in sorted(batches.items(), key=lambda kv: kv[0])]
    existing: set[tuple[str, str]] = set()
    keys = sorted({k for _, k, _, _ in keyed})
    for i in range(0, len(keys), 500):
        existing.update(tuple(row) for row in conn.execute(sa.select(
            alert_outbox.c.destination, alert_outbox.c.idempotency_key).where(
            alert_outbox.c.idempotency_key.in_(keys[i:i + 500]))))
    rows = []
    for dest, key, status, batch in keyed:
        if (dest, key) in existing:
            continue
        existing.add((dest, key))
        rows.append({
            "destination": dest, "idempotency_key": key, "status": status,
            "alert_ids": json.dumps([a["id"] for a in batch]),
            "payload": json.dumps(payload.notification(batch), default=str), "attempts": 0,
            "next_attempt_at": now, "delivered_at": None, "last_error": None, "created_at": now})
    if rows:
        conn.execute(sa.insert(alert_outbox), rows)


Sender = Callable[..., None]

# One tick's delivery stops sending after this many seconds; what is left waits for the next tick. Dagster
# cancels a sensor evaluation after 60 s (its default sensor timeout): this leaves room for the tick's other work.
TICK_DELIVERY_DEADLINE_S = 40.0
HEALTH_RULE = "alert_delivery_failed"  # the pipeline-health alert raised when a notification is given up


def deliver_due(engine: Engine, settings: AlertSettings, now: datetime | None = None,
                logger: logging.Logger | None = None, send: Sender = notifiers.deliver,
                deadline_s: float = TICK_DELIVERY_DEADLINE_S) -> DeliveryReport:
    """Send every queued notification that is due, recording each outcome right after its send.

    - One deliverer at a time (`delivery_lock`): a second one (an overlapping tick, `alerts evaluate`) sends
      nothing and says so; the first sends every due row once.
    - Per destination, a notification waits while an older one sharing an alert is undelivered (not yet due,
      failed in this tick, or past the deadline): a RESOLVED never overtakes its FIRING.
    - A notification that fails its ``max_attempts``-th attempt is given up: an ERROR log line, the row's
      ``gave_up_at``, and a pipeline-health alert (``alert_delivery_failed``) queued to the other destinations.
    - Sending stops at ``deadline_s`` (each send's timeout is cut to what is left), the rest on the next tick.
    """
    now = now or db.utcnow()
    ensure_tables(engine)
    report = DeliveryReport()
    log_ = logger or notifiers.log
    with delivery_lock(engine) as held:
        if not held:
            report.busy = True
            log_.info("alert delivery: another deliverer is at work; its tick sends the due notifications")
            return report
        started = time.monotonic()
        last_id = _deliver_pass(engine, settings, now, log_, send, started + deadline_s, report, after_id=0)
        if report.given_up:  # the pipeline-health alerts those give-ups just queued go out in this tick too
            _deliver_pass(engine, settings, now, log_, send, started + deadline_s, report, after_id=last_id)
    return report


def _deliver_pass(engine: Engine, settings: AlertSettings, now: datetime, log_: logging.Logger, send: Sender,
                  deadline: float, report: DeliveryReport, after_id: int) -> int:
    """One pass over the undelivered rows after ``after_id`` in queue order; the last id seen."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(alert_outbox).where(
            alert_outbox.c.delivered_at.is_(None), alert_outbox.c.gave_up_at.is_(None),
            alert_outbox.c.id > after_id).order_by(alert_outbox.c.id)).mappings().all()
    waiting: dict[str, set[str]] = {}  # destination -> alert ids of older notifications not delivered yet
    for row in rows:
        ids = set(json.loads(row["alert_ids"]))
        held_back = waiting.setdefault(row["destination"], set())
        remaining = deadline - time.monotonic()
        if row["next_attempt_at"] > now or ids & held_back or remaining <= 0:
            held_back |= ids
            if remaining <= 0 and row["next_attempt_at"] <= now:
                report.deferred.append(_label(row))
            continue
        if _attempt(engine, settings, now, log_, send, row, remaining, report):
            continue
        held_back |= ids
    return rows[-1]["id"] if rows else after_id


def _attempt(engine: Engine, settings: AlertSettings, now: datetime, log_: logging.Logger, send: Sender,
             row: Any, remaining: float, report: DeliveryReport) -> bool:
    """One send of one outbox row and its outcome recorded; True when delivered."""
    label = _label(row)
    destination = settings.destinations.get(row["destination"])
    attempts = row["attempts"] + 1
    try:
        if destination is None:
            raise notifiers.DeliveryError(f"destination {row['destination']!r} is no longer configured")
        notifiers.within(remaining, send, destination, json.loads(row["payload"]), row["idempotency_key"], log_,
                         timeout=min(destination.timeout_seconds, remaining))
    except Exception as exc:  # noqa: BLE001 (any failure of a destination is retried, never lost)
        error = str(exc)[:1000]
        report.failed[label] = error
        values: dict[str, Any] = {"attempts": attempts, "last_error": error,
                                  "next_attempt_at": now + timedelta(
                                      seconds=settings.retry_backoff_seconds * 2 ** (attempts - 1))}
        if attempts >= settings.max_attempts:
            values["gave_up_at"] = now
            report.given_up.append(label)
        with engine.begin() as conn:
            conn.execute(sa.update(alert_outbox).where(alert_outbox.c.id == row["id"]).values(**values))
        if "gave_up_at" in values:
            _report_give_up(engine, settings, now, log_, row, attempts, error)
        return False
    with engine.begin() as conn:
        conn.execute(sa.update(alert_outbox).where(alert_outbox.c.id == row["id"]).values(
            attempts=attempts, delivered_at=now, last_error=None))
    report.delivered.append(label)
    return True


def _label(row: Any) -> str:
    """How a report names one notification to one destination (its key first: logs show key[:8])."""
    return f"{row['idempotency_key']}@{row['destination']}"


def _report_give_up(engine: Engine, settings: AlertSettings, now: datetime, log_: logging.Logger, row: Any,
                    attempts: int, error: str) -> None:
    """A give-up is never silent: an ERROR line, and a pipeline-health alert to the other destinations (none
    for the give-up of such an alert itself, so two broken destinations cannot alert each other forever)."""
    log_.error(f"alert delivery GAVE UP: notification {row['idempotency_key'][:8]} ({row['status']}, alerts "
               f"{row['alert_ids']}) to {row['destination']!r} after {attempts} attempts; last error: {error}")
    alert_ids = json.loads(row["alert_ids"])
    others = sorted(d for d in settings.destinations if d != row["destination"])
    if not others or all(str(a).startswith(f"{HEALTH_RULE}-") for a in alert_ids):
        return
    start = now.replace(minute=0, second=0, microsecond=0)
    alert = {"id": f"{HEALTH_RULE}-{row['id']}", "rule": HEALTH_RULE, "severity": "critical", "status": "firing",
             "metric": "delivery_attempts", "value": attempts, "threshold": settings.max_attempts,
             "window_start": start.isoformat(), "window_end": (start + timedelta(hours=1)).isoformat(),
             "group": {"destination": row["destination"]}, "attribution": [], "exemplar_trace_ids": [],
             "summary": f"[FIRING] {HEALTH_RULE}: a {row['status']} notification to {row['destination']} was given "
                        f"up after {attempts} attempts ({error[:200]})",
             "link": None, "given_up_alert_ids": alert_ids}
    record_event(engine, alert, json.dumps(alert["group"], sort_keys=True), others, settings, now)


# the advisory lock class of alert delivery ("obs3"), per schema
_DELIVERY_LOCK_KEY = 0x6F627333
_TRY_LOCK_DELIVERY = sa.text("SELECT pg_try_advisory_lock(:key, hashtext(coalesce(current_schema(), '')))")
_UNLOCK_DELIVERY = sa.text("SELECT pg_advisory_unlock(:key, hashtext(coalesce(current_schema(), '')))")
_process_delivery_lock = threading.Lock()  # stores without a file (SQLite in memory): one process only


@contextmanager
def delivery_lock(engine: Engine) -> Iterator[bool]:
    """Whether this process may deliver now, held until the block ends; never waits. Released by the database
    (PostgreSQL session advisory lock) or the OS (flock of a file beside the SQLite store) when the process
    dies, so a killed deliverer never blocks delivery."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = bool(conn.execute(_TRY_LOCK_DELIVERY, {"key": _DELIVERY_LOCK_KEY}).scalar())
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(_UNLOCK_DELIVERY, {"key": _DELIVERY_LOCK_KEY})
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        held = _process_delivery_lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                _process_delivery_lock.release()
        return
    with open(f"{database}.alert-delivery.lock", "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def pending(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(alert_outbox).where(
            alert_outbox.c.delivered_at.is_(None)).order_by(alert_outbox.c.id)).mappings()]


def recent_alerts(engine: Engine, limit: int = 50) -> list[dict]:
    ensure_tables(engine)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(alerts).order_by(alerts.c.updated_at.desc(), alerts.c.id).limit(limit)).mappings()]
