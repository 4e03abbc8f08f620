"""the online evals phase's clusters of failing inputs: failure_clusters_daily (online_evals/tables.py), with its
window index and a unique key on (window_start, cluster).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import grain_key_name

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "failure_clusters_daily"
COLUMNS = [
    ("window_start", sa.DateTime, False, "Start of the window (UTC, inclusive): the hour (the day for score_rollup_daily)."),
    ("window_end", sa.DateTime, False, "End of the window (UTC, exclusive)."),
    ("cluster", sa.BigInteger, False, "Rank of the cluster in the day: 0 holds the largest share of the failing requests."),
    ("label", sa.Text, True, "Its three most distinctive terms (over-represented in its failing inputs vs the day's traffic)."),
    ("top_terms", sa.Text, True, "JSON list of up to five distinctive terms."),
    ("failure_count", sa.BigInteger, True, "Failing requests in the cluster."),
    ("traffic_count", sa.BigInteger, True, "Requests of the day (failing or not) whose input falls in the cluster."),
    ("failure_share", sa.Float, True, "failure_count / the day's failing requests."),
    ("traffic_share", sa.Float, True, "traffic_count / the day's requests with an input."),
    ("lift", sa.Float, True, "failure_share / traffic_share: above 1, the cluster fails more often than the app does."),
    ("failure_rate", sa.Float, True, "failure_count / traffic_count."),
    ("top_route", sa.Text, True, "The route most of its failing requests came from."),
    ("top_route_share", sa.Float, True, "Share of its failing requests from that route."),
    ("top_scorers", sa.Text, True, "JSON object: the scorers (feedback:<name> for feedback) its requests failed, with counts."),
    ("exemplar_trace_ids", sa.Text, True, "JSON list: the failing requests closest to the cluster's centre."),
    ("exemplar_inputs", sa.Text, True, "JSON list: their inputs (first 200 characters, personal data masked)."),
    ("computed_at", sa.DateTime, True, "When this row was computed (UTC)."),
]


def upgrade() -> None:
    op.create_table(
        TABLE,
        *(sa.Column(c, t, nullable=nullable, comment=text) for c, t, nullable, text in COLUMNS),
        comment="Clusters of the day's failing requests by input text, each with its share of the failures and of "
                "the traffic: which kinds of question the app fails on.",
    )
    op.create_index(f"ix_{TABLE}_window_start", TABLE, ["window_start"])
    op.create_index(grain_key_name(TABLE), TABLE, ["window_start", "cluster"], unique=True)


def downgrade() -> None:
    op.drop_index(grain_key_name(TABLE), table_name=TABLE)
    op.drop_index(f"ix_{TABLE}_window_start", table_name=TABLE)
    op.drop_table(TABLE)
