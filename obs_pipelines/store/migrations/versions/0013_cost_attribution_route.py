"""cost_attribution_hourly.route: the hour's cost change over every route ('(all)', the rows stored so far) and
within each route (a route's own models, prompt versions and users), so a route's cost change is split among
its own values (issue 18). The grain becomes window_start + route + dimension + dimension_value.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import add_hashed_grain_key, drop_grain_key

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "cost_attribution_hourly"
ROUTE = ("The route whose calls the row covers (model, prompt_version and user_segment rows per route); "
         "'(all)' for the hour's calls over every route.")
COMMENTS = {  # column -> (new, old)
    "share_of_change": ("delta_cost_usd / the total delta of the row's calls (its route's, or all).",
                        "delta_cost_usd / the hour's total delta (all calls)."),
    "rank": ("Rank of the value within its route and dimension by delta_cost_usd (1 = added most).",
             "Rank of the value within its dimension by delta_cost_usd (1 = added most)."),
}
TABLE_COMMENT = ("Per hour and dimension value, over all routes and within each route: cost against the baseline, "
                 "split into volume and unit cost.",
                 "Per hour and dimension value: cost against the baseline, split into volume and unit cost.")
TYPES = {"share_of_change": sa.Float(), "rank": sa.BigInteger()}


def _comments(which: int) -> None:
    if op.get_bind().dialect.name != "postgresql":  # SQLite keeps no comments
        return
    for column, texts in COMMENTS.items():
        op.alter_column(TABLE, column, existing_type=TYPES[column], comment=texts[which], existing_nullable=True)
    op.create_table_comment(TABLE, TABLE_COMMENT[which])


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("route", sa.Text(), nullable=True, comment=ROUTE))
    op.execute(f"UPDATE {TABLE} SET route = '(all)'")
    drop_grain_key(TABLE)
    add_hashed_grain_key(TABLE, ("route", "dimension", "dimension_value"))
    _comments(0)


def downgrade() -> None:
    _comments(1)
    op.execute(f"DELETE FROM {TABLE} WHERE route <> '(all)'")
    drop_grain_key(TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("route")
    add_hashed_grain_key(TABLE, ("dimension", "dimension_value"))
