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
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from obs_pipelines.alerts import outbox
from obs_pipelines.alerts.evaluate import RuleResult, group_key
from obs_pipelines.alerts.outbox import DeliveryReport, Judgement, Observation, Transition
from obs_pipelines.alerts.rules import AlertSettings
from obs_pipelines.alerts.tables import alert_pending_results, alerts
from obs_pipelines.store import db

# queue rows (= rule-hours) taken per transaction, transactions per tick (a week of 50 rules is 8,400 rows);
# the rest waits for the next tick
CHUNK_ROWS = 20_000
MAX_CHUNKS = 10
# dates come back as text from SQLite: read raw and parsed once per distinct value (a chunk has few hours)
_RAW = {"window_start", "window_end", "queued_at"}
_COLUMNS = [sa.type_coerce(alert_pending_results.c[name], sa.String) if name in _RAW
            else alert_pending_results.c[name]
            for name in ("id", "rule", "window_start", "window_end", "metric", "breached", "good", "link",
                         "queued_at")]


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
        first.scalar_subquery())).returning(*_COLUMNS)).tuples().all()
    dates: dict[Any, datetime] = {}

    def date(value: Any) -> datetime:
        if value not in dates:
            dates[value] = db.to_naive_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))
        return dates[value]

    return sorted(((i, rule, date(start), date(end), metric, breached, good, link, date(queued))
                   for i, rule, start, end, metric, breached, good, link, queued in taken), key=lambda t: t[0])


def _judgements(conn: sa.Connection, taken: list[tuple]) -> list[Judgement]:
    """The taken rows' results that can change an alert, in queue order (each row's breaches, then its good
    groups, as the check listed them): every breach with its Observation, and the good hours of groups that
    have a firing alert or breach in these rows (a good hour of any other group changes nothing: dropped)."""
    decoded = []
    relevant = set(conn.execute(sa.select(alerts.c.rule, alerts.c.group_key).where(
        alerts.c.status == "firing")).tuples())
    for _, rule, start, end, metric, breached, good, link, _ in taken:
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


def apply_pending(engine: Engine, rules: dict[str, Any], settings: AlertSettings, now: datetime | None = None,
                  chunk_rows: int = CHUNK_ROWS, max_chunks: int = MAX_CHUNKS) -> Applied:
    """Take the queued results and apply them to the alerts (outbox.apply_judgements), a transaction per
    chunk of `chunk_rows` rows: taking, applying and queueing the notifications commit together."""
    now = now or db.utcnow()
    outbox.ensure_tables(engine)
    applied = Applied()
    for _ in range(max_chunks):
        with outbox.state_transaction(engine) as conn:
            taken = _take(conn, chunk_rows)
            if not taken:
                break
            applied.transitions += outbox.apply_judgements(conn, rules, _judgements(conn, taken), settings, now)
        applied.consumed += len(taken)
        newest = max(t[-1] for t in taken)
        applied.newest_queued_at = max(filter(None, [applied.newest_queued_at, newest]))
        if len(taken) < chunk_rows:
            break
    return applied


def process(engine: Engine, settings: AlertSettings, logger: logging.Logger | None = None
            ) -> tuple[Applied, DeliveryReport]:
    """What one alert sensor tick does with the store: apply the queued results, then deliver what is due
    (`alerts_sensor` and `obs-pipelines alerts evaluate`)."""
    applied = apply_pending(engine, {r.name: r for r in settings.parsed_rules()}, settings)
    return applied, outbox.deliver_due(engine, settings, logger=logger)
