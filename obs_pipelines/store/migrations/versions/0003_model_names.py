"""model_names on the rollup tables by model: rows are keyed by the canonical model key, the exact names
behind it are listed here (monitoring/tables.py, issue 8.6).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("request_rollup_hourly", "request_rollup_daily", "error_rollup_hourly", "error_rollup_daily",
          "usage_rollup_hourly", "usage_rollup_daily")
COMMENT = (
    "Model rows (dimension 'model', whose dimension_value is the canonical model key: date / version "
    "suffixes and provider prefixes stripped, e.g. 'gpt-4o' for gpt-4o and gpt-4o-2024-08-06; error "
    "rollup: error_class and provider null, span_count = spans of that key): the exact model names seen "
    "in the row, sorted, comma-separated. Null on other rows."
)


# plain ALTER TABLE ADD / DROP COLUMN (SQLite >= 3.35 has both): a batch operation would copy the table on
# SQLite and lose the expression-based grain keys of 0002, which it cannot reflect


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("model_names", sa.Text, nullable=True, comment=COMMENT))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "model_names")
