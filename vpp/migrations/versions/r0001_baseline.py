"""Baseline: the store's schema as vpp had it when it moved to Alembic.

Each table (with its indexes) is created only if it is missing. On an empty
database that is the whole schema. A store written before vpp used Alembic
holds the tables of the version that created it (the old code only ever
added tables and nullable columns, never changed one): its tables are kept
as they are, with their data, the newer ones are added, and revision 0002
brings the kept ones up to date.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _index(table: str, *columns: str) -> None:
    for column in columns:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def _parks() -> None:
    op.create_table(
        "parks",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("market", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("import_limit_kw", sa.Float(), nullable=False),
        sa.Column("export_limit_kw", sa.Float(), nullable=False),
        sa.Column("source_file", sa.String(), nullable=False),
        sa.Column("spec_json", sa.String(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("parks", "market")


def _assets() -> None:
    op.create_table(
        "assets",
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("adapter_type", sa.String(), nullable=False),
        sa.Column("spec_json", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["park_id"], ["parks.id"]),
        sa.PrimaryKeyConstraint("park_id", "id"),
    )


def _bids() -> None:
    op.create_table(
        "bids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("market_id", sa.String(), nullable=False),
        sa.Column("portfolio_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("delivery_day", sa.Date(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("curves_json", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    _index("bids", "delivery_day", "idempotency_key", "market_id")


def _awards() -> None:
    op.create_table(
        "awards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bid_id", sa.Integer(), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("quantity_mw", sa.Float(), nullable=False),
        sa.Column("price_per_mwh", sa.Float(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["bid_id"], ["bids.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bid_id", "interval_start"),
    )
    _index("awards", "bid_id")


def _setpoints() -> None:
    op.create_table(
        "setpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("asset_id", sa.String(), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("power_kw", sa.Float(), nullable=False),
        sa.Column("clamped", sa.Boolean(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("setpoints", "interval_start", "park_id")


def _telemetry() -> None:
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("asset_id", sa.String(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.Column("power_kw", sa.Float(), nullable=True),
        sa.Column("soc", sa.Float(), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("extra_json", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("telemetry", "measured_at", "park_id")


def _day_plans() -> None:
    op.create_table(
        "day_plans",
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("market_id", sa.String(), nullable=False),
        sa.Column("delivery_day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )
    _index("day_plans", "delivery_day", "market_id")


def _daemon_lock() -> None:
    op.create_table(
        "daemon_lock",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("instance_id", sa.String(), nullable=False),
        sa.Column("hostname", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def _daemon_state() -> None:
    op.create_table(
        "daemon_state",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("clock_now", sa.DateTime(), nullable=False),
        sa.Column("speed", sa.Float(), nullable=False),
        sa.Column("metrics_url", sa.String(), nullable=True),
        sa.Column("next_jobs_json", sa.String(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def _settlements() -> None:
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("market_id", sa.String(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("delivery_day", sa.Date(), nullable=False),
        sa.Column("da_revenue", sa.Float(), nullable=False),
        sa.Column("rt_revenue", sa.Float(), nullable=False),
        sa.Column("degradation_cost", sa.Float(), nullable=False),
        sa.Column("net_revenue", sa.Float(), nullable=False),
        sa.Column("imbalance_mwh", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("market_id", "park_id", "delivery_day"),
    )


def _carbon_intervals() -> None:
    op.create_table(
        "carbon_intervals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("market_id", sa.String(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("delivery_day", sa.Date(), nullable=False),
        sa.Column("interval_start", sa.DateTime(), nullable=False),
        sa.Column("import_mwh", sa.Float(), nullable=False),
        sa.Column("export_mwh", sa.Float(), nullable=False),
        sa.Column("onsite_renewable_mwh", sa.Float(), nullable=False),
        sa.Column("intensity_tco2_per_mwh", sa.Float(), nullable=True),
        sa.Column("intensity_estimated", sa.Boolean(), nullable=False),
        sa.Column("annual_factor_tco2_per_mwh", sa.Float(), nullable=True),
        sa.Column("residual_factor_tco2_per_mwh", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("market_id", "park_id", "interval_start"),
    )
    _index("carbon_intervals", "delivery_day", "interval_start", "park_id")


def _instruments() -> None:
    op.create_table(
        "instruments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("vintage", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("price_per_unit", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=True),
        sa.Column("delivery_start", sa.DateTime(), nullable=True),
        sa.Column("delivery_end", sa.DateTime(), nullable=True),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["park_id"], ["parks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    _index("instruments", "kind", "park_id", "vintage")


def _retirements() -> None:
    op.create_table(
        "retirements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(), nullable=False),
        sa.Column("park_id", sa.String(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["instrument_id"], ["instruments.id"]),
        sa.ForeignKeyConstraint(["park_id"], ["parks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instrument_id", name="uq_retirements_instrument"),
    )
    _index("retirements", "park_id", "period")


#: Tables in creation order (a table after those its foreign keys name).
TABLES: dict[str, Callable[[], None]] = {
    "parks": _parks,
    "assets": _assets,
    "bids": _bids,
    "awards": _awards,
    "setpoints": _setpoints,
    "telemetry": _telemetry,
    "day_plans": _day_plans,
    "daemon_lock": _daemon_lock,
    "daemon_state": _daemon_state,
    "settlements": _settlements,
    "carbon_intervals": _carbon_intervals,
    "instruments": _instruments,
    "retirements": _retirements,
}


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in TABLES.items():
        if name not in present:
            create()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
