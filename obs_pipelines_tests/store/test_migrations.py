"""The schema is an Alembic lineage applied once under a lock (issue 10, 3)."""

from __future__ import annotations

import multiprocessing
import shutil
import textwrap
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from obs_pipelines.cli_db import all_metadata, db_group
from obs_pipelines.monitoring.tables import request_rollup_hourly
from obs_pipelines.store import db, migrate
from obs_pipelines.store.schema import spans
from obs_pipelines_tests.store.conftest import table_names

# SQLite cannot reflect the grain keys (expression indexes); the comparison skips them anyway
pytestmark = pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
PROCESSES = 20
T0 = datetime(2026, 11, 1, 10, 0)


def _upgrade_in_a_new_process(url: str, barrier) -> None:
    """What every process does when it starts: make an engine, make sure the tables exist."""
    engine = db.make_engine(url)
    barrier.wait()
    db.create_tables(engine)
    engine.dispose()


def version(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()


def test_twenty_processes_upgrading_an_empty_database_together_all_succeed(empty_db_url):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=_upgrade_in_a_new_process, args=(empty_db_url, barrier)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        if p.is_alive():  # hung: fail below, leave nothing behind
            p.kill()
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert version(empty_db_url) == [migrate.head_revision()]
    assert {"spans", "feedback", "request_rollup_hourly", "alembic_version"} <= table_names(empty_db_url)


def test_migrations_at_head_produce_exactly_the_tables_the_code_defines(empty_db_url):
    """Columns, types, nullability, indexes (and comments on PostgreSQL) of the migrated store are those of
    the table definitions: a table change without its migration fails here."""
    engine = db.make_engine(empty_db_url)
    db.create_tables(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": migrate.include_object, "compare_type": True})
        diff = compare_metadata(ctx, all_metadata())  # every phase's tables
    assert diff == [], "a table definition changed without its migration: `obs-pipelines db revision -m ...`"


def test_the_migrated_store_lands_in_the_search_path_schema(empty_db_url):
    if not empty_db_url.startswith("postgresql"):
        pytest.skip("search_path is PostgreSQL's")
    db.create_tables(db.make_engine(empty_db_url))
    schema = sa.make_url(empty_db_url).query["options"].split("=")[1]
    engine = sa.create_engine(sa.make_url(empty_db_url).difference_update_query(["options"]))
    try:
        assert "alembic_version" not in sa.inspect(engine).get_table_names()  # not in public
        assert {"alembic_version", "spans"} <= set(sa.inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()


def baseline_metadata() -> sa.MetaData:
    """The tables as `create_all` made them before migrations (frozen in the baseline revision)."""
    return ScriptDirectory.from_config(migrate.alembic_config()).get_revision("0001").module.baseline_metadata()


def test_a_store_created_before_migrations_upgrades_in_place(empty_db_url):
    legacy = sa.create_engine(empty_db_url)
    baseline_metadata().create_all(legacy)  # what create_tables / replace_window did before migrations
    row = {"window_start": T0, "window_end": T0 + timedelta(hours=1), "dimension": "overall", "computed_at": T0}
    with legacy.begin() as conn:
        conn.execute(sa.insert(spans), [{"trace_id": "a" * 32, "span_id": "b" * 16, "start_time": T0}])
        # the duplicates concurrent runs left behind: the newest copy is kept
        conn.execute(sa.insert(request_rollup_hourly), [{**row, "request_count": 1}, {**row, "request_count": 2,
                                                                                        "computed_at": T0 + timedelta(1)}])
    legacy.dispose()

    db.create_tables(db.make_engine(empty_db_url))

    assert version(empty_db_url) == [migrate.head_revision()]
    engine = sa.create_engine(empty_db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(spans)).scalar_one() == 1
            assert conn.execute(sa.select(request_rollup_hourly.c.request_count)).scalars().all() == [2]
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(request_rollup_hourly), [row])
    finally:
        engine.dispose()


def test_a_store_with_only_some_tables_gets_the_missing_ones(empty_db_url):
    legacy = sa.create_engine(empty_db_url)
    old = baseline_metadata()
    old.create_all(legacy, tables=[old.tables[n] for n in ("spans", "feedback", "ingest_rejects", "span_arrivals")])
    legacy.dispose()
    db.create_tables(db.make_engine(empty_db_url))
    assert {"spans", "request_rollup_hourly", "quality_checks_hourly"} <= table_names(empty_db_url)
    assert version(empty_db_url) == [migrate.head_revision()]


def test_the_schema_check_runs_once_per_engine(empty_db_url):
    """create_tables and replace_window on the hot path: after the first call, no schema query at all."""
    engine = db.make_engine(empty_db_url)
    db.create_tables(engine)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement.lower())

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        db.create_tables(engine)
        db.replace_window(engine, request_rollup_hourly, T0, T0 + timedelta(hours=1), pd.DataFrame())
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    schema_words = ("alembic_version", "sqlite_master", "pragma", "pg_catalog", "information_schema", "pg_class")
    assert not [s for s in statements if any(w in s for w in schema_words)]
    assert any(s.startswith("delete") for s in statements)


LATER_MIGRATION = '''
"""a later phase's table

Revision ID: 9001
Revises: {head}
"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later_phase_scores", sa.Column("window_start", sa.DateTime(), nullable=False),
                    sa.Column("score", sa.Float()))


def downgrade() -> None:
    op.drop_table("later_phase_scores")
'''


def test_a_later_phase_adds_a_migration_and_existing_stores_pick_it_up(empty_db_url, tmp_path):
    db.create_tables(db.make_engine(empty_db_url))
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9001_later_phase.py").write_text(
        textwrap.dedent(LATER_MIGRATION).format(head=migrate.head_revision())
    )
    engine = sa.create_engine(empty_db_url)
    try:
        assert migrate.upgrade(engine, scripts) == "9001"
        assert "later_phase_scores" in table_names(empty_db_url)
        assert migrate.upgrade(engine, scripts) == "9001"  # already there: nothing to do
    finally:
        engine.dispose()


def test_db_upgrade_command_for_operators(empty_db_url):
    result = CliRunner().invoke(db_group, ["upgrade", "--db-url", empty_db_url])
    assert result.exit_code == 0, result.output
    assert migrate.head_revision() in result.output
    assert version(empty_db_url) == [migrate.head_revision()]
    result = CliRunner().invoke(db_group, ["current", "--db-url", empty_db_url])
    assert result.exit_code == 0 and migrate.head_revision() in result.output


def test_a_connection_dropped_during_first_use_schema_creation_is_retried(pg_base_url):
    # the creating process waits on the schema lock (held here), its connection is then killed by the server;
    # it must reconnect and finish, not fail the ingest or run that touched the store first
    import threading
    import time
    import uuid

    from obs_pipelines.store import locks
    from obs_pipelines_tests.pg_schemas import private_schema

    app = f"obs_drop_{uuid.uuid4().hex[:8]}"
    with private_schema(pg_base_url) as url:
        schema = sa.make_url(url).query["options"].split("=", 1)[1]
        target = sa.make_url(url).update_query_dict({"application_name": app}).render_as_string(hide_password=False)
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        outcome: dict = {}
        with admin.connect() as holder:
            holder.execute(sa.text("SELECT pg_advisory_lock(:k, hashtext(:s))"),
                           {"k": locks._SCHEMA_LOCK_KEY, "s": schema})

            def create() -> None:
                try:
                    db.create_tables(db.make_engine(target))
                    outcome["ok"] = True
                except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                    outcome["error"] = exc

            worker = threading.Thread(target=create)
            worker.start()
            deadline = time.monotonic() + 60
            waiting = None
            while waiting is None and time.monotonic() < deadline:  # poll: the creator blocks on the lock
                waiting = holder.execute(sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :a AND wait_event_type = 'Lock'"),
                    {"a": app}).scalar()
            assert waiting is not None, "the schema creation never waited on the lock"
            holder.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": waiting})
            holder.execute(sa.text("SELECT pg_advisory_unlock(:k, hashtext(:s))"),
                           {"k": locks._SCHEMA_LOCK_KEY, "s": schema})
        worker.join(timeout=120)
        admin.dispose()
        db.make_engine(target).dispose()
        assert outcome.get("ok"), outcome.get("error")
        assert {"spans", "request_rollup_hourly"} <= table_names(url)
