"""compact eval_scores (issue 23): reserved for the online evals' compact score layout; the layout itself follows
in the next commit of the same change (a no-op until then).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
