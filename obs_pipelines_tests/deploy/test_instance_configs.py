"""The shipped Dagster instance configs load, and the production one really stores runs in PostgreSQL."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_local_dagster_yaml_uses_embedded_sqlite_storage(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert (tmp_path / ".dagster_home" / "storage").is_dir()
    finally:
        instance.dispose()


def test_workspace_yaml_loads_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    target = workspace["load_from"][0]["python_module"]
    assert target["module_name"] == "obs_pipelines.definitions"
    assert target["attribute"] == "defs"


def test_production_dagster_yaml_spells_the_psycopg2_driver():
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


@pytest.fixture
def dagster_pg_db(pg_base_url) -> str:
    name = os.environ.get("OBS_PIPELINES_TEST_DAGSTER_PG_DB", "obs_dagster_test")
    admin = sa.create_engine(sa.make_url(pg_base_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": name}).scalar():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def test_production_dagster_yaml_stores_runs_in_postgresql(tmp_path, monkeypatch, pg_base_url, dagster_pg_db):
    url = sa.make_url(pg_base_url)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "root")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_DB", dagster_pg_db)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"

        @dg.op
        def noop():
            return 1

        @dg.job
        def probe_job():
            noop()

        result = probe_job.execute_in_process(instance=instance)
        assert instance.get_run_by_id(result.run_id) is not None
    finally:
        instance.dispose()
