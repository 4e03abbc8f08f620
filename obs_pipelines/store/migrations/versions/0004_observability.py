"""the observability phase's tables (traces, sessions, attribution, error causes, retrieval, agent paths).

Reserved in the lineage so the phases can be built side by side without two heads; the phase fills in
upgrade() / downgrade() when it ships its tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
