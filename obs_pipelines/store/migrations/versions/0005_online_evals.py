"""the online evals phase's tables (eval_scores, score rollups).

Reserved in the lineage so the phases can be built side by side without two heads; the phase fills in
upgrade() / downgrade() when it ships its tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
