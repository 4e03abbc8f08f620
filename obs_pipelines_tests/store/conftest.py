"""Store-test fixtures: a URL of a store with no tables at all (SQLite file or fresh PostgreSQL schema)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from obs_pipelines.store import db


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request, tmp_path) -> str:
    """URL of an empty store; on PostgreSQL a fresh schema reached through search_path, as in `store`."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        db.make_engine.cache_clear()
        return
    base_url = request.getfixturevalue("pg_base_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    db.make_engine(url.render_as_string(hide_password=False)).dispose()  # pooled connections hold the schema
    db.make_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
