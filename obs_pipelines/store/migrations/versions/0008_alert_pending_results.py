"""the alerts' queue of rule results (alert_pending_results): obs_pipelines/alerts/tables.py.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_pending_results",
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


def downgrade() -> None:
    op.drop_table("alert_pending_results")
