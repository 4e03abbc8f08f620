"""Pool slots and local runs (issue 20.2), with the shipped dagster.yaml (one slot per asset family) and real
`obs-pipelines run` processes: a run killed with SIGKILL does not keep its slot from the next run, and a run
whose pool is held by a live run says so and exits instead of waiting without end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from obs_pipelines.monitoring.defs import HOURLY_POOL

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 240  # for each wait below: polled, never slept on


@pytest.fixture
def project(tmp_path, monkeypatch) -> dict[str, str]:
    """A working directory with the shipped dagster.yaml as the instance, a SQLite store and the monitoring
    phase only."""
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    (tmp_path / "settings.yaml").write_text("phases: [monitoring]\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "OBS_PIPELINES_CONFIG": str(tmp_path / "settings.yaml"),
           "OBS_PIPELINES_DB_URL": f"sqlite:///{tmp_path / 'traces.db'}"}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return env


def start_run(env: dict, first: str, last: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "obs_pipelines.cli", "run", "monitoring", "--start", first,
                             "--end", last], cwd=env["DAGSTER_HOME"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_slot_holder(proc: subprocess.Popen) -> str:
    """Poll the instance until a run holds the hourly pool's slot; its run id."""
    deadline = time.monotonic() + DEADLINE_S
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            holders = instance.event_log_storage.get_concurrency_info(HOURLY_POOL).active_run_ids
            if holders:
                return next(iter(holders))
            time.sleep(0.2)  # between polls of the instance, not a wait for the event itself
    raise AssertionError("the first run never took its pool slot")


def test_a_run_killed_with_sigkill_does_not_keep_its_pool_slot_from_the_next_run(project):
    # a long range (a week of empty hours): the first run is mid-step when it is killed
    first = start_run(project, "2026-01-01T00:00", "2026-01-07T23:00")
    try:
        killed_run = wait_for_slot_holder(first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(60)
    second = subprocess.run([sys.executable, "-m", "obs_pipelines.cli", "run", "monitoring", "--start",
                             "2026-04-01T00:00", "--end", "2026-04-01T01:00"], cwd=project["DAGSTER_HOME"],
                            env=project, capture_output=True, text=True, timeout=DEADLINE_S, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "succeeded" in second.stdout
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info(HOURLY_POOL).active_run_ids


def test_a_run_whose_pool_is_held_by_a_live_run_says_so_and_exits(project):
    first = start_run(project, "2026-01-01T00:00", "2026-01-07T23:00")
    try:
        holder = wait_for_slot_holder(first)
        second = subprocess.run([sys.executable, "-m", "obs_pipelines.cli", "run", "monitoring", "--start",
                                 "2026-04-01T00:00", "--end", "2026-04-01T01:00"], cwd=project["DAGSTER_HOME"],
                                env=project, capture_output=True, text=True, timeout=DEADLINE_S, check=False)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(60)
    assert second.returncode == 2
    assert f"pool {HOURLY_POOL} has no free slot" in second.stdout and holder in second.stdout
    assert "Traceback" not in second.stdout + second.stderr
