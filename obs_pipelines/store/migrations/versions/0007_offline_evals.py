"""the offline evals phase's tables: regression cases (per day), immutable dataset versions and their cases,
experiments and their per-case results (offline_evals/tables.py, issue 14).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from obs_pipelines.store.migrations.helpers import add_grain_key, drop_grain_key

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("experiment_results", "experiments", "dataset_version_cases", "dataset_versions", "regression_cases")


def upgrade() -> None:
    op.create_table(
        "dataset_version_cases",
        sa.Column("dataset", sa.Text(), nullable=False, comment='Dataset name.'),
        sa.Column("version", sa.Text(), nullable=False, comment='The version the case belongs to.'),
        sa.Column("position", sa.BigInteger(), nullable=True, comment='Order of the case in the version.'),
        sa.Column("case_id", sa.Text(), nullable=False, comment='Hash of the normalised input: one case per distinct input in a dataset.'),
        sa.Column("input", sa.Text(), nullable=True, comment="The request's input (PII replaced by typed placeholders such as <EMAIL>)."),
        sa.Column("output", sa.Text(), nullable=True, comment='The production output (scrubbed).'),
        sa.Column("expected", sa.Text(), nullable=True, comment='Expected output when known (a feedback correction), else null.'),
        sa.Column("context", sa.Text(), nullable=True, comment='Retrieved context documents of the trace, a JSON list of strings (scrubbed).'),
        sa.Column("tags", sa.Text(), nullable=True, comment='Why the case was selected, sorted and comma-separated: low_score, error, negative_feedback, alert_exemplar, agent_loop, empty_retrieval, or import tags.'),
        sa.Column("trace_id", sa.Text(), nullable=True, comment='The production trace the case comes from (null for imported cases).'),
        sa.Column("route", sa.Text(), nullable=True, comment='Route of the trace.'),
        sa.Column("metadata", sa.Text(), nullable=True, comment='JSON object: selection details (error type, score, feedback ...).'),
        sa.PrimaryKeyConstraint("dataset", "version", "case_id", name="dataset_version_cases_pk"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("dataset", sa.Text(), nullable=False, comment='Dataset name.'),
        sa.Column("version", sa.Text(), nullable=False, comment="Content hash of the version's cases (first 16 hex digits of a SHA-256)."),
        sa.Column("case_count", sa.BigInteger(), nullable=True, comment='Cases in the version.'),
        sa.Column("tag_counts", sa.Text(), nullable=True, comment='JSON object: cases per tag.'),
        sa.Column("source", sa.Text(), nullable=True, comment='production (curated by the asset) or import:<file name>.'),
        sa.Column("window_start", sa.DateTime(), nullable=True, comment='First day of the curated window (null for imports).'),
        sa.Column("window_end", sa.DateTime(), nullable=True, comment='End of the curated window (null for imports).'),
        sa.Column("created_at", sa.DateTime(), nullable=True, comment='When this content was first built (UTC).'),
        sa.Column("last_built_at", sa.DateTime(), nullable=True, comment='When this content was last built (UTC): the newest is the latest version.'),
        sa.PrimaryKeyConstraint("dataset", "version", name="dataset_versions_pk"),
    )
    op.create_table(
        "experiment_results",
        sa.Column("experiment_id", sa.Text(), nullable=False, comment='The experiment.'),
        sa.Column("case_id", sa.Text(), nullable=False, comment='The case.'),
        sa.Column("output", sa.Text(), nullable=True, comment='What the task returned (text, or JSON of a structured output).'),
        sa.Column("error", sa.Text(), nullable=True, comment="Exception type and message, or 'timeout after N s'; null on success."),
        sa.Column("latency_ms", sa.Float(), nullable=True, comment='Task latency in ms.'),
        sa.Column("cost_usd", sa.Float(), nullable=True, comment='Cost the task reported (a dict output with cost_usd), else null.'),
        sa.Column("scores", sa.Text(), nullable=True, comment='JSON object: scorer -> score in [0, 1] or null (does not apply).'),
        sa.Column("score_reasons", sa.Text(), nullable=True, comment='JSON object: scorer -> reason of a null score, when there is one.'),
        sa.PrimaryKeyConstraint("experiment_id", "case_id", name="experiment_results_pk"),
    )
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.Text(), nullable=False, comment='Unique id of the experiment.'),
        sa.Column("name", sa.Text(), nullable=True, comment='Optional name given to the run.'),
        sa.Column("dataset", sa.Text(), nullable=True, comment='Dataset name.'),
        sa.Column("dataset_version", sa.Text(), nullable=True, comment='The dataset version the task ran on.'),
        sa.Column("task", sa.Text(), nullable=True, comment='module:function of the task.'),
        sa.Column("scorers", sa.Text(), nullable=True, comment='JSON object: scorer name -> scorer version.'),
        sa.Column("git_commit", sa.Text(), nullable=True, comment='HEAD commit of the repository the run started in (null outside git).'),
        sa.Column("git_branch", sa.Text(), nullable=True, comment='Current branch (HEAD when detached).'),
        sa.Column("git_dirty", sa.Boolean(), nullable=True, comment='Uncommitted changes in the working tree.'),
        sa.Column("started_at", sa.DateTime(), nullable=True, comment='Start of the run (UTC).'),
        sa.Column("finished_at", sa.DateTime(), nullable=True, comment='End of the run (UTC).'),
        sa.Column("case_count", sa.BigInteger(), nullable=True, comment='Cases run.'),
        sa.Column("error_count", sa.BigInteger(), nullable=True, comment='Cases whose task raised or timed out.'),
        sa.Column("mean_scores", sa.Text(), nullable=True, comment='JSON object: scorer -> mean score over the cases (errors count as error_score).'),
        sa.Column("mean_latency_ms", sa.Float(), nullable=True, comment='Mean task latency in ms.'),
        sa.Column("total_cost_usd", sa.Float(), nullable=True, comment='Sum of the costs the task reported (null when none did).'),
        sa.Column("concurrency", sa.BigInteger(), nullable=True, comment='Task calls in flight.'),
        sa.Column("timeout_s", sa.Float(), nullable=True, comment='Per-call timeout in seconds.'),
        sa.PrimaryKeyConstraint("experiment_id", name="experiments_pk"),
    )
    op.create_table(
        "regression_cases",
        sa.Column("window_start", sa.DateTime(), nullable=True, comment='Start of the day the case was selected from (UTC, inclusive).'),
        sa.Column("window_end", sa.DateTime(), nullable=True, comment='End of that day (UTC, exclusive).'),
        sa.Column("dataset", sa.Text(), nullable=True, comment='Dataset name (settings: offline_evals.datasets).'),
        sa.Column("case_id", sa.Text(), nullable=True, comment='Hash of the normalised input: one case per distinct input in a dataset.'),
        sa.Column("input", sa.Text(), nullable=True, comment="The request's input (PII replaced by typed placeholders such as <EMAIL>)."),
        sa.Column("output", sa.Text(), nullable=True, comment='The production output (scrubbed).'),
        sa.Column("expected", sa.Text(), nullable=True, comment='Expected output when known (a feedback correction), else null.'),
        sa.Column("context", sa.Text(), nullable=True, comment='Retrieved context documents of the trace, a JSON list of strings (scrubbed).'),
        sa.Column("tags", sa.Text(), nullable=True, comment='Why the case was selected, sorted and comma-separated: low_score, error, negative_feedback, alert_exemplar, agent_loop, empty_retrieval, or import tags.'),
        sa.Column("trace_id", sa.Text(), nullable=True, comment='The production trace the case comes from (null for imported cases).'),
        sa.Column("route", sa.Text(), nullable=True, comment='Route of the trace.'),
        sa.Column("metadata", sa.Text(), nullable=True, comment='JSON object: selection details (error type, score, feedback ...).'),
        sa.Column("selected_at", sa.DateTime(), nullable=True, comment='Start time of the trace the case was taken from (UTC).'),
        sa.Column("computed_at", sa.DateTime(), nullable=True, comment='When the row was computed (UTC).'),
    )
    op.create_index("ix_regression_cases_dataset", "regression_cases", ["dataset", "window_start"])
    # regression_cases is replaced day by day: one row per (day, dataset, case)
    add_grain_key("regression_cases", ("dataset", "case_id"))


def downgrade() -> None:
    drop_grain_key("regression_cases")
    op.drop_index("ix_regression_cases_dataset", table_name="regression_cases")
    for table in TABLES:
        op.drop_table(table)
