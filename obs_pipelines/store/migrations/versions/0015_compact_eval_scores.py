"""compact eval_scores (issue 23): reserved for the online evals' compact score layout; the layout itself follows
in the next commit of the same change (a no-op until then).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
