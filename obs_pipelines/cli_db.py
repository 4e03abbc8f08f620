"""`obs-pipelines db ...`: the trace store's schema migrations, for operators and developers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import click

from obs_pipelines.store import db, migrate

if TYPE_CHECKING:
    from alembic.script import Script

_DB_URL = click.option(
    "--db-url", envvar="OBS_PIPELINES_DB_URL", default=None,
    help="Store URL (default: OBS_PIPELINES_DB_URL, else the settings' db_url).",
)


def _url(db_url: str | None) -> str:
    if db_url:
        return db_url
    from obs_pipelines.settings import load_settings

    return load_settings().db_url


def _shown(url: str) -> str:
    return db.make_engine(url).url.render_as_string(hide_password=True)


@click.group("db")
def db_group() -> None:
    """Schema of the trace store (Alembic migrations; every run also upgrades on first use)."""


@db_group.command()
@_DB_URL
def upgrade(db_url: str | None) -> None:
    """Upgrade the store to the newest migration (once, under a lock: safe while other processes start)."""
    url = _url(db_url)
    click.echo(f"{_shown(url)} at revision {db.db_upgrade(url)}")


@db_group.command()
@_DB_URL
def current(db_url: str | None) -> None:
    """Print the store's revision and the newest one."""
    url = _url(db_url)
    with db.make_engine(url).connect() as conn:
        revision = migrate.current_revision(conn)
    click.echo(f"{_shown(url)} at revision {revision or '(none)'}; newest {migrate.head_revision()}")


@db_group.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--autogenerate/--empty", default=True, show_default=True,
              help="Write the operations that bring a store at the newest revision to the table definitions.")
@_DB_URL
def revision(message: str, autogenerate: bool, db_url: str | None) -> None:
    """Write a new revision file into store/migrations/versions (for developers; see its README)."""
    from alembic import command

    url = _url(db_url)
    engine = db.make_engine(url)
    db.db_upgrade(url)  # autogenerate compares the definitions with a store at the newest revision
    rev_id = f"{int(migrate.head_revision()) + 1:04d}"
    with engine.connect() as conn, conn.begin():
        cfg = migrate.alembic_config(connection=conn, target_metadata=all_metadata())
        # one head and one rev_id: a single revision file (a list only comes with multiple heads)
        script = cast("Script", command.revision(cfg, message, autogenerate=autogenerate, rev_id=rev_id))
    click.echo(f"wrote {script.path}: review it, then run the store tests")


def all_metadata() -> list:
    """Every phase's published tables (the lineage covers them all)."""
    from obs_pipelines.alerts.tables import alerts_metadata
    from obs_pipelines.monitoring.tables import monitoring_metadata
    from obs_pipelines.observability.tables import observability_metadata
    from obs_pipelines.offline_evals.tables import offline_evals_metadata
    from obs_pipelines.online_evals.tables import online_evals_metadata
    from obs_pipelines.store.schema import metadata

    return [metadata, monitoring_metadata, observability_metadata, online_evals_metadata, offline_evals_metadata,
            alerts_metadata]


__all__ = ["all_metadata", "db_group"]
