"""the offline evals phase's tables (regression cases, dataset versions, experiments).

Reserved in the lineage so the phases can be built side by side without two heads; the phase fills in
upgrade() / downgrade() when it ships its tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
