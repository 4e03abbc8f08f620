"""Migration 0007 makes exactly the tables offline_evals/tables.py defines (both databases), and the daily
cases table refuses a second copy of a case in one window."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from obs_pipelines.cli_db import all_metadata
from obs_pipelines.offline_evals.tables import offline_evals_metadata, regression_cases
from obs_pipelines.store import migrate

MINE = set(offline_evals_metadata.tables)


def _only_mine(obj, name, type_, reflected, compare_to) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in MINE and migrate.include_object(obj, name, type_, reflected, compare_to)


def test_migration_makes_the_tables_the_code_defines(store):
    assert offline_evals_metadata in all_metadata()  # `db revision` compares with it
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _only_mine, "compare_type": True})
        assert compare_metadata(ctx, offline_evals_metadata) == []


def test_a_case_is_stored_once_per_day_and_dataset(store):
    row = {"window_start": datetime(2026, 11, 2), "window_end": datetime(2026, 11, 3), "dataset": "d",
           "case_id": "abc"}
    with store.engine.begin() as conn:
        conn.execute(sa.insert(regression_cases), [row])
    with pytest.raises(sa.exc.IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(sa.insert(regression_cases), [row])
