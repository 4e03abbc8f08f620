"""The shipped Dagster instance configs load, and the production one really stores runs in PostgreSQL."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
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


def _assert_monitors_and_retries_runs(instance: dg.DagsterInstance, max_retries: int) -> None:
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 180
    assert instance.run_monitoring_max_runtime_seconds == 6 * 3600
    assert instance.run_retries_enabled
    assert instance.run_retries_max_retries == max_retries
    assert not instance.run_retries_retry_on_asset_or_op_failure


def test_local_dagster_yaml_enables_run_monitoring_and_run_retries(tmp_path, monkeypatch):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        _assert_monitors_and_retries_runs(instance, max_retries=1)
    finally:
        instance.dispose()


HANGING_RUN = textwrap.dedent(
    """
    import os, time
    import dagster as dg

    @dg.op
    def hang():
        open("started", "w").close()
        time.sleep(600)

    @dg.job(tags={"dagster/max_runtime": "1"})
    def hang_job():
        hang()

    hang_job.execute_in_process(instance=dg.DagsterInstance.get())
    """
)


def test_a_run_whose_worker_was_killed_is_marked_failed_by_run_monitoring_and_will_be_retried(tmp_path, monkeypatch):
    """kill -9 of a real run worker under the local dagster.yaml (in a temporary DAGSTER_HOME), then one pass
    of the daemon's run monitoring over that run."""
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    worker = subprocess.Popen([sys.executable, "-c", HANGING_RUN], cwd=tmp_path, env=env)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "started").exists():
            assert worker.poll() is None and time.time() < deadline, "the run never started"
            time.sleep(0.2)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED  # what a killed run looks like without monitoring
        assert instance.run_monitoring_enabled  # else the daemon never makes the pass below
        deadline = time.monotonic() + 60  # passes of run monitoring until the job's max_runtime (1 s) is past
        while True:
            (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
            monitor_started_run(instance, None, record, logging.getLogger("run_monitoring"))
            run = instance.get_run_by_id(run.run_id)
            if run.status != dg.DagsterRunStatus.STARTED or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # between passes, as the daemon's own loop does
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert run.tags.get("dagster/will_retry") == "true"
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
        _assert_monitors_and_retries_runs(instance, max_retries=2)

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


def test_both_instances_give_each_asset_family_pool_one_slot(tmp_path, monkeypatch):
    """Runs over the same hour (schedule, late-data sensor, backfill) queue instead of rewriting it together."""
    import dagster as dg

    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.settings import Settings

    for config in (ROOT / "dagster.yaml", ROOT / "deploy" / "dagster.yaml"):
        assert yaml.safe_load(config.read_text())["concurrency"]["pools"]["default_limit"] == 1, config
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.chdir(tmp_path)
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    defs = build_definitions(Settings(db_url=f"sqlite:///{tmp_path / 't.db'}"))
    pools = {a.node_def.name: a.node_def.pool for a in defs.assets if isinstance(a, dg.AssetsDefinition)}
    assert pools["monitoring_hourly_rollups"] == "monitoring_hourly"
    assert pools["monitoring_daily_rollups"] == "monitoring_daily"
    assert all(pools.values()), f"every asset family runs in a pool: {pools}"
