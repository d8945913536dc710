"""Label joins and drift counts kept in the store's database, and the hash the pages' queries sample by on PostgreSQL.

``kept_labels`` records each label join the collector's upkeep (or a page) keeps as a table of its
own when the prediction log is in a PostgreSQL store (``monitoring.store_log``); ``kept_tallies``
holds the drift counts of each past day of such a log. On PostgreSQL,
``hash(text)`` is created when the database lacks one: the 64-bit ``hashtextextended`` that DuckDB's
and Spark's ``hash`` stand for in ``monitoring.performance_sums.engine_hash``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_HASH = ("CREATE FUNCTION hash(text) RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE "
         "AS 'SELECT hashtextextended($1, 0)'")


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("kept_labels"):
        op.create_table(
            "kept_labels",
            sa.Column("name", sa.String(63), primary_key=True),
            sa.Column("service", sa.String(64), nullable=False),
            sa.Column("now", sa.Float, nullable=False),
            sa.Column("record", sa.Text, nullable=False),
            sa.Column("sample", sa.LargeBinary),
        )
        op.create_index("ix_kept_labels_service_now", "kept_labels", ["service", "now"])
    if not sa.inspect(bind).has_table("kept_tallies"):
        op.create_table(
            "kept_tallies",
            sa.Column("service", sa.String(64), primary_key=True),
            sa.Column("profile", sa.String(16), primary_key=True),
            sa.Column("spec", sa.String(8), primary_key=True),
            sa.Column("day", sa.Float, primary_key=True),
            sa.Column("rows", sa.Integer, nullable=False),
            sa.Column("last_seq", sa.Integer, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
        )
    if bind.dialect.name == "postgresql":
        exists = bind.execute(sa.text("SELECT 1 FROM pg_proc WHERE proname = 'hash' "
                                      "AND pg_get_function_identity_arguments(oid) = 'text'")).first()
        if exists is None:
            op.execute(_HASH)


def downgrade() -> None:
    op.drop_table("kept_tallies")
    op.drop_index("ix_kept_labels_service_now", table_name="kept_labels")
    op.drop_table("kept_labels")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hash(text)")
