"""Tables of the alerts (their own MetaData; migrations 0006, 0008 and 0009).

``alerts``: one row per alert (id stable for rule + first breached window + group), its current status and
payload; a firing alert also counts the good windows seen since (flapping: it resolves after N of them).
``alert_outbox``: one row per notification and destination; written in the same transaction as the alert's
state change, deleted never, marked delivered after a 2xx (or given up after max_attempts). Its unique key (destination, idempotency_key) is
what makes "never twice for the same alert state" hold across ticks and processes.
``alert_pending_results``: a queue of the rules' results, one row per rule and hour judged with its groups'
results, written by the rule checks and consumed once by the alert sensor: it deletes the rows it reads in the
transaction that applies them to ``alerts`` and queues their notifications (alerts/results.py).
"""

from __future__ import annotations

import sqlalchemy as sa

alerts_metadata = sa.MetaData()

alerts = sa.Table(
    "alerts",
    alerts_metadata,
    sa.Column("id", sa.Text, primary_key=True, comment="Stable id: rule + window + group."),
    sa.Column("rule", sa.Text, nullable=False, comment="Rule name."),
    sa.Column("group_key", sa.Text, nullable=False, comment="The group as sorted JSON ({} overall)."),
    sa.Column("severity", sa.Text, nullable=False, comment="info, warning or critical."),
    sa.Column("status", sa.Text, nullable=False, comment="firing or resolved."),
    sa.Column("window_start", sa.DateTime, nullable=False, comment="First breached window (UTC)."),
    sa.Column("window_end", sa.DateTime, nullable=False, comment="Its end (UTC)."),
    sa.Column("last_window_start", sa.DateTime, nullable=False, comment="Newest window judged for this alert."),
    sa.Column("good_windows", sa.Integer, nullable=False, comment="Consecutive good windows since the last breach."),
    sa.Column("payload", sa.Text, nullable=False, comment="The alert JSON (ARCHITECTURE.md, Alerts)."),
    sa.Column("created_at", sa.DateTime, nullable=False, comment="When the alert fired (UTC)."),
    sa.Column("updated_at", sa.DateTime, nullable=False, comment="Last change (UTC)."),
    # not on group_key: a group's JSON holds app text of any length (a 100 KB route), past a btree entry's limit
    sa.Index("ix_alerts_rule_status", "rule", "status"),
    comment="Alerts fired by the rules, with their current status.",
)

alert_outbox = sa.Table(
    "alert_outbox",
    alerts_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("destination", sa.Text, nullable=False, comment="Name of the destination (settings)."),
    sa.Column("idempotency_key", sa.Text, nullable=False,
              comment="Sent as Idempotency-Key: the same on every attempt of this notification."),
    sa.Column("status", sa.Text, nullable=False, comment="firing or resolved."),
    sa.Column("alert_ids", sa.Text, nullable=False, comment="JSON list of the alerts in this notification."),
    sa.Column("payload", sa.Text, nullable=False, comment="JSON body: one alert, or a group of one window."),
    sa.Column("attempts", sa.Integer, nullable=False, comment="Delivery attempts so far."),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False, comment="Not retried before this time (UTC)."),
    sa.Column("delivered_at", sa.DateTime, nullable=True, comment="When a 2xx was recorded (UTC)."),
    sa.Column("last_error", sa.Text, nullable=True, comment="Why the last attempt failed."),
    sa.Column("created_at", sa.DateTime, nullable=False, comment="When the notification was queued (UTC)."),
    sa.Column("gave_up_at", sa.DateTime, nullable=True,
              comment="When delivery was given up after max_attempts (UTC); reported as a pipeline-health alert."),
    sa.UniqueConstraint("destination", "idempotency_key", name="uq_alert_outbox_destination_key"),
    sa.Index("ix_alert_outbox_pending", "delivered_at", "next_attempt_at"),
    comment="Notifications to deliver, one per destination; retried with backoff until delivered.",
)

alert_pending_results = sa.Table(
    "alert_pending_results",
    alerts_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True, comment="Queue order."),
    sa.Column("rule", sa.Text, nullable=False, comment="Rule name (= the check's name)."),
    sa.Column("window_start", sa.DateTime, nullable=False, comment="The hour judged (UTC)."),
    sa.Column("window_end", sa.DateTime, nullable=False, comment="Its end (UTC)."),
    sa.Column("metric", sa.Text, nullable=False, comment="The metric's name as the alerts show it."),
    sa.Column("breached", sa.Text, nullable=False,
              comment="JSON list of the breached groups: group, value, threshold, samples, attribution, "
                      "exemplar_trace_ids."),
    sa.Column("good", sa.Text, nullable=False,
              comment="JSON object of the other judged groups: group key (sorted JSON) -> value."),
    sa.Column("link", sa.Text, nullable=True, comment="The partition in the UI."),
    sa.Column("run_id", sa.Text, nullable=True, comment="The Dagster run that evaluated the rule."),
    sa.Column("queued_at", sa.DateTime, nullable=False, comment="When the check queued the row (UTC)."),
    comment="Rule results not yet applied to the alerts, one row per rule and hour judged; deleted by the "
            "transaction that applies them.",
)
