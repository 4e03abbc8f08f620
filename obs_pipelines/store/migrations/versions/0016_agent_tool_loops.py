"""agent_paths.tool_loops: per request, each tool it called and whether its loop repeats that tool (JSON object
tool -> 0 / 1), so the loop rule judges each route x tool: the share of the requests calling a tool whose loop
repeats it (issue 18). Rows written before it keep null (their requests count under no tool).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TABLE = "agent_paths"
COMMENT = ("JSON object: each tool the request called -> 1 when its loop repeats that tool (the repeated call's "
           "tool, the repeated cycle's tools; a repeated model output: every tool called), else 0.")


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("tool_loops", sa.Text(), nullable=True, comment=COMMENT))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("tool_loops")
