"""Issue 10 point 12: the database drops mid-ingest. Connection errors are retried with backoff; when the
database stays away, ingest fails with one clear line; committed batches stay and re-running converges.

Runs against a private PostgreSQL cluster that the test starts on its own port (never the shared server).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from obs_pipelines.ingest import runner
from obs_pipelines.ingest.limits import IngestLimits
from obs_pipelines.ingest.runner import IngestDatabaseError, ingest_paths
from obs_pipelines_tests.ingest.otlp_builders import reject_rows, request, span

PG_BIN = Path(os.environ.get("OBS_PIPELINES_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
TRACES, SPANS_PER_TRACE = 400, 5


class PrivateCluster:
    """initdb + pg_ctl in a directory of its own, as the current user (or `postgres` when running as root:
    initdb refuses root). Stopped with `-m immediate`, like a crash."""

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "root", "--auth=trust", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.base / "log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://root@127.0.0.1:{self.port}/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL binaries at {PG_BIN} (set OBS_PIPELINES_TEST_PG_BIN)")
    if os.geteuid() == 0:
        # initdb refuses root; the server runs as `postgres`, which cannot enter pytest's root-only tmp_path
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start a private PostgreSQL cluster")
        base = Path(tempfile.mkdtemp(prefix="obs-pg-"))
        shutil.chown(base, "postgres")
    else:
        base = tmp_path / "pg"
        base.mkdir()
    c = PrivateCluster(base)
    try:
        c.init()
        c.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL cluster: {exc.stderr.decode(errors='replace')[-300:]}")
    yield c
    try:
        c.stop()
    except subprocess.CalledProcessError:
        pass  # already stopped
    if base != tmp_path / "pg":
        shutil.rmtree(base, ignore_errors=True)


def _traces_file(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    with path.open("w") as fh:
        for t in range(TRACES):
            spans = [span(f"s{k}", trace_id=f"{t + 1:032x}", span_id=f"{t * 10 + k + 1:016x}") for k in range(SPANS_PER_TRACE)]
            fh.write(json.dumps(request(*spans)) + "\n")
    return path


def _on_record(monkeypatch, after: int, action) -> None:
    """Run `action` once, after the reader has handed over `after` records (ingest is mid-file)."""
    real = runner.iter_file

    def hooked(path, limits):
        for i, rec in enumerate(real(path, limits)):
            if i == after:
                action()
            yield rec

    monkeypatch.setattr(runner, "iter_file", hooked)


def _stored(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM spans")).scalar_one()
    finally:
        engine.dispose()


def test_ingest_rides_out_a_database_restart_mid_ingest(cluster, tmp_path, monkeypatch):
    path = _traces_file(tmp_path)
    restarted = threading.Event()
    refused = threading.Event()  # the ingest has met the stopped database at least once
    real_retry = runner.with_db_retry

    def with_db_retry(engine, limits, fn, *args):
        def watched(*fn_args):
            try:
                return fn(*fn_args)
            except Exception:
                refused.set()
                raise

        return real_retry(engine, limits, watched, *args)

    def crash_then_restart_once_refused():
        cluster.stop()
        threading.Thread(target=lambda: (refused.wait(30), cluster.start(), restarted.set())).start()

    monkeypatch.setattr(runner, "with_db_retry", with_db_retry)
    _on_record(monkeypatch, 150, crash_then_restart_once_refused)
    engine = sa.create_engine(cluster.url)
    limits = IngestLimits(db_retry_attempts=8, db_retry_delay_s=0.25)  # waits up to ~30 s in all
    summary = ingest_paths(engine, [path], batch_size=100, workers=0, limits=limits)
    assert restarted.wait(30) and refused.is_set()
    assert summary.stored + summary.duplicate == TRACES * SPANS_PER_TRACE and summary.rejected == 0
    assert _stored(cluster.url) == TRACES * SPANS_PER_TRACE
    assert reject_rows(engine) == []
    engine.dispose()


def test_a_database_that_stays_down_fails_with_one_line_and_a_rerun_converges(cluster, tmp_path, monkeypatch):
    path = _traces_file(tmp_path)
    _on_record(monkeypatch, 150, cluster.stop)
    engine = sa.create_engine(cluster.url)
    limits = IngestLimits(db_retry_attempts=3, db_retry_delay_s=0.1)
    with pytest.raises(IngestDatabaseError) as err:
        ingest_paths(engine, [path], batch_size=100, workers=0, limits=limits)
    message = str(err.value)
    assert "\n" not in message and "unreachable after 3 attempts" in message and "re-run" in message

    cluster.start()
    committed = _stored(cluster.url)
    assert 0 < committed < TRACES * SPANS_PER_TRACE  # the batches committed before the drop stay
    monkeypatch.undo()
    summary = ingest_paths(engine, [path], batch_size=100, workers=0)
    assert (summary.stored, summary.duplicate) == (TRACES * SPANS_PER_TRACE - committed, committed)
    assert _stored(cluster.url) == TRACES * SPANS_PER_TRACE
    engine.dispose()
