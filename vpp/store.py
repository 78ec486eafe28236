"""Persistence with SQLModel: SQLite by default, PostgreSQL (psycopg 3) or any SQLAlchemy URL.

Every write that belongs together happens in one transaction: enrolment of
a folder of parks either lands whole or not at all. Timestamps are stored
in UTC and come back tz-aware; writing a naive timestamp is a ``TypeError``.
The tables below are the schema's head; its revisions are Alembic scripts in
:mod:`vpp.migrations` (a change here needs a new revision, ``docs/store.md``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import socket
import uuid
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import Column, DateTime, Text, UniqueConstraint, event, or_
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select

from vpp.carbon import (
    INSTRUMENT_KINDS,
    Instrument,
    InstrumentKind,
    LedgerEntry,
    Retirement,
    check_period,
)
from vpp.config.models import ParkConfig
from vpp.errors import InputError, StoreError, StoreLockedError, StoreSchemaError
from vpp.migrations import HEAD as SCHEMA_HEAD
from vpp.migrations import SchemaState, schema_state
from vpp.migrations import upgrade as upgrade_schema

log = structlog.get_logger(__name__)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A DateTime column that only accepts aware values and returns aware UTC values."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"naive datetime {value} cannot be stored; timestamps must be tz-aware")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


def _utc_column(**kwargs: Any) -> Any:
    return Field(sa_column=Column(UTCDateTime(), **kwargs))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- tables


class ParkRecord(SQLModel, table=True):
    __tablename__ = "parks"

    id: str = Field(primary_key=True)
    name: str
    market: str = Field(index=True)
    timezone: str
    import_limit_kw: float
    export_limit_kw: float
    source_file: str
    spec_json: str
    enrolled_at: dt.datetime = _utc_column(nullable=False)


class AssetRecord(SQLModel, table=True):
    __tablename__ = "assets"

    park_id: str = Field(primary_key=True, foreign_key="parks.id")
    id: str = Field(primary_key=True)
    type: str
    adapter_type: str
    spec_json: str


class BidRecord(SQLModel, table=True):
    """One submitted bid (a whole day's curves, or one real-time interval's)."""

    __tablename__ = "bids"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True)
    market_id: str = Field(index=True)
    portfolio_id: str
    kind: str  # "day_ahead" | "real_time"
    delivery_day: dt.date = Field(index=True)
    submitted_at: dt.datetime = _utc_column(nullable=False)
    status: str  # "submitted" | "accepted" | "rejected" | "missed"
    reason: str | None = None
    curves_json: str


class AwardRecord(SQLModel, table=True):
    __tablename__ = "awards"
    __table_args__ = (UniqueConstraint("bid_id", "interval_start"),)

    id: int | None = Field(default=None, primary_key=True)
    bid_id: int = Field(foreign_key="bids.id", index=True)
    interval_start: dt.datetime = _utc_column(nullable=False)
    quantity_mw: float  # > 0 sold, < 0 bought (vpp.units)
    price_per_mwh: float
    received_at: dt.datetime = _utc_column(nullable=False)


class RtBidRecord(SQLModel, table=True):
    """One real-time bid: a product's period, one direction (``vpp.types.RealTimeBid``).

    Written ``submitted`` before it is sent, then ``accepted`` or ``rejected``
    (the operator's write-ahead, as for day-ahead bids). ``points_json`` is the
    bid's wire form (:func:`vpp.wire.rt_bid_to_json`); ``curve_json`` the
    flexibility curve it came from, so a restart splits its awards to the parks
    as the first process would have.
    """

    __tablename__ = "rt_bids"
    __table_args__ = (UniqueConstraint("idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True)
    market_id: str = Field(index=True)
    portfolio_id: str
    product_id: str
    period_start: dt.datetime = _utc_column(nullable=False, index=True)
    direction: str  # "both" | "up" | "down"
    points_json: str = Field(sa_column=Column(Text, nullable=False))
    curve_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str  # "submitted" | "accepted" | "rejected"
    receipt: str | None = None
    reason: str | None = None
    created_at: dt.datetime = _utc_column(nullable=False)


class RtAwardRecord(SQLModel, table=True):
    """A real-time bid's award in one settlement interval; the price stays NULL until published."""

    __tablename__ = "rt_awards"
    __table_args__ = (UniqueConstraint("idempotency_key", "interval_start"),)

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(index=True)  # the rt_bids row's
    interval_start: dt.datetime = _utc_column(nullable=False)
    quantity_mw: float  # > 0 sold, < 0 bought (vpp.units)
    price_per_mwh: float | None = None
    received_at: dt.datetime = _utc_column(nullable=False)


class SetpointRecord(SQLModel, table=True):
    __tablename__ = "setpoints"

    id: int | None = Field(default=None, primary_key=True)
    park_id: str = Field(index=True)
    asset_id: str
    interval_start: dt.datetime = _utc_column(nullable=False, index=True)
    power_kw: float
    clamped: bool = False
    sent_at: dt.datetime = _utc_column(nullable=False)


class TelemetryRecord(SQLModel, table=True):
    __tablename__ = "telemetry"

    id: int | None = Field(default=None, primary_key=True)
    park_id: str = Field(index=True)
    asset_id: str
    measured_at: dt.datetime = _utc_column(nullable=False, index=True)
    power_kw: float | None
    soc: float | None
    available: bool
    reason: str | None = None
    extra_json: str | None = None  # meter counters etc. (Telemetry.extra), JSON object


class DayPlanRecord(SQLModel, table=True):
    """What the strategy decided with a day-ahead bid, kept so a restart can dispatch it.

    ``plan_json`` is the strategy's :class:`strategies.DayAheadResult` (bid
    curves, how awards split back to parks and assets, expected schedule) as
    versioned JSON (:mod:`vpp.runtime.plan_json`), written before the bid is sent.
    It is data, never code: a row that does not parse strictly is refused
    and the daemon treats the day's plan as missing (see ``docs/daemon.md``).
    """

    __tablename__ = "day_plans"

    idempotency_key: str = Field(primary_key=True)
    market_id: str = Field(index=True)
    delivery_day: dt.date = Field(index=True)
    created_at: dt.datetime = _utc_column(nullable=False)
    plan_json: str = Field(sa_column=Column(Text, nullable=False))


class DaemonLockRecord(SQLModel, table=True):
    """The single-writer lease: at most one daemon writes a store (see :class:`StoreLock`)."""

    __tablename__ = "daemon_lock"

    id: str = Field(primary_key=True)  # "daemon"
    instance_id: str  # random per daemon start; the lease's identity
    hostname: str
    pid: int
    started_at: dt.datetime = _utc_column(nullable=False)
    heartbeat_at: dt.datetime = _utc_column(nullable=False)  # wall clock, renewed by the holder


class DaemonStateRecord(SQLModel, table=True):
    """The running daemon's heartbeat and job plan, for ``vpp status``."""

    __tablename__ = "daemon_state"

    id: str = Field(primary_key=True)  # "daemon"
    mode: str  # "live" | "simulate"
    pid: int
    started_at: dt.datetime = _utc_column(nullable=False)
    heartbeat_at: dt.datetime = _utc_column(nullable=False)  # wall clock
    clock_now: dt.datetime = _utc_column(nullable=False)  # the daemon's clock (simulated or wall)
    speed: float = 1.0
    metrics_url: str | None = None
    next_jobs_json: str = "[]"  # [{"run_at", "kind", "market", "delivery_day", "interval_start"}]
    stopped_at: dt.datetime | None = _utc_column(nullable=True)


class SettlementRecord(SQLModel, table=True):
    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("market_id", "park_id", "delivery_day"),)

    id: int | None = Field(default=None, primary_key=True)
    market_id: str
    park_id: str
    delivery_day: dt.date
    da_revenue: float
    #: rt_bid_revenue + imbalance_revenue (the real-time total).
    rt_revenue: float
    degradation_cost: float
    net_revenue: float
    #: The remaining deviation (actual - DA award - RT award), summed in magnitude [MWh].
    imbalance_mwh: float
    # Revision 0004: the real-time split (vpp.runtime.settlement); rows settled before it
    # have rt_bid_revenue 0 and imbalance_revenue = rt_revenue (no real-time bids existed).
    rt_bid_revenue: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    imbalance_revenue: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    #: The deviation-profit claw-back inside imbalance_revenue (<= 0).
    clawback_revenue: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    rt_awarded_mwh: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})


class CarbonIntervalRecord(SQLModel, table=True):
    """One park's metered grid flows and grid factors of one interval (the carbon books).

    Written by the daemon with each settled day (:mod:`vpp.runtime.carbon_budget`),
    read by ``vpp carbon report``.
    """

    __tablename__ = "carbon_intervals"
    __table_args__ = (UniqueConstraint("market_id", "park_id", "interval_start"),)

    id: int | None = Field(default=None, primary_key=True)
    market_id: str
    park_id: str = Field(index=True)
    delivery_day: dt.date = Field(index=True)
    interval_start: dt.datetime = _utc_column(nullable=False, index=True)
    import_mwh: float
    export_mwh: float
    onsite_renewable_mwh: float
    intensity_tco2_per_mwh: float | None
    intensity_estimated: bool
    annual_factor_tco2_per_mwh: float | None
    residual_factor_tco2_per_mwh: float | None


class InstrumentRecord(SQLModel, table=True):
    """A certificate, green-power contract or offset in the ledger (:class:`vpp.carbon.Instrument`)."""

    __tablename__ = "instruments"

    id: str = Field(primary_key=True)  # the registry's id: unique across kinds
    kind: str = Field(index=True)  # "gec" | "green_power" | "ccer"
    vintage: int = Field(index=True)
    quantity: float  # in ``unit``
    unit: str  # "MWh" (gec, green_power) | "tCO2" (ccer)
    price_per_unit: float  # [currency/unit]
    currency: str
    source: str
    park_id: str | None = Field(default=None, foreign_key="parks.id", index=True)  # None: any park
    delivery_start: dt.datetime | None = _utc_column(nullable=True)
    delivery_end: dt.datetime | None = _utc_column(nullable=True)
    imported_at: dt.datetime = _utc_column(nullable=False)


class RetirementRecord(SQLModel, table=True):
    """An instrument retired, whole, against one park's emissions of one month.

    ``instrument_id`` is unique: the database itself refuses a second
    retirement, so two writers racing past the check cannot both land.
    """

    __tablename__ = "retirements"
    __table_args__ = (UniqueConstraint("instrument_id", name="uq_retirements_instrument"),)

    id: int | None = Field(default=None, primary_key=True)
    instrument_id: str = Field(foreign_key="instruments.id")
    park_id: str = Field(foreign_key="parks.id", index=True)
    period: str = Field(index=True)  # "YYYY-MM"
    quantity: float  # the instrument's, in ``unit``
    unit: str
    retired_at: dt.datetime = _utc_column(nullable=False)
    note: str = ""


class ApiTokenRecord(SQLModel, table=True):
    """A bearer token of the HTTP API (:mod:`vpp.web`), stored as its SHA-256, never in clear.

    ``role`` is ``operator`` (every park) or ``owner`` (only ``park_id``).
    """

    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True)  # the token's public part: vpp_<id>_<secret>
    token_sha256: str
    role: str  # "operator" | "owner"
    park_id: str | None = None
    created_at: dt.datetime = _utc_column(nullable=False)
    revoked_at: dt.datetime | None = _utc_column(nullable=True)


#: The roles of an API token.
TOKEN_ROLES = ("operator", "owner")


def _token_hash(token: str) -> str:
    # The secret is 32 random bytes: a plain SHA-256 cannot be brute-forced, so no slow KDF.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- store


def _one_line(exc: SQLAlchemyError) -> str:
    """The database's own message, without SQLAlchemy's statement dump and help link."""
    orig = getattr(exc, "orig", None)
    text_ = f"{type(orig).__name__}: {orig}" if orig is not None else str(exc).split("\n")[0]
    return " ".join(text_.split())


def shown_url(url: str) -> str:
    """``url`` with its password hidden, or a stand-in if it does not even parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _engine_url(url: str) -> str:
    """``url`` with PostgreSQL's driver made explicit: ``postgresql://`` means psycopg 3.

    SQLAlchemy reads a bare ``postgresql://`` as psycopg2, which vpp does not
    install; the ``psycopg`` (3) driver is vpp's dependency. A URL naming its
    driver (``postgresql+psycopg2://``) is kept as given.
    """
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def create_store_engine(url: str) -> Engine:
    """The engine of a store URL, or one-line :class:`StoreError` (password hidden)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # A server-side store may drop idle connections or restart: test each before use.
    options = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        engine = create_engine(_engine_url(url), **options)
    except SQLAlchemyError as exc:  # not a URL, or an unknown database kind
        raise StoreError(
            f"cannot open store {shown_url(url)}: {_one_line(exc)}; "
            "check [store] url or VPP_DATABASE_URL (e.g. sqlite:///var/vpp.db)"
        ) from None
    except ImportError as exc:  # the URL names a driver that is not installed
        raise StoreError(
            f"cannot open store {shown_url(url)}: database driver {exc.name!r} is not "
            f"installed; install it (pip install {exc.name}) or use another store URL"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upgrade_store(url: str) -> tuple[SchemaState, SchemaState]:
    """Bring the store at ``url`` to this vpp's schema (``vpp db upgrade``), keeping its data.

    Returns the schema states before and after; idempotent. A store that a
    newer vpp upgraded is refused (:class:`StoreSchemaError`), never downgraded.
    """
    engine = create_store_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        before, after = upgrade_schema(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade store {shown}: {_one_line(exc)}; nothing changed") from exc
    finally:
        engine.dispose()
    if after.kind == "newer":
        raise StoreSchemaError(_newer_message(shown, after))
    return before, after


def _newer_message(shown: str, state: SchemaState) -> str:
    return (
        f"store {shown}: schema is {state.describe()}, newer than this vpp knows "
        f"(its newest is {SCHEMA_HEAD}); a newer vpp upgraded it: run that version or use another store"
    )


#: What :class:`Store` tells to run on an old schema when its caller gives nothing better.
UPGRADE_COMMAND = "vpp db upgrade --database URL"


class Store:
    """The database: one engine, short transactions, typed records.

    Opening checks the schema (:mod:`vpp.migrations`): an empty database is
    created at the current revision, a store at it opens, and one at an older
    revision (or written before vpp versioned its schema) or a newer one is
    refused with :class:`StoreSchemaError`, naming ``upgrade_command`` to run.
    """

    def __init__(self, url: str, *, upgrade_command: str = UPGRADE_COMMAND) -> None:
        self.url = url
        self.engine: Engine = create_store_engine(url)
        # Pooled connections are closed when the store goes (psycopg warns about a
        # connection dropped open); also at exit. Engine users past that reconnect.
        self._finalizer = weakref.finalize(self, self.engine.dispose)
        try:
            state = schema_state(self.engine)
            if state.kind == "empty":
                state = self._create()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.safe_url}: {_one_line(exc)}") from exc
        if state.kind == "old":
            raise StoreSchemaError(
                f"store {self.safe_url}: schema is {state.describe()}, this vpp needs revision "
                f"{SCHEMA_HEAD}; back the store up, then run: {upgrade_command}"
            )
        if state.kind == "newer":
            raise StoreSchemaError(_newer_message(self.safe_url, state))

    def _create(self) -> SchemaState:
        """Create an empty store at head; another process creating it meanwhile is fine.

        PostgreSQL serialises the two under the upgrade's advisory lock; on
        SQLite the loser's ``CREATE TABLE`` fails, and the store it then finds
        at head is the one the winner made.
        """
        try:
            return upgrade_schema(self.engine)[1]
        except SQLAlchemyError:
            state = schema_state(self.engine)
            if state.kind != "current":
                raise
            return state

    def close(self) -> None:
        """Close the pooled connections now (they also close when the store is collected)."""
        self._finalizer()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work commits at the end, or rolls back entirely on error.

        Objects stay readable after the commit (``expire_on_commit=False``).
        """
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise StoreError(
                    f"store {self.safe_url}: transaction failed: {_one_line(exc)}"
                ) from exc
            except BaseException:
                session.rollback()
                raise

    def enroll(self, parks: Iterable[tuple[ParkConfig, Path]]) -> int:
        """Insert or replace parks and their assets in one transaction.

        Assets no longer listed in a park's file are removed. Returns the
        number of parks written.
        """
        parks = list(parks)
        now = utcnow()
        with self.session() as session:
            for park, source in parks:
                session.exec(delete(AssetRecord).where(AssetRecord.park_id == park.id))  # type: ignore[arg-type]
                record = session.get(ParkRecord, park.id) or ParkRecord(
                    id=park.id,
                    name="",
                    market="",
                    timezone="",
                    import_limit_kw=0,
                    export_limit_kw=0,
                    source_file="",
                    spec_json="",
                    enrolled_at=now,
                )
                record.name = park.name
                record.market = park.market
                record.timezone = park.timezone
                record.import_limit_kw = park.grid.import_limit_kw
                record.export_limit_kw = park.grid.export_limit_kw
                record.source_file = str(source)
                record.spec_json = park.model_dump_json()
                record.enrolled_at = now
                session.add(record)
                session.flush()
                for asset in park.assets:
                    session.add(
                        AssetRecord(
                            park_id=park.id,
                            id=asset.id,
                            type=asset.type,
                            adapter_type=asset.adapter.type,
                            spec_json=asset.model_dump_json(),
                        )
                    )
        for park, _ in parks:
            log.info("park_enrolled", park=park.id, market=park.market, assets=len(park.assets))
        return len(parks)

    def parks(self) -> list[ParkRecord]:
        with Session(self.engine) as session:
            return list(session.exec(select(ParkRecord).order_by(ParkRecord.id)))

    def assets(self, park_id: str | None = None) -> list[AssetRecord]:
        with Session(self.engine) as session:
            query = select(AssetRecord).order_by(AssetRecord.park_id, AssetRecord.id)
            if park_id is not None:
                query = query.where(AssetRecord.park_id == park_id)
            return list(session.exec(query))

    def park_config(self, park_id: str) -> ParkConfig:
        with Session(self.engine) as session:
            record = session.get(ParkRecord, park_id)
        if record is None:
            raise StoreError(f"park {park_id!r} is not enrolled")
        return ParkConfig.model_validate(json.loads(record.spec_json))

    # ----------------------------------------------------------------------- API tokens

    def create_token(self, role: str, park_id: str | None = None) -> str:
        """A new API token for ``role`` (an owner's bound to ``park_id``); returned once, stored hashed.

        Raises :class:`InputError` for an unknown role, an owner without a park or an
        operator with one.
        """
        if role not in TOKEN_ROLES:
            raise InputError(f"token role {role!r} is unknown; choose one of {', '.join(TOKEN_ROLES)}")
        if role == "owner" and not park_id:
            raise InputError("an owner token needs --park PARK (the park it may see and change)")
        if role == "operator" and park_id:
            raise InputError(f"an operator token sees every park; drop --park {park_id}")
        ident = secrets.token_hex(6)
        token = f"vpp_{ident}_{secrets.token_urlsafe(32)}"
        with self.session() as session:
            session.add(
                ApiTokenRecord(
                    id=ident, token_sha256=_token_hash(token), role=role, park_id=park_id, created_at=utcnow()
                )
            )
        log.info("api_token_created", credential_id=ident, role=role, park=park_id)
        return token

    def tokens(self) -> list[ApiTokenRecord]:
        """Every API token record (ids, roles, parks; hashes only), by creation."""
        with Session(self.engine) as session:
            return list(session.exec(select(ApiTokenRecord).order_by(ApiTokenRecord.created_at)))  # type: ignore[arg-type]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token by its id (the part after ``vpp_``); unknown ids are an :class:`InputError`."""
        with self.session() as session:
            record = session.get(ApiTokenRecord, token_id)
            if record is None:
                raise InputError(f"token id {token_id!r} is unknown; see vpp token list")
            if record.revoked_at is None:
                record.revoked_at = utcnow()
                session.add(record)
        log.info("api_token_revoked", credential_id=token_id)

    def check_token(self, token: str) -> ApiTokenRecord | None:
        """The unrevoked token record matching ``token``, or ``None``."""
        parts = token.split("_")
        if len(parts) < 3 or parts[0] != "vpp":
            return None
        with Session(self.engine) as session:
            record = session.get(ApiTokenRecord, parts[1])
        if record is None or record.revoked_at is not None:
            return None
        if not hmac.compare_digest(record.token_sha256, _token_hash(token)):
            return None
        return record

    # ----------------------------------------------------------------------- reads for the API

    def rows(
        self,
        table: type[SQLModel],
        *,
        time_column: str,
        park_ids: Sequence[str] | None = None,
        start: dt.datetime | dt.date | None = None,
        end: dt.datetime | dt.date | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[Any]:
        """Rows of ``table`` with ``start <= time_column < end``, oldest first, one page.

        ``park_ids`` keeps the rows of those parks (the table needs a ``park_id``).
        """
        column = getattr(table, time_column)
        query = select(table)
        if park_ids is not None:
            query = query.where(table.park_id.in_(list(park_ids)))  # type: ignore[attr-defined]
        if start is not None:
            query = query.where(column >= start)
        if end is not None:
            query = query.where(column < end)
        query = query.order_by(column, table.id).offset(offset).limit(limit)  # type: ignore[attr-defined]
        with Session(self.engine) as session:
            return list(session.exec(query))

    def bid_awards(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[tuple[AwardRecord, BidRecord]]:
        """Awards with their bid, by interval, one page."""
        query = select(AwardRecord, BidRecord).join(BidRecord, AwardRecord.bid_id == BidRecord.id)  # type: ignore[arg-type]
        if start is not None:
            query = query.where(AwardRecord.interval_start >= start)
        if end is not None:
            query = query.where(AwardRecord.interval_start < end)
        query = query.order_by(AwardRecord.interval_start, AwardRecord.id).offset(offset).limit(limit)  # type: ignore[arg-type]
        with Session(self.engine) as session:
            return [(award, bid) for award, bid in session.exec(query)]

    def rt_bids(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        product_id: str | None = None,
        market_ids: Sequence[str] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[RtBidRecord]:
        """Real-time bids with ``start <= period_start < end`` (of one product, of some
        markets, when given), by period, one page."""
        query = _rt_filters(
            select(RtBidRecord), RtBidRecord.period_start, start, end, product_id, market_ids
        )
        query = query.order_by(RtBidRecord.period_start, RtBidRecord.id).offset(offset).limit(limit)
        with Session(self.engine) as session:
            return list(session.exec(query))

    def rt_bid_awards(
        self,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        product_id: str | None = None,
        market_ids: Sequence[str] | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[tuple[RtAwardRecord, RtBidRecord]]:
        """Real-time awards with ``start <= interval_start < end`` and their bid, by interval, one page."""
        query = select(RtAwardRecord, RtBidRecord).join(
            RtBidRecord, RtAwardRecord.idempotency_key == RtBidRecord.idempotency_key  # type: ignore[arg-type]
        )
        query = _rt_filters(query, RtAwardRecord.interval_start, start, end, product_id, market_ids)
        query = query.order_by(RtAwardRecord.interval_start, RtAwardRecord.id).offset(offset).limit(limit)
        with Session(self.engine) as session:
            return [(award, bid) for award, bid in session.exec(query)]

    # ----------------------------------------------------------------------- carbon ledger

    def add_instruments(self, instruments: Iterable[Instrument]) -> dict[str, int]:
        """Write certificates, contracts and offsets to the ledger in one transaction.

        Refused whole (:class:`InputError`, nothing written) when an id appears
        twice in ``instruments`` or is already in the ledger, or when an
        instrument names a park that is not enrolled. Returns the number
        written per kind (every kind of :data:`INSTRUMENT_KINDS`, zeros included).
        """
        instruments = list(instruments)
        if not instruments:
            raise InputError("no instruments to import; give at least one")
        counts = Counter(i.id for i in instruments)
        doubled = sorted(ident for ident, n in counts.items() if n > 1)
        if doubled:
            raise InputError(f"instrument id(s) {_names(doubled)} given more than once; every id once; nothing imported")
        now = utcnow()
        with self.session() as session:
            present = {r.id: r for r in _records_by_id(session, InstrumentRecord, list(counts))}
            if present:
                first = present[min(present)]
                raise InputError(
                    f"instrument id(s) {_names(sorted(present))} already in the ledger "
                    f"(e.g. {first.id!r} imported {first.imported_at.isoformat(timespec='seconds')}); "
                    "an instrument is imported once; remove those rows; nothing imported"
                )
            parks = set(session.exec(select(ParkRecord.id)))
            unknown = sorted({i.park_id for i in instruments if i.park_id is not None} - parks)
            if unknown:
                owners = sorted(i.id for i in instruments if i.park_id in unknown)
                raise InputError(
                    f"park(s) {_names(unknown)} not enrolled (named by instrument(s) {_names(owners)}); "
                    "enroll the park first (vpp enroll) or leave park_id empty; nothing imported"
                )
            for instrument in instruments:
                session.add(
                    InstrumentRecord(
                        id=instrument.id,
                        kind=instrument.kind,
                        vintage=instrument.vintage,
                        quantity=instrument.quantity,
                        unit=instrument.unit,
                        price_per_unit=instrument.price_per_unit,
                        currency=instrument.currency,
                        source=instrument.source,
                        park_id=instrument.park_id,
                        delivery_start=instrument.delivery_start,
                        delivery_end=instrument.delivery_end,
                        imported_at=now,
                    )
                )
            try:
                session.flush()
            except IntegrityError as exc:  # another import landed the same id meanwhile
                raise StoreError(
                    f"store {self.safe_url}: import refused by the database ({_one_line(exc)}); "
                    "another import wrote some of these ids meanwhile; nothing imported"
                ) from exc
        written: dict[str, int] = dict.fromkeys(INSTRUMENT_KINDS, 0)
        written.update(Counter(i.kind for i in instruments))
        log.info("instruments_imported", store=self.safe_url, **written)
        return written

    def instruments(
        self,
        *,
        kind: str | None = None,
        park_id: str | None = None,
        vintage: int | None = None,
        retired: bool | None = None,
    ) -> list[LedgerEntry]:
        """The ledger's instruments, by id, with their retirement if any.

        ``park_id`` selects those belonging to the park or retired against it
        (an instrument without a park is anybody's until retired); ``retired``
        True/False selects retired/unretired ones; ``None`` filters nothing.
        """
        query = select(InstrumentRecord, RetirementRecord).outerjoin(
            RetirementRecord,
            RetirementRecord.instrument_id == InstrumentRecord.id,  # type: ignore[arg-type]
        )
        if kind is not None:
            query = query.where(InstrumentRecord.kind == kind)
        if vintage is not None:
            query = query.where(InstrumentRecord.vintage == vintage)
        if park_id is not None:
            query = query.where(
                or_(InstrumentRecord.park_id == park_id, RetirementRecord.park_id == park_id)  # type: ignore[arg-type]
            )
        if retired is True:
            query = query.where(RetirementRecord.id.is_not(None))  # type: ignore[union-attr]
        elif retired is False:
            query = query.where(RetirementRecord.id.is_(None))  # type: ignore[union-attr]
        with Session(self.engine) as session:
            rows = list(session.exec(query.order_by(InstrumentRecord.id)))
        return [_ledger_entry(instrument, retirement) for instrument, retirement in rows]

    def retire(
        self, park_id: str, period: str, instrument_ids: Iterable[str], *, note: str = ""
    ) -> list[LedgerEntry]:
        """Retire instruments, each whole, against ``park_id``'s emissions of ``period`` (YYYY-MM).

        One transaction: every id is retired or none is. Refused
        (:class:`InputError`, ledger unchanged) when the period is not a month,
        the park is not enrolled, an id is not in the ledger, is already retired
        (the message names it and the park and period it went to), belongs to
        another park, or has a vintage after the period's year. The
        unique ``retirements.instrument_id`` makes the database refuse a second
        retirement that raced past these checks. Returns the retired entries.
        """
        check_period(period)
        ids = list(instrument_ids)
        if not ids:
            raise InputError("no instrument ids given; name at least one to retire")
        doubled = sorted(ident for ident, n in Counter(ids).items() if n > 1)
        if doubled:
            raise InputError(f"instrument id(s) {_names(doubled)} given more than once; nothing retired")
        now = utcnow()
        with self.session() as session:
            if session.get(ParkRecord, park_id) is None:
                raise InputError(f"park {park_id!r} is not enrolled; enroll it first (vpp enroll); nothing retired")
            records = {r.id: r for r in _records_by_id(session, InstrumentRecord, ids)}
            unknown = [ident for ident in ids if ident not in records]
            if unknown:
                raise InputError(
                    f"instrument(s) {_names(unknown)} not in the ledger; import them first "
                    "(vpp carbon import-certificates); nothing retired"
                )
            done = _retirements_of(session, ids)
            if done:
                raise InputError(_already_retired(done[0], len(done)))
            foreign = [records[i] for i in ids if records[i].park_id not in (None, park_id)]
            if foreign:
                raise InputError(
                    f"instrument {foreign[0].id!r} belongs to park {foreign[0].park_id!r}, not {park_id!r}"
                    + (f" (and {len(foreign) - 1} more of other parks)" if len(foreign) > 1 else "")
                    + "; nothing retired"
                )
            year = int(period[:4])
            late = [records[i] for i in ids if records[i].vintage > year]
            if late:
                raise InputError(
                    f"instrument {late[0].id!r}: vintage {late[0].vintage} is after period {period}; "
                    "a certificate or offset cannot cover an earlier year's emissions; nothing retired"
                )
            retirements = [
                RetirementRecord(
                    instrument_id=ident,
                    park_id=park_id,
                    period=period,
                    quantity=records[ident].quantity,
                    unit=records[ident].unit,
                    retired_at=now,
                    note=note,
                )
                for ident in ids
            ]
            session.add_all(retirements)
            try:
                session.flush()
            except IntegrityError as exc:  # another writer retired one of them since the check
                session.rollback()
                done = _retirements_of(session, ids)
                if done:
                    raise InputError(_already_retired(done[0], len(done))) from exc
                raise StoreError(
                    f"store {self.safe_url}: retirement refused by the database: {_one_line(exc)}; nothing retired"
                ) from exc
        log.info("instruments_retired", park=park_id, period=period, instruments=len(ids))
        return [_ledger_entry(records[r.instrument_id], r) for r in retirements]

    def record_carbon_intervals(
        self, market_id: str, day: dt.date, rows: Sequence[CarbonIntervalRecord]
    ) -> None:
        """Replace the market's carbon interval rows of ``day`` by ``rows`` (one transaction)."""
        with self.session() as session:
            old = session.exec(
                select(CarbonIntervalRecord).where(
                    CarbonIntervalRecord.market_id == market_id,
                    CarbonIntervalRecord.delivery_day == day,
                )
            )
            for record in old:
                session.delete(record)
            session.flush()
            session.add_all(list(rows))

    def carbon_intervals(
        self, park_id: str, first: dt.date, last: dt.date
    ) -> list[CarbonIntervalRecord]:
        """The park's carbon interval rows of delivery days ``first`` .. ``last``, by interval."""
        query = (
            select(CarbonIntervalRecord)
            .where(
                CarbonIntervalRecord.park_id == park_id,
                CarbonIntervalRecord.delivery_day >= first,
                CarbonIntervalRecord.delivery_day <= last,
            )
            .order_by(CarbonIntervalRecord.interval_start)  # type: ignore[arg-type]
        )
        with Session(self.engine) as session:
            return list(session.exec(query))

    def retirements(
        self, park_id: str | None = None, *, first: str | None = None, last: str | None = None
    ) -> list[LedgerEntry]:
        """Retired instruments with their retirement, by period then id.

        ``park_id`` selects one park; ``first``/``last`` (YYYY-MM, inclusive)
        bound the periods.
        """
        query = select(InstrumentRecord, RetirementRecord).join(
            RetirementRecord,
            RetirementRecord.instrument_id == InstrumentRecord.id,  # type: ignore[arg-type]
        )
        if park_id is not None:
            query = query.where(RetirementRecord.park_id == park_id)
        if first is not None:
            query = query.where(RetirementRecord.period >= check_period(first, "first"))
        if last is not None:
            query = query.where(RetirementRecord.period <= check_period(last, "last"))
        if first is not None and last is not None and first > last:
            raise InputError(f"first period {first} is after last period {last}; give first <= last")
        with Session(self.engine) as session:
            rows = list(session.exec(query.order_by(RetirementRecord.period, InstrumentRecord.id)))
        return [_ledger_entry(instrument, retirement) for instrument, retirement in rows]


# --------------------------------------------------------------------------- ledger helpers

_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


def _names(ids: list[str], shown: int = 5) -> str:
    """``'a', 'b'`` and, past ``shown``, how many more."""
    head = ", ".join(repr(i) for i in ids[:shown])
    return head + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _records_by_id(session: Session, table: type[InstrumentRecord], ids: list[str]) -> list[InstrumentRecord]:
    found: list[InstrumentRecord] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        found += session.exec(select(table).where(table.id.in_(chunk)))  # type: ignore[attr-defined]
    return found


def _retirements_of(session: Session, ids: list[str]) -> list[RetirementRecord]:
    found: list[RetirementRecord] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        found += session.exec(
            select(RetirementRecord).where(RetirementRecord.instrument_id.in_(chunk))  # type: ignore[attr-defined]
        )
    return sorted(found, key=lambda r: ids.index(r.instrument_id))


def _already_retired(record: RetirementRecord, count: int) -> str:
    more = f" (and {count - 1} more of those given)" if count > 1 else ""
    return (
        f"instrument {record.instrument_id!r} is already retired, to park {record.park_id!r} "
        f"for {record.period} on {record.retired_at.isoformat(timespec='seconds')}{more}; "
        "an instrument is retired once; nothing retired"
    )


def _ledger_entry(record: InstrumentRecord, retirement: RetirementRecord | None) -> LedgerEntry:
    instrument = Instrument(
        id=record.id,
        kind=cast(InstrumentKind, record.kind),
        vintage=record.vintage,
        quantity=record.quantity,
        price_per_unit=record.price_per_unit,
        currency=record.currency,
        source=record.source,
        park_id=record.park_id,
        delivery_start=record.delivery_start,
        delivery_end=record.delivery_end,
    )
    return LedgerEntry(
        instrument=instrument,
        imported_at=record.imported_at,
        retirement=None
        if retirement is None
        else Retirement(
            instrument_id=retirement.instrument_id,
            park_id=retirement.park_id,
            period=retirement.period,
            quantity=retirement.quantity,
            unit=retirement.unit,
            retired_at=retirement.retired_at,
            note=retirement.note,
        ),
    )


# --------------------------------------------------------------------------- single-writer lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class StoreLock:
    """A lease row (``daemon_lock``) that lets one daemon at a time write a store.

    Acquisition is a compare-and-swap in one transaction, so it works the
    same on SQLite and PostgreSQL: insert the row, or, if a holder's row is
    there and *stale*, update it ``WHERE`` the holder and heartbeat are still
    the ones read (rowcount 1 means this daemon won). A holder is stale when
    its heartbeat is older than ``ttl_s``, or at once when it ran on this
    host and its pid is gone (``kill -9``). The holder renews the heartbeat
    (:meth:`renew`, every few seconds) and deletes the row on a clean stop.
    """

    def __init__(self, store: Store, *, ttl_s: float = 30.0, name: str = "daemon") -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.name = name
        self.instance_id = uuid.uuid4().hex
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = utcnow()
        self.held = False

    def holder(self) -> DaemonLockRecord | None:
        with self.store.session() as session:
            return session.get(DaemonLockRecord, self.name)

    def is_stale(self, record: DaemonLockRecord, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        if now - record.heartbeat_at > dt.timedelta(seconds=self.ttl_s):
            return True
        return record.hostname == self.hostname and not _pid_alive(record.pid)

    def describe(self, record: DaemonLockRecord) -> str:
        return (
            f"store {self.store.safe_url} is held by daemon pid {record.pid} on host "
            f"{record.hostname} since {record.started_at.isoformat(timespec='seconds')} "
            f"(last heartbeat {record.heartbeat_at.isoformat(timespec='seconds')}); "
            f"stop it or wait {self.ttl_s:g} s after it died"
        )

    def acquire(self) -> None:
        """Take the lease or raise :class:`StoreLockedError` naming the holder."""
        now = utcnow()
        mine = {
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "pid": self.pid,
            "started_at": now,
            "heartbeat_at": now,
        }
        table = DaemonLockRecord.__table__  # type: ignore[attr-defined]
        try:
            with self.store.engine.begin() as connection:
                connection.execute(table.insert().values(id=self.name, **mine))
            self.started_at = now
            self.held = True
            log.info("store_lock_acquired", store=self.store.safe_url, instance=self.instance_id)
            return
        except IntegrityError:
            pass  # a row is there: is its holder alive?
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.store.safe_url}: cannot take the daemon lock: {_one_line(exc)}") from exc
        record = self.holder()
        if record is None:  # released in between: try once more from the start
            self.acquire()
            return
        if not self.is_stale(record, now):
            raise StoreLockedError(self.describe(record))
        try:
            with self.store.engine.begin() as connection:
                taken = connection.execute(
                    table.update()
                    .where(
                        table.c.id == self.name,
                        table.c.instance_id == record.instance_id,
                        table.c.heartbeat_at == record.heartbeat_at,
                    )
                    .values(**mine)
                ).rowcount
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.store.safe_url}: cannot take the daemon lock: {_one_line(exc)}") from exc
        if taken != 1:  # another daemon renewed or took it meanwhile
            current = self.holder()
            raise StoreLockedError(self.describe(current or record))
        self.started_at = now
        self.held = True
        log.warning(
            "store_lock_taken_over",
            store=self.store.safe_url,
            previous_pid=record.pid,
            previous_host=record.hostname,
            previous_heartbeat=record.heartbeat_at.isoformat(),
            instance=self.instance_id,
        )

    def renew(self) -> bool:
        """Move the heartbeat on; False if this daemon no longer holds the lease."""
        table = DaemonLockRecord.__table__  # type: ignore[attr-defined]
        try:
            with self.store.engine.begin() as connection:
                renewed = connection.execute(
                    table.update()
                    .where(table.c.id == self.name, table.c.instance_id == self.instance_id)
                    .values(heartbeat_at=utcnow())
                ).rowcount
        except SQLAlchemyError as exc:
            raise StoreError(f"store {self.store.safe_url}: cannot renew the daemon lock: {_one_line(exc)}") from exc
        return bool(renewed == 1)

    def release(self) -> None:
        """Give the lease up (clean stop); a lease held by another daemon is left alone."""
        if not self.held:
            return
        table = DaemonLockRecord.__table__  # type: ignore[attr-defined]
        try:
            with self.store.engine.begin() as connection:
                connection.execute(
                    table.delete().where(
                        table.c.id == self.name, table.c.instance_id == self.instance_id
                    )
                )
        except SQLAlchemyError as exc:
            log.warning("store_lock_release_failed", store=self.store.safe_url, reason=_one_line(exc))
            return
        finally:
            self.held = False
        log.info("store_lock_released", store=self.store.safe_url, instance=self.instance_id)


def _rt_filters(
    query: Any,
    stamp: Any,
    start: dt.datetime | None,
    end: dt.datetime | None,
    product_id: str | None,
    market_ids: Sequence[str] | None,
) -> Any:
    """``query`` narrowed to ``start <= stamp < end`` and to a product and markets of the bid."""
    if start is not None:
        query = query.where(stamp >= start)
    if end is not None:
        query = query.where(stamp < end)
    if product_id is not None:
        query = query.where(RtBidRecord.product_id == product_id)
    if market_ids is not None:
        query = query.where(RtBidRecord.market_id.in_(list(market_ids)))  # type: ignore[attr-defined]
    return query
