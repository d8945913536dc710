"""Alembic's environment for the store: migrations run on the connection :func:`monitoring.migrations.upgrade` gives.

Run through :mod:`monitoring.migrations` (``Store`` does at open, ``python -m monitoring.store upgrade``
by hand), never through an ``alembic.ini``: the connection arrives in
``config.attributes["connection"]``, already inside the transaction that holds the schema lock.
"""

from __future__ import annotations

from alembic import context

from monitoring.migrations import include_name
from monitoring.store_schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the store's migrations run on a connection: use monitoring.migrations.upgrade(engine) "
                       "or `python -m monitoring.store upgrade`, not the alembic command line")

context.configure(
    connection=connection,
    target_metadata=metadata,
    include_name=include_name,  # the per-service prediction tables are the log's, not the migrations'
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
