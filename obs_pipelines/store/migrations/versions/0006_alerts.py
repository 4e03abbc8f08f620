"""the alerts' tables (alerts, the delivery outbox).

Reserved in the lineage so the phases can be built side by side without two heads; the phase fills in
upgrade() / downgrade() when it ships its tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
