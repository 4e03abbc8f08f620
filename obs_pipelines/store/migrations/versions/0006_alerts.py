"""the alerts' tables (alerts, the delivery outbox): obs_pipelines/alerts/tables.py.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Text, primary_key=True, comment="Stable id: rule + window + group."),
        sa.Column("rule", sa.Text, nullable=False, comment="Rule name."),
        sa.Column("group_key", sa.Text, nullable=False, comment="The group as sorted JSON ({} overall)."),
        sa.Column("severity", sa.Text, nullable=False, comment="info, warning or critical."),
        sa.Column("status", sa.Text, nullable=False, comment="firing or resolved."),
        sa.Column("window_start", sa.DateTime, nullable=False, comment="First breached window (UTC)."),
        sa.Column("window_end", sa.DateTime, nullable=False, comment="Its end (UTC)."),
        sa.Column("last_window_start", sa.DateTime, nullable=False, comment="Newest window judged for this alert."),
        sa.Column("good_windows", sa.Integer, nullable=False,
                  comment="Consecutive good windows since the last breach."),
        sa.Column("payload", sa.Text, nullable=False, comment="The alert JSON (ARCHITECTURE.md, Alerts)."),
        sa.Column("created_at", sa.DateTime, nullable=False, comment="When the alert fired (UTC)."),
        sa.Column("updated_at", sa.DateTime, nullable=False, comment="Last change (UTC)."),
        comment="Alerts fired by the rules, with their current status.",
    )
    op.create_index("ix_alerts_rule_group_status", "alerts", ["rule", "group_key", "status"])
    op.create_table(
        "alert_outbox",
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
        sa.UniqueConstraint("destination", "idempotency_key", name="uq_alert_outbox_destination_key"),
        comment="Notifications to deliver, one per destination; retried with backoff until delivered.",
    )
    op.create_index("ix_alert_outbox_pending", "alert_outbox", ["delivered_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_outbox_pending", table_name="alert_outbox")
    op.drop_table("alert_outbox")
    op.drop_index("ix_alerts_rule_group_status", table_name="alerts")
    op.drop_table("alerts")
