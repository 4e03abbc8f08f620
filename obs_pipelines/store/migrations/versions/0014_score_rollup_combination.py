"""score_rollup_hourly / _daily: route, model and prompt_version columns. The rollups gain the route x model x
prompt version combination as a dimension (its value 'route | model | prompt_version'), and its three parts in
these columns, so an alert rule judges every eval score per scorer x route x prompt version x model (issue 18).
Existing rows keep null in them; the grain is unchanged (window_start, scorer, dimension, dimension_value).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLES = ("score_rollup_hourly", "score_rollup_daily")
COLUMNS = {
    "route": "The route of the row's responses (route and combination rows; null on the others).",
    "model": "The model of the row's responses (model and combination rows; null on the others).",
    "prompt_version": "The prompt version of the row's responses (prompt_version and combination rows; null on "
                      "the others).",
}
COMMENTS = {  # column -> (new, old)
    "dimension": ("overall, route, model, prompt_version, or route_model_prompt_version (the three at once).",
                  "overall, route, model or prompt_version."),
    "dimension_value": ("Value of the dimension ('(none)' when missing; route | model | prompt_version for the "
                        "combination); null on the overall row.",
                        "Value of the dimension ('(none)' when missing); null on the overall row."),
}


def _comments(which: int) -> None:
    if op.get_bind().dialect.name != "postgresql":  # SQLite keeps no comments
        return
    for table in TABLES:
        for column, texts in COMMENTS.items():
            op.alter_column(table, column, existing_type=sa.Text(), comment=texts[which],
                            existing_nullable=column != "dimension")


def upgrade() -> None:
    for table in TABLES:
        for column, comment in COLUMNS.items():
            op.add_column(table, sa.Column(column, sa.Text(), nullable=True, comment=comment))
    _comments(0)


def downgrade() -> None:
    _comments(1)
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE dimension = 'route_model_prompt_version'")
        with op.batch_alter_table(table) as batch:
            for column in COLUMNS:
                batch.drop_column(column)
