"""Persistence with SQLModel: SQLite by default, any SQLAlchemy URL otherwise.

Every write that belongs together happens in one transaction: enrolment of
a folder of parks either lands whole or not at all. Timestamps are stored
in UTC and come back tz-aware; writing a naive timestamp is a ``TypeError``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Column, DateTime, Text, UniqueConstraint, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select

from vpp.config.models import ParkConfig
from vpp.errors import StoreError, StoreLockedError

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
    rt_revenue: float
    degradation_cost: float
    net_revenue: float
    imbalance_mwh: float


# --------------------------------------------------------------------------- store


def _one_line(exc: SQLAlchemyError) -> str:
    """The database's own message, without SQLAlchemy's statement dump and help link."""
    orig = getattr(exc, "orig", None)
    text_ = f"{type(orig).__name__}: {orig}" if orig is not None else str(exc).split("\n")[0]
    return " ".join(text_.split())


def _shown_url(url: str) -> str:
    """``url`` with its password hidden, or a stand-in if it does not even parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(unparseable URL)"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """The database: one engine, short transactions, typed records."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url)
        except SQLAlchemyError as exc:  # not a URL, or an unknown database kind
            raise StoreError(
                f"cannot open store {_shown_url(url)}: {_one_line(exc)}; "
                "check [store] url or VPP_DATABASE_URL (e.g. sqlite:///var/vpp.db)"
            ) from None
        except ImportError as exc:  # the URL names a driver that is not installed
            raise StoreError(
                f"cannot open store {_shown_url(url)}: database driver {exc.name!r} is not "
                f"installed; install it (pip install {exc.name}) or use another store URL"
            ) from None
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._drop_pickled_plans()
            SQLModel.metadata.create_all(self.engine)
            self._add_missing_columns()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open store {self.safe_url}: {_one_line(exc)}") from exc

    def _drop_pickled_plans(self) -> None:
        """Stores written before plans were JSON hold them as pickles: drop them unread.

        A pickle runs code when loaded, so they are never unpickled, not even
        to convert them. The plans are derived data: a day whose plan is
        missing falls back as documented in ``docs/daemon.md`` (the bid is
        kept in ``bids``).
        """
        inspector = inspect(self.engine)
        if not inspector.has_table("day_plans"):
            return
        if "result_pickle" not in {c["name"] for c in inspector.get_columns("day_plans")}:
            return
        with self.engine.begin() as connection:
            rows = connection.execute(text('SELECT COUNT(*) FROM "day_plans"')).scalar_one()
            connection.execute(text('DROP TABLE "day_plans"'))
        log.warning("store_pickled_plans_dropped", table="day_plans", rows=rows)

    def _add_missing_columns(self) -> None:
        """Add nullable columns that newer versions introduced to tables that already exist.

        ``create_all`` creates missing tables but never alters existing ones;
        this is the only kind of schema change vpp makes in place (additive
        and nullable), so an older ``var/vpp.db`` keeps working.
        """
        inspector = inspect(self.engine)
        for table in SQLModel.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if not column.nullable:
                    raise StoreError(
                        f"store {self.safe_url}: table {table.name} lacks the required column "
                        f"{column.name}; migrate the database or start with a new one"
                    )
                kind = column.type.compile(dialect=self.engine.dialect)
                with self.engine.begin() as connection:
                    connection.execute(
                        text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}')
                    )
                log.info("store_column_added", table=table.name, column=column.name)

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
