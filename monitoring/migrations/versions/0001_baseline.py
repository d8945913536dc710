"""Baseline: the store's tables as the hand-written schema first made them (leases without the holder's identity).

Each table is created only when the database lacks it, so a store made before the migrations
existed is adopted by running this revision over it (:func:`monitoring.migrations.upgrade`).

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple]:
    return {
        "probes": (
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("service", sa.String(64), nullable=False),
            sa.Column("check", sa.String(32), nullable=False),
            sa.Column("ok", sa.Boolean, nullable=False),
            sa.Column("state", sa.String(16)),
            sa.Column("status", sa.Integer),
            sa.Column("latency_ms", sa.Float),
            sa.Column("error", sa.Text),
            sa.UniqueConstraint("service", "check", "ts", name="uq_probes_service_check_ts"),
        ),
        "probe_rollups": (
            sa.Column("service", sa.String(64), primary_key=True),
            sa.Column("check", sa.String(32), primary_key=True),
            sa.Column("bucket_ts", sa.Float, primary_key=True),
            sa.Column("n", sa.Integer, nullable=False),
            sa.Column("n_ok", sa.Integer, nullable=False),
            sa.Column("n_degraded", sa.Integer, nullable=False),
            sa.Column("latency_sum_ms", sa.Float, nullable=False),
            sa.Column("latency_max_ms", sa.Float),
            sa.Column("latency_hist", sa.Text, nullable=False),
        ),
        "incidents": (
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("service", sa.String(64), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("previous_state", sa.String(16)),
            sa.Column("reason", sa.Text),
            sa.UniqueConstraint("service", "ts", name="uq_incidents_service_ts"),
        ),
        "metric_samples": (
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("service", sa.String(64), nullable=False),
            sa.Column("series", sa.String(32), nullable=False),
            sa.Column("le", sa.Float, nullable=False),
            sa.Column("value", sa.Float, nullable=False),
            sa.PrimaryKeyConstraint("service", "series", "le", "ts", name="pk_metric_samples"),
        ),
        "metric_rollups": (
            sa.Column("service", sa.String(64), primary_key=True),
            sa.Column("series", sa.String(32), primary_key=True),
            sa.Column("le", sa.Float, primary_key=True),
            sa.Column("bucket_ts", sa.Float, primary_key=True),
            sa.Column("increase", sa.Float, nullable=False),
        ),
        "labels": (
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("service", sa.String(64), nullable=False),
            sa.Column("prediction_id", sa.String(64), nullable=False),
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("label", sa.Float),
        ),
        "leases": (
            sa.Column("name", sa.String(128), primary_key=True),
            sa.Column("holder", sa.String(128), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        ),
        "capture_stats": (
            sa.Column("source", sa.String(128), primary_key=True),
            sa.Column("service", sa.String(64), primary_key=True),
            sa.Column("ts", sa.Float, nullable=False),
            sa.Column("stats", sa.Text, nullable=False),
        ),
    }


INDEXES = (
    ("ix_probes_ts", "probes", ["ts"]),  # downsampling selects by age across services
    ("ix_incidents_service_ts", "incidents", ["service", "ts"]),
    ("ix_metric_samples_service_ts", "metric_samples", ["service", "ts"]),
    ("ix_labels_service_prediction", "labels", ["service", "prediction_id"]),
    ("ix_labels_service_ts", "labels", ["service", "ts"]),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns)
    for index, table, columns in INDEXES:
        if table in existing and index in {i["name"] for i in inspector.get_indexes(table)}:
            continue
        op.create_index(index, table, columns)


def downgrade() -> None:
    for index, table, _columns in INDEXES:
        op.drop_index(index, table_name=table)
    for name in reversed(list(_tables())):
        op.drop_table(name)
