"""Keys that hold text of any length; alert delivery's give-up state.

- PostgreSQL: every grain key indexes its dimensions by md5 (a btree entry holds at most ~2.7 kB: one 1,400
  character span name refused its whole hour on every retry); SQLite is unchanged (any length fits).
- alerts: the (rule, group_key, status) index becomes (rule, status) (a group's JSON is app text too).
- alert_outbox.gave_up_at: when delivery was given up after max_attempts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import hash_existing_grain_keys, unhash_grain_keys

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    hash_existing_grain_keys()
    op.drop_index("ix_alerts_rule_group_status", table_name="alerts")
    op.create_index("ix_alerts_rule_status", "alerts", ["rule", "status"])
    op.add_column("alert_outbox", sa.Column(
        "gave_up_at", sa.DateTime, nullable=True,
        comment="When delivery was given up after max_attempts (UTC); reported as a pipeline-health alert."))


def downgrade() -> None:
    with op.batch_alter_table("alert_outbox") as batch:
        batch.drop_column("gave_up_at")
    op.drop_index("ix_alerts_rule_status", table_name="alerts")
    op.create_index("ix_alerts_rule_group_status", "alerts", ["rule", "group_key", "status"])
    unhash_grain_keys()
