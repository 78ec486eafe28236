"""The in-place upgrades vpp made by hand before Alembic, for stores written back then.

Before this revision ``vpp.store`` migrated on every open: it dropped
``day_plans`` while it still held pickles (``result_pickle``: a pickle runs
code when loaded, so they are dropped unread; the plans are derived data and a
day without one falls back as ``docs/daemon.md`` says, its bid is kept) and
added the nullable columns newer versions introduced (``telemetry.extra_json``,
the meter counters). Both are done here once, keeping every other row. A store
created by revision 0001 has neither, so this changes nothing there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = structlog.get_logger("vpp.migrations")

#: Nullable columns added to existing tables by the old in-place upgrade: table -> (column, type).
ADDED_COLUMNS: dict[str, list[tuple[str, sa.types.TypeEngine[Any]]]] = {
    "telemetry": [("extra_json", sa.String())],
}


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if "result_pickle" in _columns("day_plans"):
        rows = op.get_bind().execute(sa.text('SELECT COUNT(*) FROM "day_plans"')).scalar_one()
        op.drop_table("day_plans")
        op.create_table(
            "day_plans",
            sa.Column("idempotency_key", sa.String(), nullable=False),
            sa.Column("market_id", sa.String(), nullable=False),
            sa.Column("delivery_day", sa.Date(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("plan_json", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("idempotency_key"),
        )
        op.create_index("ix_day_plans_delivery_day", "day_plans", ["delivery_day"])
        op.create_index("ix_day_plans_market_id", "day_plans", ["market_id"])
        log.warning("store_pickled_plans_dropped", table="day_plans", rows=rows)
    for table, columns in ADDED_COLUMNS.items():
        present = _columns(table)
        for name, kind in columns:
            if name not in present:
                op.add_column(table, sa.Column(name, kind, nullable=True))
                log.info("store_column_added", table=table, column=name)


def downgrade() -> None:
    """Nothing to undo: the pickles are gone for good and the added columns are nullable."""
