"""Alembic environment of the trace store.

Not run by the `alembic` command line: `obs_pipelines.store.migrate` builds the Config in code and hands
over `connection`, already inside the transaction that holds the schema lock (so Alembic opens no
transaction of its own), and, to autogenerate a revision, `target_metadata`.
"""

from alembic import context

from obs_pipelines.store.migrate import include_object

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the store's migrations through obs_pipelines.store.migrate (`obs-pipelines db upgrade`)")

context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    include_object=include_object,
    compare_type=True,
    render_as_batch=True,  # SQLite alters a table by copying it: autogenerate writes batch operations
)
with context.begin_transaction():
    context.run_migrations()
