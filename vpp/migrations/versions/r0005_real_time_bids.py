"""Real-time bids in the store (issue #12): ``rt_bids`` and ``rt_awards``.

``rt_bids`` holds one row per real-time bid (market, product, period, portfolio,
direction: its idempotency key, unique), written ``submitted`` before it is sent
and ``accepted``/``rejected`` after, with its points and the flexibility curve it
came from. ``rt_awards`` holds its award per settlement interval (price NULL
until published). Adds the tables if missing, changes nothing else: every row of
an older store is kept.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("rt_bids"):
        op.create_table(
            "rt_bids",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("idempotency_key", sa.String(), nullable=False),
            sa.Column("market_id", sa.String(), nullable=False),
            sa.Column("portfolio_id", sa.String(), nullable=False),
            sa.Column("product_id", sa.String(), nullable=False),
            sa.Column("period_start", sa.DateTime(), nullable=False),
            sa.Column("direction", sa.String(), nullable=False),
            sa.Column("points_json", sa.Text(), nullable=False),
            sa.Column("curve_json", sa.Text(), nullable=True),
            sa.Column("status", sa.String(), nullable=False),
            sa.Column("receipt", sa.String(), nullable=True),
            sa.Column("reason", sa.String(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("idempotency_key"),
        )
        op.create_index("ix_rt_bids_idempotency_key", "rt_bids", ["idempotency_key"])
        op.create_index("ix_rt_bids_market_id", "rt_bids", ["market_id"])
        op.create_index("ix_rt_bids_period_start", "rt_bids", ["period_start"])
    if not inspector.has_table("rt_awards"):
        op.create_table(
            "rt_awards",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("idempotency_key", sa.String(), nullable=False),
            sa.Column("interval_start", sa.DateTime(), nullable=False),
            sa.Column("quantity_mw", sa.Float(), nullable=False),
            sa.Column("price_per_mwh", sa.Float(), nullable=True),
            sa.Column("received_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("idempotency_key", "interval_start"),
        )
        op.create_index("ix_rt_awards_idempotency_key", "rt_awards", ["idempotency_key"])


def downgrade() -> None:
    op.drop_index("ix_rt_awards_idempotency_key", table_name="rt_awards")
    op.drop_table("rt_awards")
    op.drop_index("ix_rt_bids_period_start", table_name="rt_bids")
    op.drop_index("ix_rt_bids_market_id", table_name="rt_bids")
    op.drop_index("ix_rt_bids_idempotency_key", table_name="rt_bids")
    op.drop_table("rt_bids")
