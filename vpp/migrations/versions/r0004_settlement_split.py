"""The real-time split of settlement rows (issue #12): bid, imbalance and claw-back revenue.

Adds to ``settlements`` (``vpp.runtime.settlement``):

- ``rt_bid_revenue``: the real-time award at its clearing price;
- ``imbalance_revenue``: the remaining deviation by the imbalance rule, the
  claw-back included (``rt_revenue`` stays, = ``rt_bid_revenue + imbalance_revenue``);
- ``clawback_revenue``: the deviation-profit claw-back (<= 0);
- ``rt_awarded_mwh``: the real-time award's energy [MWh].

All are NOT NULL with default 0. Rows settled before this revision had no
real-time bids and no claw-back, so their whole ``rt_revenue`` was imbalance:
``imbalance_revenue`` is set to it, the others stay 0. Every row is kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = structlog.get_logger("vpp.migrations")

COLUMNS = ("rt_bid_revenue", "imbalance_revenue", "clawback_revenue", "rt_awarded_mwh")


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("settlements")}
    added = [name for name in COLUMNS if name not in present]
    with op.batch_alter_table("settlements") as batch:
        for name in added:
            batch.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
    if "imbalance_revenue" in added:
        rows = op.get_bind().execute(
            sa.text('UPDATE "settlements" SET "imbalance_revenue" = "rt_revenue"')
        ).rowcount
        log.info("store_settlements_split", table="settlements", rows=rows, columns=added)


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
