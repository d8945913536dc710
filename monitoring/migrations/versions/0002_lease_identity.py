"""The lease holder's identity: host, node, pid, process start and when it took the lease.

So a collector on the same machine can tell a dead holder from a live one and take over at
once. Only the columns a table lacks are added (the hand-written migration may have added some).

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (("host", sa.String(255)), ("node", sa.String(255)), ("pid", sa.Integer), ("started", sa.String(32)),
           ("acquired_at", sa.Float))


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("leases")}
    missing = [sa.Column(name, kind) for name, kind in COLUMNS if name not in have]
    if missing:
        with op.batch_alter_table("leases") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
