"""Unique keys on the grain of every derived table: concurrent replacements of a window cannot duplicate rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from obs_pipelines.store.migrations.helpers import add_grain_key, drop_grain_key

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# table -> its dimension columns (the grain is window_start + these); as the rollups group them
GRAINS = {
    "request_rollup_hourly": ("dimension", "dimension_value"),
    "request_rollup_daily": ("dimension", "dimension_value"),
    "step_rollup_hourly": ("dimension", "dimension_value", "span_kind", "span_name"),
    "step_rollup_daily": ("dimension", "dimension_value", "span_kind", "span_name"),
    "error_rollup_hourly": ("dimension", "dimension_value", "error_class", "provider"),
    "error_rollup_daily": ("dimension", "dimension_value", "error_class", "provider"),
    "usage_rollup_hourly": ("dimension", "dimension_value"),
    "usage_rollup_daily": ("dimension", "dimension_value"),
    "slo_status_hourly": ("slo_name",),
    "quality_checks_hourly": ("check_name",),
}


def upgrade() -> None:
    for table, dimensions in GRAINS.items():
        add_grain_key(table, dimensions)


def downgrade() -> None:
    for table in GRAINS:
        drop_grain_key(table)
