"""A password in OBS_PIPELINES_DB_URL never reaches Dagster's snapshots, run storage, events or the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.remote_representation.external_data import RepositorySnap  # the snapshot the UI reads

from obs_pipelines.definitions import build_definitions
from obs_pipelines.settings import DB_URL_ENV, load_settings
from obs_pipelines.store import db

SECRET = "hunter2-Xq9-not-in-the-ui"  # the test server trusts local connections, so any password works
HOUR = datetime(2026, 3, 2, 10)


@pytest.fixture
def url_with_password(store, monkeypatch) -> str:
    if not store.is_postgres:
        pytest.skip("SQLite URLs carry no password")
    url = sa.make_url(store.db_url).set(password=SECRET).render_as_string(hide_password=False)
    monkeypatch.setenv(DB_URL_ENV, url)
    start = HOUR.replace(minute=5)
    db.insert_spans(store.engine, [{
        "trace_id": "ab" * 16, "span_id": "cd" * 8, "parent_span_id": None, "name": "POST /ask", "kind": "chain",
        "start_time": start, "end_time": start.replace(second=2), "status": "ok", "route": "ask"}])
    return url


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_store_password_is_kept_out_of_snapshots_run_storage_events_and_output(url_with_password):
    defs = build_definitions(load_settings())
    repository = defs.get_repository_def()
    snapshot = dg.serialize_value(RepositorySnap.from_def(repository))
    assert SECRET not in snapshot

    # the CLI as a user runs it, in its own process, recording into this test's DAGSTER_HOME
    done = subprocess.run([sys.executable, "-m", "obs_pipelines.cli", "run", "monitoring", "--start",
                           "2026-03-02T10:00", "--end", "2026-03-02T10:00"],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert runs, "the run was recorded"
    for run in runs:
        assert SECRET not in dg.serialize_value(run)
        for event in instance.all_logs(run.run_id):
            assert SECRET not in dg.serialize_value(event)
    assert _files_holding(Path(os.environ["DAGSTER_HOME"]), SECRET.encode()) == []
