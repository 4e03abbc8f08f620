"""The rules' results between the checks and the alerts: a queue in the store, consumed once.

The rule checks (alerts/defs.py) evaluate each rule hour by hour; besides the check evaluation the UI shows
(the summary and the breached groups), they queue one row per rule and hour in ``alert_pending_results`` with
every judged group's result (the breached ones with what an alert carries, the good ones with their value).
The alert sensor (and `obs-pipelines alerts evaluate`) takes the rows in queue order and applies them to the
alerts' state in ONE transaction that also deletes them and queues the notifications
(outbox.apply_judgements): a row is applied once, whichever process or tick gets to it first; a process dying
before the commit leaves the rows queued for the next tick, one dying after leaves them applied and their
notifications queued. The transaction holds the alerts' state lock (outbox.state_transaction), so two
consumers never apply rows side by side; rows queued while a tick runs wait for the next one.

A result queued twice (a re-run of an hour, a phase's job and the rules job both checking it) changes nothing
when an alert of its rule and group judged that hour already (outbox.apply_judgements).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import outbox, payload
from obs_pipelines.alerts.evaluate import HOUR, RuleResult, group_key
from obs_pipelines.alerts.outbox import (
    DeliveryReport,
    Judgement,
    Observation,
    Transition,
)
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_pending_results, alerts
from obs_pipelines.store import db

REALTIME_RUN_PREFIX = "realtime:"  # run_id of the fast path's rows (realtime.py)
# the `delivery` of an alert recorded on history only (older than deliver_max_age_hours): never notified
NOT_DELIVERED = "not delivered: history (alerts evaluate --deliver-history sends it)"
# queue rows (= rule-hours) taken per transaction, transactions per tick (a week of 50 rules is 8,400 rows);
# the rest waits for the next tick
CHUNK_ROWS = 20_000
MAX_CHUNKS = 10
# dates come back as text from SQLite: read raw and parsed once per distinct value (a chunk has few hours)
_RAW = {"window_start", "window_end", "queued_at"}
_COLUMNS = [sa.type_coerce(alert_pending_results.c[name], sa.String) if name in _RAW
            else alert_pending_results.c[name]
            for name in ("id", "rule", "window_start", "window_end", "metric", "breached", "good", "link",
                         "run_id", "queued_at")]


def _clean(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def row(rule: str, metric: str, window_start: datetime, window_end: datetime, results: Iterable[RuleResult],
        link: str | None, found: dict[int, tuple[list, list]] | None = None, run_id: str | None = None,
        now: datetime | None = None) -> dict:
    """The queue row of one rule's hour: its judged groups, the breached ones with their figures plus the
    attribution and exemplar traces in `found` (by id() of the result), the good ones with their value."""
    found = found or {}
    breached, good = [], {}
    for r in results:
        if not r.judged:
            continue  # neither fires nor counts as a good window
        group = json.loads(json.dumps(r.group, default=str))  # as the alert's JSON carries it
        if r.passed:
            good[group_key(group)] = _clean(r.value)
            continue
        attribution, exemplars = found.get(id(r), ([], []))
        breached.append({"group": group, "value": _clean(r.value), "threshold": _clean(r.threshold),
                         "samples": _clean(r.samples), "attribution": attribution,
                         "exemplar_trace_ids": exemplars})
    return {"rule": rule, "window_start": db.to_naive_utc(window_start), "window_end": db.to_naive_utc(window_end),
            "metric": metric, "breached": json.dumps(breached, default=str), "good": json.dumps(good),
            "link": link, "run_id": run_id, "queued_at": now or db.utcnow()}


def queue(engine: Engine, queued: Iterable[dict]) -> int:
    """Queue rows made by `row` (one transaction, one multi-row insert)."""
    batch = list(queued)
    if batch:
        outbox.ensure_tables(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(alert_pending_results), batch)
    return len(batch)


def pending_count(engine: Engine) -> int:
    outbox.ensure_tables(engine)
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(alert_pending_results)).scalar_one()


def _take(conn: sa.Connection, limit: int) -> list[tuple]:
    """The first `limit` rows of the queue, deleted (DELETE ... RETURNING: exactly the rows read go), in
    queue order, with their dates as datetimes."""
    first = sa.select(alert_pending_results.c.id).order_by(alert_pending_results.c.id).limit(limit)
    taken = conn.execute(sa.delete(alert_pending_results).where(alert_pending_results.c.id.in_(
        first.scalar_subquery())).returning(*_COLUMNS)).all()
    dates: dict[Any, datetime] = {}

    def date(value: Any) -> datetime:
        if value not in dates:
            dates[value] = db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))
        return dates[value]

    return sorted(((i, rule, date(start), date(end), metric, breached, good, link, run_id, date(queued))
                   for i, rule, start, end, metric, breached, good, link, run_id, queued in taken),
                  key=lambda t: t[0])


def _judgements(conn: sa.Connection, taken: list[tuple]) -> list[Judgement]:
    """The taken rows' results that can change an alert, in queue order (each row's breaches, then its good
    groups, as the check listed them): every breach with its Observation, and the good hours of groups that
    have a firing alert or breach in these rows (a good hour of any other group changes nothing: dropped)."""
    decoded = []
    relevant = {tuple(row) for row in conn.execute(sa.select(alerts.c.rule, alerts.c.group_key).where(
        alerts.c.status == "firing"))}
    for _, rule, start, end, metric, breached, good, link, _, _ in taken:
        breached = [(group_key(b["group"]), b) for b in json.loads(breached)]
        relevant.update((rule, key) for key, _ in breached)
        decoded.append((rule, start, end, metric, breached, json.loads(good), link))
    out: list[Judgement] = []
    for rule, start, end, metric, breached, good, link in decoded:
        for key, b in breached:
            out.append(Judgement(start, rule, key, False, b["value"], Observation(
                rule=rule, window_start=start, window_end=end, group=b["group"], value=b["value"],
                threshold=b["threshold"], samples=b["samples"], judged=True, passed=False, metric=metric,
                attribution=b["attribution"], exemplar_trace_ids=b["exemplar_trace_ids"], link=link,
                group_key_=key)))
        out += [Judgement(start, rule, key, True, value) for key, value in good.items() if (rule, key) in relevant]
    return out  # apply_judgements sorts them by window (stable)


@dataclass
class Applied:
    transitions: list[Transition] = field(default_factory=list)
    consumed: int = 0  # queue rows (rule-hours) taken and deleted
    newest_queued_at: datetime | None = None


def _realtime_rows(taken: list[tuple]) -> dict[tuple[str, str, datetime], dict]:
    """(rule, group key, hour) -> the breach the fast path (realtime.py) queued, with its window."""
    out = {}
    for _, rule, start, _, metric, breached, _, _, run_id, _ in taken:
        if run_id and run_id.startswith(REALTIME_RUN_PREFIX):
            for b in json.loads(breached):
                out[(rule, group_key(b["group"]), start)] = {**b, "metric": metric}
    return out


def _hourly_breaches(judgements: list[Judgement], realtime: dict) -> dict[tuple[str, str, datetime], Judgement]:
    return {(j.rule, j.group_key, j.window_start): j for j in judgements
            if not j.passed and (j.rule, j.group_key, j.window_start) not in realtime}


def _muted(rules: dict[str, Any], settings: AlertSettings) -> tuple[dict[str, Any], AlertSettings]:
    """The rules and settings with no destination: their transitions are recorded, nothing is queued."""
    return ({name: r.model_copy(update={"destinations": []}) for name, r in rules.items()},
            settings.model_copy(update={"destinations": {}}))


def _payloads(conn: sa.Connection, where) -> dict[str, dict]:
    return {r.id: json.loads(r.payload) for r in conn.execute(sa.select(alerts.c.id, alerts.c.payload).where(where))}


def _write_payloads(conn: sa.Connection, updated: dict[str, dict]) -> None:
    if updated:
        conn.execute(sa.update(alerts).where(alerts.c.id == sa.bindparam("_id")).values(
            payload=sa.bindparam("_payload")),
            [{"_id": i, "_payload": json.dumps(p, default=str)} for i, p in updated.items()])


def _apply(conn: sa.Connection, rules: dict[str, Any], judgements: list[Judgement], taken: list[tuple],
           settings: AlertSettings, now: datetime, deliver_max_age_hours: float | None) -> list[Transition]:
    """apply_judgements, plus: judgements of windows older than ``deliver_max_age_hours`` recorded without
    notifications ("not paging on history"), the fast path's alerts marked, and an open alert the fast path
    fired updated with the hourly check's figures of its hour (no second notification)."""
    realtime = _realtime_rows(taken)
    cutoff = now - timedelta(hours=deliver_max_age_hours) if deliver_max_age_hours else None
    old = [j for j in judgements if cutoff is not None and j.window_start + HOUR <= cutoff]
    recent = [j for j in judgements if cutoff is None or j.window_start + HOUR > cutoff]
    muted_rules, muted_settings = _muted(rules, settings)
    silent = outbox.apply_judgements(conn, muted_rules, old, muted_settings, now)
    # alerts opened silently on history: a live breach of their group ends them quietly and opens a new alert
    # (paged); their other live judgements stay silent (a recovery of an incident nobody was told about)
    history_open = {(r.rule, r.group_key): r.id for r in conn.execute(
        sa.select(alerts.c.id, alerts.c.rule, alerts.c.group_key).where(
            alerts.c.status == "firing", alerts.c.payload.like(f'%"{NOT_DELIVERED}"%')))}
    history_open.update({(t.alert["rule"], group_key(t.alert["group"])): t.alert["id"] for t in silent
                         if t.alert["status"] == "firing"})
    live_breaches = {(j.rule, j.group_key) for j in recent if not j.passed}
    superseded = {key: i for key, i in history_open.items() if key in live_breaches}
    if superseded:
        conn.execute(sa.update(alerts).where(alerts.c.id.in_(list(superseded.values()))).values(
            status="resolved", updated_at=now))
    quiet = [j for j in recent if (j.rule, j.group_key) in history_open and (j.rule, j.group_key) not in superseded]
    silent += outbox.apply_judgements(conn, muted_rules, quiet, muted_settings, now)
    loud = outbox.apply_judgements(conn, rules, [j for j in recent if (j.rule, j.group_key) not in history_open
                                          or (j.rule, j.group_key) in superseded], settings, now)
    updated: dict[str, dict] = {}
    if silent or superseded:
        stored = _payloads(conn, alerts.c.id.in_([t.alert["id"] for t in silent] + list(superseded.values())))
        for alert_id, alert in stored.items():
            alert["delivery"] = NOT_DELIVERED
            if alert_id in superseded.values() and alert.get("status") == "firing":
                alert["status"] = "resolved"
                alert["resolved_note"] = "history only; the live breach of this group is a new alert"
            updated[alert_id] = alert
    fast = [t for t in loud if t.alert["status"] == "firing"
            and (t.alert["rule"], group_key(t.alert["group"]), t.window_start) in realtime]
    if fast:
        for alert_id, alert in _payloads(conn, alerts.c.id.in_([t.alert["id"] for t in fast])).items():
            b = realtime[(alert["rule"], group_key(alert["group"]), _naive_hour(alert["window_start"]))]
            alert["detected_by"] = {"path": "realtime", "metric": b["metric"]}
            updated[alert_id] = alert
    updated.update(_confirmations(conn, rules, _hourly_breaches(judgements, realtime), updated))
    _write_payloads(conn, updated)
    return silent + loud


def _naive_hour(value: Any) -> datetime:
    return db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def _confirmations(conn: sa.Connection, rules: dict[str, Any], hourly: dict, updated: dict[str, dict]
                   ) -> dict[str, dict]:
    """Open alerts fired by the fast path whose hour the hourly check has now judged breached: their figures
    become the hour's (value, threshold, samples, attribution, exemplars, summary), marked confirmed."""
    if not hourly:
        return {}
    out = {}
    rows = conn.execute(sa.select(alerts.c.id, alerts.c.rule, alerts.c.group_key, alerts.c.window_start,
                                  alerts.c.payload).where(
        alerts.c.status == "firing", alerts.c.payload.like('%"realtime"%'),
        alerts.c.rule.in_(sorted({k[0] for k in hourly}))))
    for r in rows:
        j = hourly.get((r.rule, r.group_key, _naive_hour(r.window_start)))
        if j is None or j.observation is None:
            continue
        alert = updated.get(r.id) or json.loads(r.payload)
        if alert.get("detected_by", {}).get("confirmed"):
            continue
        o = alert.get("detected_by", {})
        alert.update(metric=j.observation.metric, value=j.observation.value, threshold=j.observation.threshold,
                     samples=j.observation.samples, attribution=j.observation.attribution,
                     exemplar_trace_ids=j.observation.exemplar_trace_ids, link=j.observation.link)
        alert["detected_by"] = {**o, "confirmed": "hourly check"}
        alert["summary"] = payload.summary_line(
            r.rule, alert["status"], alert["metric"], alert["value"], alert["threshold"], alert["group"],
            _naive_hour(r.window_start), alert["attribution"]) + " (confirmed by the hourly check)"
        out[r.id] = alert
    return out


def apply_pending(engine: Engine, rules: dict[str, Any], settings: AlertSettings, now: datetime | None = None,
                  chunk_rows: int = CHUNK_ROWS, max_chunks: int = MAX_CHUNKS,
                  deliver_max_age_hours: float | None | bool = True) -> Applied:
    """Take the queued results and apply them to the alerts (outbox.apply_judgements), a transaction per
    chunk of `chunk_rows` rows: taking, applying and queueing the notifications commit together.
    ``deliver_max_age_hours``: True takes the setting; None delivers every window's changes."""
    now = now or db.utcnow()
    max_age = settings.deliver_max_age_hours if deliver_max_age_hours is True else deliver_max_age_hours
    outbox.ensure_tables(engine)
    applied = Applied()
    for _ in range(max_chunks):
        with outbox.state_transaction(engine) as conn:
            taken = _take(conn, chunk_rows)
            if not taken:
                break
            applied.transitions += _apply(conn, rules, _judgements(conn, taken), taken, settings, now, max_age)
        applied.consumed += len(taken)
        newest = max(t[-1] for t in taken)
        applied.newest_queued_at = max(filter(None, [applied.newest_queued_at, newest]))
        if len(taken) < chunk_rows:
            break
    return applied


def process(engine: Engine, settings: AlertSettings, logger: logging.Logger | None = None,
            deliver_history: bool = False) -> tuple[Applied, DeliveryReport]:
    """What one alert sensor tick does with the store: apply the queued results, then deliver what is due
    (`alerts_sensor`, the fast path's sensor and `obs-pipelines alerts evaluate`). ``deliver_history``: also
    notify about windows older than ``deliver_max_age_hours``."""
    applied = apply_pending(engine, {r.name: r for r in settings.parsed_rules()}, settings,
                            deliver_max_age_hours=None if deliver_history else True)
    return applied, outbox.deliver_due(engine, settings, logger=logger)
