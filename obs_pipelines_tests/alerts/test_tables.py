"""Migration 0006 makes exactly the alerts' tables of alerts/tables.py (both databases)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from obs_pipelines.alerts.tables import alerts_metadata
from obs_pipelines.store import migrate

pytestmark = pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")


def _about_alerts(diff) -> bool:
    ops = diff if isinstance(diff, list) else [diff]
    text = repr(ops)
    return any(f"'{name}'" in text or f"<{name}>" in text or f"table={name}" in text
               for name in alerts_metadata.tables)


def test_migration_0006_creates_the_alerts_tables_exactly_as_defined(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": migrate.include_object, "compare_type": True})
        diff = [d for d in compare_metadata(ctx, alerts_metadata) if _about_alerts(d)]
    assert diff == []
