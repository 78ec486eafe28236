"""The store's schema under Alembic (vpp.migrations): head is the tables of vpp.store, a store
written before Alembic upgrades with its data kept (``vpp db upgrade``, idempotent), and every
command, the daemon first, refuses an old schema naming the command to run.

Each test runs on SQLite and on PostgreSQL (``store_url``: ids ``[sqlite]``/``[postgres]``).
"""

from __future__ import annotations

import datetime as dt
import pickle
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, select
from typer.testing import CliRunner

from tests.vpp.daemon_support import DAY, make_config
from vpp.cli import app
from vpp.errors import StoreSchemaError
from vpp.migrations import HEAD
from vpp.store import (
    AwardRecord,
    BidRecord,
    DayPlanRecord,
    SettlementRecord,
    Store,
    TelemetryRecord,
    upgrade_store,
)

runner = CliRunner()

T0 = dt.datetime(2025, 5, 8, 0, 0)  # stored naive UTC, as the old UTCDateTime wrote it


# --------------------------------------------------------------------------- old schemas


def _first_release(metadata: sa.MetaData) -> None:
    """The tables as vpp's first release created them (``create_all`` of its models)."""
    sa.Table(
        "parks", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("market", sa.String, nullable=False, index=True),
        sa.Column("timezone", sa.String, nullable=False),
        sa.Column("import_limit_kw", sa.Float, nullable=False),
        sa.Column("export_limit_kw", sa.Float, nullable=False),
        sa.Column("source_file", sa.String, nullable=False),
        sa.Column("spec_json", sa.String, nullable=False),
        sa.Column("enrolled_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "assets", metadata,
        sa.Column("park_id", sa.String, sa.ForeignKey("parks.id"), primary_key=True),
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("adapter_type", sa.String, nullable=False),
        sa.Column("spec_json", sa.String, nullable=False),
    )
    sa.Table(
        "bids", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String, nullable=False, index=True),
        sa.Column("market_id", sa.String, nullable=False, index=True),
        sa.Column("portfolio_id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("delivery_day", sa.Date, nullable=False, index=True),
        sa.Column("submitted_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("curves_json", sa.String, nullable=False),
        sa.UniqueConstraint("idempotency_key"),
    )
    sa.Table(
        "awards", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("bid_id", sa.Integer, sa.ForeignKey("bids.id"), nullable=False, index=True),
        sa.Column("interval_start", sa.DateTime, nullable=False),
        sa.Column("quantity_mw", sa.Float, nullable=False),
        sa.Column("price_per_mwh", sa.Float, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("bid_id", "interval_start"),
    )
    sa.Table(
        "setpoints", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("park_id", sa.String, nullable=False, index=True),
        sa.Column("asset_id", sa.String, nullable=False),
        sa.Column("interval_start", sa.DateTime, nullable=False, index=True),
        sa.Column("power_kw", sa.Float, nullable=False),
        sa.Column("clamped", sa.Boolean, nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "telemetry", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("park_id", sa.String, nullable=False, index=True),
        sa.Column("asset_id", sa.String, nullable=False),
        sa.Column("measured_at", sa.DateTime, nullable=False, index=True),
        sa.Column("power_kw", sa.Float),
        sa.Column("soc", sa.Float),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String),
    )
    sa.Table(
        "settlements", metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("market_id", sa.String, nullable=False),
        sa.Column("park_id", sa.String, nullable=False),
        sa.Column("delivery_day", sa.Date, nullable=False),
        sa.Column("da_revenue", sa.Float, nullable=False),
        sa.Column("rt_revenue", sa.Float, nullable=False),
        sa.Column("degradation_cost", sa.Float, nullable=False),
        sa.Column("net_revenue", sa.Float, nullable=False),
        sa.Column("imbalance_mwh", sa.Float, nullable=False),
        sa.UniqueConstraint("market_id", "park_id", "delivery_day"),
    )


def _daemon_release(metadata: sa.MetaData) -> None:
    """The first daemon release: the above, plus plans as pickles and the daemon's state."""
    _first_release(metadata)
    metadata.tables["telemetry"].append_column(sa.Column("extra_json", sa.String))
    sa.Table(
        "day_plans", metadata,
        sa.Column("idempotency_key", sa.String, primary_key=True),
        sa.Column("market_id", sa.String, nullable=False, index=True),
        sa.Column("delivery_day", sa.Date, nullable=False, index=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("result_pickle", sa.LargeBinary, nullable=False),
    )
    sa.Table(
        "daemon_state", metadata,
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("clock_now", sa.DateTime, nullable=False),
        sa.Column("speed", sa.Float, nullable=False),
        sa.Column("metrics_url", sa.String),
        sa.Column("next_jobs_json", sa.String, nullable=False),
        sa.Column("stopped_at", sa.DateTime),
    )


OLD_SCHEMAS = {"first-release": _first_release, "daemon-release": _daemon_release}


def _old_store(url: str, release: str) -> None:
    """A store as ``release`` left it (no Alembic version), with one row in each table."""
    metadata = sa.MetaData()
    OLD_SCHEMAS[release](metadata)
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    t = metadata.tables
    with engine.begin() as connection:
        connection.execute(t["parks"].insert().values(
            id="jinan-north", name="Jinan North", market="cn-province-a", timezone="Asia/Shanghai",
            import_limit_kw=8000.0, export_limit_kw=5000.0, source_file="parks/jinan-north.toml",
            spec_json="{}", enrolled_at=T0))
        connection.execute(t["assets"].insert().values(
            park_id="jinan-north", id="bess-1", type="battery", adapter_type="simulated", spec_json="{}"))
        # No explicit ids: PostgreSQL's sequences must move on as they did for vpp's own rows.
        bid_id = connection.execute(t["bids"].insert().values(
            idempotency_key="cn-province-a/2025-05-08/vpp", market_id="cn-province-a",
            portfolio_id="vpp", kind="day_ahead", delivery_day=DAY, submitted_at=T0,
            status="accepted", curves_json="[]")).inserted_primary_key[0]
        connection.execute(t["awards"].insert().values(
            bid_id=bid_id, interval_start=T0, quantity_mw=1.5, price_per_mwh=320.0, received_at=T0))
        connection.execute(t["setpoints"].insert().values(
            park_id="jinan-north", asset_id="bess-1", interval_start=T0, power_kw=500.0,
            clamped=False, sent_at=T0))
        connection.execute(t["telemetry"].insert().values(
            park_id="jinan-north", asset_id="bess-1", measured_at=T0, power_kw=498.0,
            soc=0.5, available=True))
        connection.execute(t["settlements"].insert().values(
            market_id="cn-province-a", park_id="jinan-north", delivery_day=DAY,
            da_revenue=100.0, rt_revenue=-2.0, degradation_cost=3.0, net_revenue=95.0,
            imbalance_mwh=0.01))
        if "day_plans" in t:
            connection.execute(t["day_plans"].insert().values(
                idempotency_key="cn-province-a/2025-05-08/vpp", market_id="cn-province-a",
                delivery_day=DAY, created_at=T0, result_pickle=pickle.dumps({"old": "plan"})))
    engine.dispose()


def _schema_diff(store: Store) -> list[object]:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def _version_table(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- tests


def test_a_new_store_is_created_at_head_and_matches_the_tables(store_url: str) -> None:
    store = Store(store_url)
    with store.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == HEAD
    assert _schema_diff(store) == []


@pytest.mark.parametrize("release", list(OLD_SCHEMAS))
def test_an_old_store_upgrades_with_its_data_kept(store_url: str, release: str) -> None:
    _old_store(store_url, release)
    with pytest.raises(StoreSchemaError, match="vpp db upgrade") as refused:
        Store(store_url)
    assert "from before versioned migrations" in str(refused.value)
    assert f"needs revision {HEAD}" in str(refused.value)

    result = runner.invoke(app, ["--log-json", "db", "upgrade", "--database", store_url])
    assert result.exit_code == 0, result.output
    assert f"-> revision {HEAD}" in result.output
    # The log lines (JSON, on the runner's mixed output) say what changed.
    assert ('"store_column_added"' in result.output) == (release == "first-release")  # extra_json
    assert ('"store_pickled_plans_dropped"' in result.output) == (release == "daemon-release")

    store = Store(store_url)
    assert _schema_diff(store) == []
    assert [p.id for p in store.parks()] == ["jinan-north"]
    assert [a.id for a in store.assets("jinan-north")] == ["bess-1"]
    with store.session() as session:
        (bid,) = session.exec(select(BidRecord)).all()
        (award,) = session.exec(select(AwardRecord)).all()
        (reading,) = session.exec(select(TelemetryRecord)).all()
        (settled,) = session.exec(select(SettlementRecord)).all()
        plans = session.exec(select(DayPlanRecord)).all()
    assert (bid.status, bid.delivery_day) == ("accepted", DAY)
    assert award.interval_start == T0.replace(tzinfo=dt.UTC)
    assert (award.quantity_mw, award.price_per_mwh) == (1.5, 320.0)
    assert (reading.power_kw, reading.soc, reading.extra_json) == (498.0, 0.5, None)
    assert settled.net_revenue == 95.0
    # Revision 0004's split: the old real-time total was all imbalance (no real-time bids).
    assert (settled.rt_revenue, settled.imbalance_revenue) == (-2.0, -2.0)
    assert (settled.rt_bid_revenue, settled.clawback_revenue, settled.rt_awarded_mwh) == (0, 0, 0)
    assert plans == []  # pickles are dropped unread; the day falls back (docs/daemon.md)
    # The upgraded store takes new rows in the new column.
    with store.session() as session:
        session.add(TelemetryRecord(park_id="jinan-north", asset_id="bess-1",
                                    measured_at=dt.datetime(2025, 5, 8, 0, 15, tzinfo=dt.UTC),
                                    power_kw=1.0, soc=0.5, available=True, extra_json="{}"))

    again = runner.invoke(app, ["db", "upgrade", "--database", store_url])
    assert again.exit_code == 0, again.output
    assert f"already at revision {HEAD}; nothing to do" in again.output


def test_db_upgrade_of_a_config_creates_a_fresh_store_and_is_idempotent(
    store_url: str, tmp_path: Path
) -> None:
    config = make_config(tmp_path)  # its store is VPP_DATABASE_URL (store_url)
    first = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
    assert first.exit_code == 0, first.output
    assert f"created at revision {HEAD}" in first.output
    second = runner.invoke(app, ["db", "upgrade", "--config", str(config / "vpp.toml")])
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert _schema_diff(Store(store_url)) == []


def test_the_daemon_refuses_an_old_schema_naming_the_command(store_url: str, tmp_path: Path) -> None:
    _old_store(store_url, "daemon-release")
    config = make_config(tmp_path)
    result = runner.invoke(
        app,
        ["run", "--simulate", "--config", str(config), "--first-day", DAY.isoformat(),
         "--days", "1", "--metrics-port", "0"],
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: store ")
    assert "from before versioned migrations" in lines[0]
    assert f"run: vpp db upgrade --config {config}" in lines[0]
    assert "Traceback" not in result.output
    assert not _version_table(store_url)  # refused before anything was written


def test_other_commands_refuse_an_old_schema_too(store_url: str, tmp_path: Path) -> None:
    _old_store(store_url, "first-release")
    config = make_config(tmp_path)
    for command in (["enroll"], ["parks"], ["status"]):
        result = runner.invoke(app, [*command, "--config", str(config)])
        assert result.exit_code == 1, (command, result.output)
        assert f"vpp db upgrade --config {config}" in result.output, command
    assert not _version_table(store_url)


def test_a_store_from_a_newer_vpp_is_refused_and_never_downgraded(store_url: str) -> None:
    Store(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreSchemaError, match="revision 9999, newer than this vpp knows"):
        Store(store_url)
    result = runner.invoke(app, ["db", "upgrade", "--database", store_url])
    assert result.exit_code == 1
    assert "newer than this vpp knows" in result.output
    with pytest.raises(StoreSchemaError):
        upgrade_store(store_url)


def test_db_upgrade_errors_are_one_line_without_the_password() -> None:
    result = runner.invoke(
        app, ["db", "upgrade", "--database", "postgresql://vpp:s3cret-pw@127.0.0.1:1/vpp"]
    )
    assert result.exit_code == 1
    assert "s3cret-pw" not in result.output
    assert result.output.startswith("error: cannot upgrade store postgresql+psycopg://vpp:***@127.0.0.1:1/vpp")
    assert len(result.output.strip().splitlines()) == 1
    both = runner.invoke(app, ["db", "upgrade", "--database", "sqlite://", "--config", "x"])
    assert both.exit_code == 1
    assert "give --config or --database, not both" in both.output


def test_processes_opening_one_fresh_store_at_once_all_get_it_at_head(store_url: str) -> None:
    """The creation lands whole under a lock: none sees half a schema and calls it old."""
    errors: list[BaseException] = []
    start = threading.Barrier(4, timeout=10)

    def open_store() -> None:
        start.wait()
        try:
            Store(store_url).close()
        except BaseException as exc:  # collected and shown below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert _schema_diff(Store(store_url)) == []


def test_db_upgrade_of_a_missing_config_folder_creates_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade", "--config", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope'}: config folder not found" in result.output
    assert not (tmp_path / "test.db").exists()  # VPP_DATABASE_URL's store was not created


def test_a_store_at_0002_upgrades_to_the_token_table_keeping_its_rows(store_url: str) -> None:
    """Revision 0003 adds ``api_tokens`` and touches nothing else."""
    from alembic import command
    from alembic.config import Config

    from vpp.migrations import SCRIPTS

    fresh = Store(store_url)
    with fresh.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        assert MigrationContext.configure(connection).get_current_revision() == "0002"
        assert not sa.inspect(connection).has_table("api_tokens")
        connection.execute(sa.text(
            "INSERT INTO parks (id, name, market, timezone, import_limit_kw, export_limit_kw, "
            "source_file, spec_json, enrolled_at) VALUES ('p', 'P', 'm', 'UTC', 1, 1, 'f', '{}', :t)"
        ), {"t": T0})
    fresh.close()
    with pytest.raises(StoreSchemaError, match="at revision 0002"):
        Store(store_url)
    result = runner.invoke(app, ["db", "upgrade", "--database", store_url])
    assert result.exit_code == 0, result.output
    assert f"revision 0002 -> revision {HEAD}" in result.output
    store = Store(store_url)
    assert [p.id for p in store.parks()] == ["p"]
    assert _schema_diff(store) == []
    token = store.create_token("operator")
    assert store.check_token(token) is not None
    store.close()


def test_a_store_at_0003_upgrades_to_the_settlement_split_keeping_its_rows(store_url: str) -> None:
    """Revision 0004 adds the real-time split columns to ``settlements``: old rows were all
    imbalance (``imbalance_revenue = rt_revenue``), new rows write every column."""
    from alembic import command
    from alembic.config import Config

    from vpp.migrations import SCRIPTS

    fresh = Store(store_url)
    with fresh.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")
        columns = {c["name"] for c in sa.inspect(connection).get_columns("settlements")}
        assert not columns & {"rt_bid_revenue", "imbalance_revenue", "clawback_revenue"}
        connection.execute(sa.text(
            "INSERT INTO settlements (market_id, park_id, delivery_day, da_revenue, rt_revenue, "
            "degradation_cost, net_revenue, imbalance_mwh) "
            "VALUES ('cn-province-a', 'jinan-north', :d, 100.0, -7.5, 3.0, 89.5, 0.25)"
        ), {"d": DAY})
    fresh.close()
    with pytest.raises(StoreSchemaError, match="at revision 0003"):
        Store(store_url)
    result = runner.invoke(app, ["db", "upgrade", "--database", store_url])
    assert result.exit_code == 0, result.output
    assert f"revision 0003 -> revision {HEAD}" in result.output
    store = Store(store_url)
    assert _schema_diff(store) == []
    with store.session() as session:
        (old,) = session.exec(select(SettlementRecord)).all()
        session.add(SettlementRecord(
            market_id="cn-province-a", park_id="jinan-north", delivery_day=DAY + dt.timedelta(days=1),
            da_revenue=50.0, rt_revenue=-1.0, degradation_cost=0.0, net_revenue=49.0,
            imbalance_mwh=0.1, rt_bid_revenue=2.0, imbalance_revenue=-3.0, clawback_revenue=-0.5,
            rt_awarded_mwh=0.02,
        ))
    assert (old.da_revenue, old.rt_revenue, old.net_revenue, old.imbalance_mwh) == (100.0, -7.5, 89.5, 0.25)
    assert (old.imbalance_revenue, old.rt_bid_revenue, old.clawback_revenue) == (-7.5, 0.0, 0.0)
    with store.session() as session:
        new = session.exec(
            select(SettlementRecord).where(SettlementRecord.delivery_day == DAY + dt.timedelta(days=1))
        ).one()
    assert (new.rt_bid_revenue, new.imbalance_revenue, new.clawback_revenue) == (2.0, -3.0, -0.5)
    store.close()


def test_a_store_at_0004_upgrades_to_real_time_bids_keeping_its_rows(store_url: str) -> None:
    """Revision 0005 adds ``rt_bids`` and ``rt_awards``; the day-ahead bids and awards of a
    store at 0004 stay as they were, and real-time bids can be written after the upgrade."""
    from alembic import command
    from alembic.config import Config

    from vpp.migrations import SCRIPTS
    from vpp.runtime.recording import StoreRecorder
    from vpp.store import RtBidRecord
    from vpp.types import BidPoint, RealTimeAward, RealTimeBid

    fresh = Store(store_url)
    with fresh.engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(SCRIPTS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
        tables = set(sa.inspect(connection).get_table_names())
        assert not tables & {"rt_bids", "rt_awards"}
        connection.execute(sa.text(
            "INSERT INTO bids (idempotency_key, market_id, portfolio_id, kind, delivery_day, "
            "submitted_at, status, curves_json) VALUES ('k', 'cn-province-a', 'pf', 'day_ahead', "
            ":d, :t, 'accepted', '{}')"
        ), {"d": DAY, "t": T0})
    fresh.close()
    with pytest.raises(StoreSchemaError, match="at revision 0004"):
        Store(store_url)
    result = runner.invoke(app, ["db", "upgrade", "--database", store_url])
    assert result.exit_code == 0, result.output
    assert f"revision 0004 -> revision {HEAD}" in result.output
    store = Store(store_url)
    assert _schema_diff(store) == []
    with store.session() as session:
        (old,) = session.exec(select(BidRecord)).all()
    assert (old.idempotency_key, old.status, old.delivery_day) == ("k", "accepted", DAY)
    recorder = StoreRecorder(store)
    start = dt.datetime(2016, 1, 12, 8, tzinfo=dt.UTC)
    bid = RealTimeBid("nordpool-dk1", "pf", "mfrr-energy", start, (BidPoint(50.0, 1.0),), "up", start)
    recorder.record_rt_bid(bid, status="accepted", receipt="r1", reason=None)
    recorder.record_rt_awards(bid.idempotency_key, [RealTimeAward("mfrr-energy", "up", start, 1.0)])
    assert recorder.has_bid("k")
    assert recorder.has_bid(bid.idempotency_key)
    assert recorder.rt_awards_for(bid.idempotency_key)[0].price_per_mwh is None
    with store.session() as session:
        assert session.exec(select(RtBidRecord)).one().receipt == "r1"
    store.close()
