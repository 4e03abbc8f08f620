"""case_id column comments follow the offline evals' case identity (issue 19.3): input + context + expected
output, or the id an imported line gives. Comments only (PostgreSQL keeps them; SQLite has none): no data
changes (stored cases keep their ids; a case re-curated or re-imported gets its new id).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = {"regression_cases": True, "dataset_version_cases": False}  # table -> case_id nullable
NEW = ("Identity of the case: hash of the normalised input, context and expected output (or the id an imported "
       "line gives).")
OLD = "Hash of the normalised input: one case per distinct input in a dataset."


def _comment(text: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, nullable in TABLES.items():
        op.alter_column(table, "case_id", existing_type=sa.Text(), comment=text, existing_nullable=nullable)


def upgrade() -> None:
    _comment(NEW)


def downgrade() -> None:
    _comment(OLD)
