"""Shared fixtures: a `store` over a real SQLite file and a real PostgreSQL server (never a mock)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from obs_pipelines.orchestration.resource import TraceStore
from obs_pipelines.store import db
from obs_pipelines_tests.pg_schemas import private_schema

REAL_TRACES_ENV = "OBS_PIPELINES_REAL_TRACES"


def _real_traces_dir() -> Path:
    """`../shared/data/real-traces` beside the checkout (or $OBS_PIPELINES_REAL_TRACES); a clone elsewhere
    falls back to the workspace's copy at /work/shared."""
    if os.environ.get(REAL_TRACES_ENV):
        return Path(os.environ[REAL_TRACES_ENV])
    here = Path(__file__).resolve().parents[1]
    candidates = [p / "shared" / "data" / "real-traces" for p in here.parents] + [
        Path("/work/shared/data/real-traces")
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


REAL_TRACES_DIR = _real_traces_dir()
PG_URL_ENV = "OBS_PIPELINES_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg2://root@127.0.0.1:5432/obs_pipelines_test"


def _pg_base_url() -> str:
    return os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The PostgreSQL test database, created on first use (the server itself must be running)."""
    url = sa.make_url(_pg_base_url())
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}
            ).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    finally:
        admin.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> TraceStore:
    """A TraceStore with all tables created, on a fresh SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'traces.db'}"
        resource = TraceStore(db_url=url)
        resource.create_tables()
        yield resource
        resource.engine.dispose()
        return
    with private_schema(request.getfixturevalue("pg_base_url")) as url:
        resource = TraceStore(db_url=url)
        resource.create_tables()
        yield resource
        resource.engine.dispose()
        db.make_engine.cache_clear()


@pytest.fixture
def real_traces_dir() -> Path:
    assert REAL_TRACES_DIR.is_dir(), f"real traces not found at {REAL_TRACES_DIR}"
    return REAL_TRACES_DIR


# ---- every test in its own Dagster home and working directory ------------------------------------------------
@pytest.fixture(autouse=True)
def isolated_dagster_home_and_cwd(tmp_path_factory, monkeypatch):
    """A fresh DAGSTER_HOME (with an empty dagster.yaml) and working directory per test, and no settings from
    the user's shell, so nothing a test runs lands in the project's .dagster_home or .obs_pipelines."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in ("OBS_PIPELINES_DB_URL", "OBS_PIPELINES_CONFIG"):
        monkeypatch.delenv(name, raising=False)


# ---- no test module leaves a thread running ------------------------------------------------------------
# A thread left alive makes obs_pipelines.forking.fork_context() refuse to fork, so a later test's forked pool
# silently runs on one worker (the synth parallel-writer tests failed in the full run that way, far from the
# test that leaked). Checked when a module's fixtures are torn down, so the leak is reported where it happens.
_threads_at_module_start: dict[str, set[int]] = {}


def _module_of(item) -> str:
    return item.nodeid.split("::", 1)[0]


def _other_threads() -> dict[int, str]:
    import threading

    return {t.ident: t.name for t in threading.enumerate() if t is not threading.main_thread() and t.ident}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    _threads_at_module_start.setdefault(_module_of(item), set(_other_threads()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield
    if nextitem is not None and _module_of(nextitem) == _module_of(item):
        return result
    import time

    before = _threads_at_module_start.get(_module_of(item), set())
    deadline = time.monotonic() + 10  # a server's handler threads may take a moment to see their socket close
    while (left := {i: n for i, n in _other_threads().items() if i not in before}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"{_module_of(item)} left threads running after its tests: {sorted(left.values())}"
    return result
