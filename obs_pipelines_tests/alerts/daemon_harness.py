"""A real `dagster-daemon run` over the code location: the Dagster instance on PostgreSQL through
deploy/dagster.yaml (a database made for the occasion), the trace store in a private PostgreSQL schema, the
absolute alert rules (absolute_rules.py: they fire without history). Shared by test_daemon.py and
bench/bench_alert_latency.py."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import sqlalchemy as sa
import yaml

from obs_pipelines.alerts import payload
from obs_pipelines_tests.alerts.absolute_rules import with_absolute_rules

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example.yaml"
WEBHOOK_ENV = "OBS_PIPELINES_ALERT_WEBHOOK_URL"  # the example settings' webhook destination reads it
HOUR = timedelta(hours=1)
T = TypeVar("T")


# ---- PostgreSQL: a fresh database for the Dagster instance (the store: pg_schemas.private_schema) -------
@contextmanager
def fresh_database(server_url: str, prefix: str = "obs_daemon") -> Iterator[str]:
    """A new database on the server of ``server_url``, dropped afterwards (with its open connections)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(sa.make_url(server_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---- the deployment: DAGSTER_HOME, settings, workspace ------------------------------------------------------
def deploy_env(home: Path, server_url: str, dagster_db: str) -> dict[str, str]:
    """deploy/dagster.yaml copied into ``home``; the variables it reads, plus DAGSTER_HOME."""
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    url = sa.make_url(server_url)
    return {"DAGSTER_HOME": str(home), "DAGSTER_PG_USER": url.username or "root",
            "DAGSTER_PG_PASSWORD": url.password or "", "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_DB": dagster_db}


def write_settings(directory: Path, first_hour: datetime, now: datetime, **alerts: Any) -> Path:
    """The example settings with only the monitoring phase (its job evaluates the rules on its tables), the
    webhook as the one notifying destination, and nothing else that would write or launch runs meanwhile."""
    data = with_absolute_rules(yaml.safe_load(EXAMPLE.read_text()))  # they fire without history
    data.update(
        phases=["monitoring"],
        partitions_start=f"{first_hour:%Y-%m-%d-%H:%M}",
        landing_dir=str(directory / "landing"),  # the default is relative to the cwd
        # the hourly schedule would launch a run of the newest hour while the daemon runs: put its minute
        # half an hour away from now
        schedule_delay_minutes=(now.minute + 30) % 60,
    )
    # no freshness alerts for the hours this test leaves unmaterialized; days-old outage hours are replayed as
    # if live (deliver_max_age_hours: null) unless the caller says otherwise
    data["alerts"].update({"freshness_minutes": 0, "deliver_max_age_hours": None, **alerts})
    path = directory / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_workspace(directory: Path) -> Path:
    path = directory / "workspace.yaml"
    shutil.copy(ROOT / "workspace.yaml", path)
    return path


# ---- traffic and the monitoring run ----------------------------------------------------------------------------
def outage_hour(now: datetime, days_back: int = 10) -> datetime:
    """13:00 UTC ``days_back`` days ago: a busy hour, and older than the late-data sensor's week, so no
    sensor of the daemon rolls it up on its own."""
    return (now - timedelta(days=days_back)).replace(hour=13, minute=0, second=0, microsecond=0)


def load_outage(store_url: str, outage: datetime, seed: int = 7) -> int:
    """The clean hour before ``outage`` and a provider_outage hour into the store; the spans stored."""
    from obs_pipelines.orchestration.resource import TraceStore
    from obs_pipelines.store import db
    from obs_pipelines.synth.generator import generate_traces, parse_incident

    store = TraceStore(db_url=store_url)
    store.create_tables()
    incident = parse_incident(f"provider_outage@{outage:%Y-%m-%dT%H:%M}+1h")
    gc.disable()  # millions of small dicts: the collector would dominate
    try:
        rows = [r for t in generate_traces(outage - timedelta(hours=1), 2, 0.05, seed, [incident]) for r in t]
    finally:
        gc.enable()
    return db.insert_spans(store.engine, rows)


def live_outage_rows(now: datetime, minutes: int = 10, rate: float = 0.1, seed: int = 7) -> list[dict]:
    """A provider_outage of the generator happening now: the traces of the last ``minutes`` of an outage hour,
    moved in time so that they start in [now - minutes, now)."""
    from obs_pipelines.synth.generator import generate_traces, parse_incident

    hour = (now - HOUR).replace(minute=0, second=0, microsecond=0)
    incident = parse_incident(f"provider_outage@{hour:%Y-%m-%dT%H:%M}+1h")
    shift = now - (hour + HOUR)
    rows = []
    for trace in generate_traces(hour, 1, rate, seed, [incident]):
        if min(r["start_time"] for r in trace) >= hour + HOUR - timedelta(minutes=minutes):
            rows += [{**r, "start_time": r["start_time"] + shift,
                      "end_time": r["end_time"] + shift if r.get("end_time") else r.get("end_time")} for r in trace]
    return rows


def load_live_outage(store_url: str, now: datetime, minutes: int = 10, rate: float = 0.1, seed: int = 7) -> int:
    """live_outage_rows into the store; the spans stored."""
    from obs_pipelines.store import db

    return db.insert_spans(db.make_engine(store_url), live_outage_rows(now, minutes, rate, seed))


def load_clean_hours(store_url: str, first: datetime, hours: int, rate: float = 0.02, seed: int = 3) -> int:
    """Clean generator traffic over ``hours`` whole hours from ``first``."""
    from obs_pipelines.store import db
    from obs_pipelines.synth.generator import generate_traces

    rows = [r for t in generate_traces(first, hours, rate, seed, []) for r in t]
    return db.insert_spans(db.make_engine(store_url), rows)


def release_store(store_url: str) -> None:
    """Close this process's pooled connections to the store (before its schema is dropped)."""
    from obs_pipelines.store import db

    db.make_engine(store_url).dispose()
    db.make_engine.cache_clear()


def roll_up(settings_path: Path, first: datetime, last: datetime,
            instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """monitoring_hourly_job over the hours first..last, in this process, recorded in ``instance``."""
    from obs_pipelines.definitions import build_definitions
    from obs_pipelines.orchestration.partitions import range_tags
    from obs_pipelines.settings import load_settings

    defs = build_definitions(load_settings(settings_path))
    return defs.resolve_job_def("monitoring_hourly_job").execute_in_process(
        tags=range_tags(f"{first:%Y-%m-%d-%H:%M}", f"{last:%Y-%m-%d-%H:%M}"), instance=instance,
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})


def run_success_timestamp(instance: dg.DagsterInstance, run_id: str) -> float:
    [record] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS).records
    return record.timestamp


# ---- the daemon ------------------------------------------------------------------------------------------------
class Daemon:
    """`dagster-daemon run -w WORKSPACE` in its own session, so everything it starts (the code server, run
    workers) can be found afterwards by session id."""

    def __init__(self, workspace: Path, cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def session_processes(self) -> list[str]:
        """Command lines of live processes in the daemon's session (itself included while it runs)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            # fields after "(comm)": state, ppid, pgrp, session ...; a zombie has already exited
            if int(fields[3]) == self.process.pid and fields[0] != "Z":
                found.append(f"{stat.parent.name}: {cmdline}")
        return found

    def leftovers(self, timeout: float = 10.0) -> list[str]:
        """The session's processes still alive after up to ``timeout`` s (children of a daemon that just exited
        take a moment to go)."""
        deadline = time.monotonic() + timeout
        while (found := self.session_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Send ``sig`` to the daemon alone and wait for it; its exit code, or None if it did not exit."""
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_session(self) -> None:
        """Last resort after a failure: SIGKILL whatever is left of the session this harness started."""
        if self.alive() or self.session_processes():
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(10)
        self._log.close()

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]


def sensor_ticks(instance: dg.DagsterInstance, name: str) -> list:
    """Every recorded tick of the sensor ``name`` (none before the daemon's first evaluation of it)."""
    from dagster._core.scheduler.instigation import InstigatorType

    return [tick for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.instigator_name == name
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id)]


def wait_for(predicate: Callable[[], T], timeout: float, what: str, daemon: Daemon | None = None,
             poll: float = 0.2) -> T:
    """Poll until ``predicate`` returns something truthy; fail naming ``what`` (with the daemon's log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if daemon is not None and not daemon.alive():
            raise AssertionError(f"dagster-daemon exited ({daemon.process.returncode}) while waiting for {what}:\n"
                                 f"{daemon.log_tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{daemon.log_tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(poll)


# ---- what the webhook received ----------------------------------------------------------------------------------
def alerts_of(body: dict) -> list[dict]:
    """The alerts one notification carries (a single alert, or a group of related ones)."""
    return body.get("alerts", [body])


def deliveries_of(received: list[dict], rule: str, window_start: datetime, status: str = "firing") -> list[dict]:
    """The POSTs whose notification carries an alert of ``rule`` for the window starting ``window_start``."""
    return [r for r in received
            if any(a.get("rule") == rule and a.get("status") == status
                   and a.get("window_start") == window_start.isoformat() for a in alerts_of(r["body"]))]


def expected_idempotency_key(body: dict) -> str:
    return payload.idempotency_key(alerts_of(body))
