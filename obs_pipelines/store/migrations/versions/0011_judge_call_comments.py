"""judge_calls column comments follow the judge client (issue 19.2 / 20.4): the prompt as sent (PII scrubbed), the
raw answer with function-call arguments, the too_large status, the cost from the price table. Comments only
(PostgreSQL keeps them; SQLite has none): no data changes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLE = "judge_calls"
# column -> (type, new comment, previous comment)
COMMENTS = {
    "prompt": (sa.Text, ("The prompt as sent (system and user messages, PII scrubbed; cut with a marker past "
                         "max_stored_chars)."), "The prompt sent."),
    "raw_answer": (sa.Text, ("The judge's answer as received, with any function-call arguments (NUL escaped; cut "
                             "with a marker)."), "The judge's answer as received."),
    "status": (sa.Text, "ok, error or timeout (after the retries), or too_large (an answer over max_answer_bytes).",
               "ok, error or timeout (after the retries)."),
    "cost_usd": (sa.Float, ("Cost: judge prices set by hand, else the price table (null for a model it does not "
                            "know)."), "Cost from the judge prices in the settings (null when not set)."),
}


def _comment(which: int) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, (type_, *comments) in COMMENTS.items():
        op.alter_column(TABLE, column, existing_type=type_(), comment=comments[which], existing_nullable=True)


def upgrade() -> None:
    _comment(0)


def downgrade() -> None:
    _comment(1)
