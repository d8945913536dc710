"""The store's schema, created and upgraded by versioned Alembic migrations (``versions/``).

:func:`upgrade` brings a database to the newest revision; :class:`monitoring.store.Store` calls
it when it opens a database (SQLite and PostgreSQL alike), and ``python -m monitoring.store
upgrade`` does it by hand. Alembic is configured here, in code: no ``alembic.ini`` is read.

Migrations run inside one transaction that holds the schema lock (:func:`schema_lock`): on
PostgreSQL an advisory lock, on SQLite the write lock (``BEGIN IMMEDIATE``), so processes that
open a new store at the same moment migrate it once, one after the other.

A store made before the migrations existed (by the hand-written ``migrate()`` of earlier
versions: tables but no ``alembic_version``) is recognised and adopted: the baseline revision
runs over it (it creates only the tables the database lacks), the revision its ``leases`` table
matches is stamped, and the newer revisions run. No row is touched.

The per-service prediction tables (``predictions__<service>``) are not here: their columns are
the service's features, known at run time, so :mod:`monitoring.prediction_log_sql` creates them
(under the same lock, so two processes creating one at once do not fail).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

FOLDER = Path(__file__).resolve().parent
"""Where ``env.py`` and ``versions/`` are."""

BASELINE = "0001"
"""The revision of the tables the hand-written schema made first."""

LEASE_IDENTITY = "0002"
"""The revision that added the lease holder's identity columns (the hand-written ``migrate()`` did too)."""

LEASE_IDENTITY_COLUMNS = ("host", "node", "pid", "started", "acquired_at")

SCHEMA_LOCK_KEY = 0x7661_6E75
"""PostgreSQL advisory-lock key held while the schema changes (the poll writes use another)."""


def include_name(name: str | None, type_: str, _parent_names) -> bool:
    """Alembic's filter: every object but the per-service prediction tables, the kept label joins and the staged
    label files, which the log code owns."""
    return not (type_ == "table" and name is not None and name.startswith(("predictions__", "kept__", "staged__")))


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for the store's migrations, running on ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(FOLDER))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: sa.Connection) -> str | None:
    """The revision stamped in the database, or None (a new database, or one from before the migrations)."""
    return MigrationContext.configure(connection).get_current_revision()


def legacy_revision(connection: sa.Connection) -> str | None:
    """The revision a store made before the migrations matches; None when it is not such a store.

    Such a store has the ``probes`` table and no ``alembic_version``. Its ``leases`` table has
    the holder's identity columns (:data:`LEASE_IDENTITY`) or not (:data:`BASELINE`).
    """
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if "alembic_version" in tables or "probes" not in tables:
        return None
    if "leases" in tables:
        have = {c["name"] for c in inspector.get_columns("leases")}
        if set(LEASE_IDENTITY_COLUMNS) <= have:
            return LEASE_IDENTITY
    return BASELINE


@contextlib.contextmanager
def schema_lock(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that holds the store's schema lock until it commits.

    PostgreSQL: ``pg_advisory_xact_lock`` (:data:`SCHEMA_LOCK_KEY`); SQLite: ``BEGIN IMMEDIATE``
    (the database's write lock). DDL inside it is part of the transaction on both.
    """
    with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        yield conn


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade` did.

    Attributes
    ----------
    before : str or None
        The revision the database was at (None: new, or made before the migrations).
    after : str
        The revision it is at now (:func:`head`).
    adopted : str or None
        For a store made before the migrations: the revision it was recognised as and stamped.
    """

    before: str | None
    after: str
    adopted: str | None = None

    @property
    def changed(self) -> bool:
        """Whether anything was migrated or stamped."""
        return self.before != self.after


def upgrade(engine: Engine) -> UpgradeResult:
    """Bring the store's database to the newest revision; nothing is locked when it is there already.

    Parameters
    ----------
    engine : Engine
        The store's engine (SQLite or PostgreSQL).

    Returns
    -------
    UpgradeResult
    """
    target = head()
    with engine.connect() as conn:
        before = current_revision(conn)
    if before == target:
        return UpgradeResult(before, target)
    with schema_lock(engine) as conn:
        before = current_revision(conn)  # another process may have migrated while this one waited
        if before == target:
            return UpgradeResult(before, target)
        config = alembic_config(conn)
        adopted = legacy_revision(conn) if before is None else None
        if adopted is not None:
            command.upgrade(config, BASELINE)  # the tables an old store may lack; existing ones are kept
            if adopted != BASELINE:
                command.stamp(config, adopted)
        command.upgrade(config, "head")
    return UpgradeResult(before, target, adopted)
