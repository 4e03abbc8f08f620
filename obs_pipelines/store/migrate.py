"""Schema of the trace store as one Alembic lineage (`migrations/`) for every phase's tables.

Whatever process touches a store first brings it to the newest revision, under a lock so that twenty
processes starting together on an empty database create each table exactly once:

- PostgreSQL: `pg_advisory_xact_lock` on a fixed key (per schema) taken in the transaction that runs the
  migrations; DDL is transactional there, so a crash leaves the previous revision intact.
- SQLite: `BEGIN EXCLUSIVE` around the migrations (one writer at a time; others wait on the busy timeout).

The check is cheap: once per engine (= per URL per process, `db.make_engine` caches engines), a read of
`alembic_version` and a comparison with the head revision of the scripts; the lock is taken only when the
store is behind. The Alembic `Config` is built here in code: no alembic.ini at run time.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from obs_pipelines.store import locks

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
GRAIN_KEY_PREFIX, GRAIN_KEY_SUFFIX = "uq_", "_grain"
SCHEMA_RETRY_ATTEMPTS = 5  # connection losses survived while bringing a store to the newest revision
SCHEMA_RETRY_BACKOFF_S = 0.5  # doubled after each

# engine -> names of the tables known to exist in its store (filled once per engine)
_known_tables: weakref.WeakKeyDictionary[Engine, set[str]] = weakref.WeakKeyDictionary()
_known_lock = threading.Lock()


def alembic_config(
    script_location: Path = MIGRATIONS_DIR,
    connection: Connection | None = None,
    target_metadata: object = None,
) -> Config:
    """An Alembic Config built in code; env.py runs the migrations on `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    cfg.attributes["target_metadata"] = target_metadata
    return cfg


@lru_cache(maxsize=8)
def _scripts(script_location: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(Path(script_location)))


def head_revision(script_location: Path = MIGRATIONS_DIR) -> str:
    """The newest revision of the lineage (one head: the lineage never branches)."""
    return _scripts(str(script_location)).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The store's revision; None for a store without `alembic_version` (empty, or made before migrations)."""
    return MigrationContext.configure(conn).get_current_revision()


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate / compare filter: grain keys are declared in migrations only (expression indexes that the
    table definitions do not repeat), so they are not taken for indexes to drop."""
    return not (type_ == "index" and name and name.startswith(GRAIN_KEY_PREFIX) and name.endswith(GRAIN_KEY_SUFFIX))


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the store's schema lock; committed on exit."""
    with locks.begin(engine, "EXCLUSIVE") as conn:
        locks.lock_schema(conn)
        yield conn


def upgrade(engine: Engine, script_location: Path = MIGRATIONS_DIR, revision: str = "head") -> str:
    """Bring the store to `revision` under the schema lock (a no-op when it is there). Returns the revision.

    A store made before migrations (tables, no `alembic_version`) is adopted in place: the baseline
    revision creates only the tables it lacks and the later revisions apply as usual."""
    with schema_lock(engine) as conn:
        before = current_revision(conn)
        if before is None and sa.inspect(conn).has_table("spans"):
            log.info("adopting a store created before migrations (%s)", engine.url.render_as_string())
        cfg = alembic_config(script_location, conn)
        target = _scripts(str(script_location)).get_revision(revision).revision
        if before != target:
            command.upgrade(cfg, revision)
        return current_revision(conn)


def ensure_tables(engine: Engine, tables: Iterable[sa.Table] = ()) -> None:
    """The store at the newest revision, then any of `tables` the migrations do not make (ad-hoc tables of
    tests and scripts) created. Both checked once per engine: on the hot path this is a set lookup."""
    tables = list(tables)
    known = _known_tables.get(engine)
    if known is not None and all(t.name in known for t in tables):
        return
    with _known_lock:
        known = _known_tables.get(engine)
        if known is None:
            known = _bring_to_head(engine)
            _known_tables[engine] = known
        missing = [t for t in tables if t.name not in known]
        if missing:
            with schema_lock(engine) as conn:
                for table in missing:
                    table.create(conn, checkfirst=True)
            known.update(t.name for t in missing)


def _bring_to_head(engine: Engine) -> set[str]:
    """Upgrade if behind (read first: the lock only when needed); the names of the store's tables.

    A connection lost on the way (a database restart, a dropped link) is retried with backoff: the upgrade
    is one transaction, so a retry starts from the revision the store really has."""
    for attempt in range(1, SCHEMA_RETRY_ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                at_head = current_revision(conn) == head_revision()
            if not at_head:
                upgrade(engine)
            with engine.connect() as conn:  # views too (eval_scores): a view is not created as a table
                inspector = sa.inspect(conn)
                return set(inspector.get_table_names()) | set(inspector.get_view_names())
        except sa.exc.DBAPIError as exc:
            if attempt == SCHEMA_RETRY_ATTEMPTS or not _connection_lost(exc):
                raise
            wait = SCHEMA_RETRY_BACKOFF_S * 2 ** (attempt - 1)
            log.warning("schema creation lost its connection (%s); retry %d in %.1f s",
                        str(exc.orig or exc).strip().splitlines()[0], attempt, wait)
            time.sleep(wait)  # backoff before reconnecting, not synchronisation
    raise AssertionError("unreachable")


def _connection_lost(exc: sa.exc.DBAPIError) -> bool:
    """A dropped connection or a server going away, not an error of the migration itself."""
    return exc.connection_invalidated or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))


__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "ensure_tables",
    "head_revision",
    "include_object",
    "schema_lock",
    "upgrade",
]
