"""Recorders: where the operator writes what it did.

:class:`MemoryRecorder` keeps everything in lists (backtests build their
reports from it); :class:`StoreRecorder` writes to the SQL store (the
daemon), one short transaction per call so a crash loses at most the record
being written.

A day-ahead bid goes through these states in the store::

    submitted --(exchange accepts, or answers duplicate_bid)--> accepted
              --(exchange rejects a rule)---------------------> rejected
              --(exchange unreachable until gate closure)-----> missed

``submitted`` is written *before* the bid is sent (:meth:`record_plan`), so
a crash while sending leaves a bid whose outcome is unknown; the daemon
re-sends that same bid on restart and the exchange's idempotency (one bid
per key) makes the second attempt either the first delivery or a
``duplicate_bid`` answer that confirms the first.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from vpp.errors import StoreError
from vpp.runtime.plan_json import PlanFormatError, plan_from_json, plan_to_json
from vpp.store import (
    AwardRecord,
    BidRecord,
    DayPlanRecord,
    SetpointRecord,
    Store,
    TelemetryRecord,
    utcnow,
)
from vpp.types import Award, DayAheadBid, Health, Setpoint, Telemetry
from vpp.wire import WireError, bid_from_json, bid_to_json

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def _transient(exc: StoreError) -> bool:
    """A failure that may pass (lock contention, I/O, a dropped connection): worth another try.

    Corruption (SQLite's "database disk image is malformed", a plain
    ``DatabaseError``) is not retried: a store that reported a bad page is not
    trusted again, even if a later write happens to succeed.
    """
    return isinstance(exc.__cause__, OperationalError)


def _retrying(method: Callable[P, R]) -> Callable[P, R]:
    """Retry a one-transaction recorder call on transient database failures, with backoff.

    Each call is one transaction, rolled back on error, so running it again
    cannot half-write anything. After ``attempts`` the :class:`StoreError`
    propagates: the daemon then stops dispatch (see ``docs/daemon.md``).
    """

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        recorder = args[0]
        assert isinstance(recorder, StoreRecorder)
        for attempt in range(1, recorder.attempts + 1):
            try:
                return method(*args, **kwargs)
            except StoreError as exc:
                if not _transient(exc) or attempt == recorder.attempts:
                    raise
                delay = recorder.backoff_s * 2 ** (attempt - 1)
                log.warning(
                    "store_write_retry",
                    operation=method.__name__,
                    attempt=attempt,
                    retry_in_s=delay,
                    reason=str(exc),
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    return run


@dataclass
class MemoryRecorder:
    bids: list[tuple[DayAheadBid, str, str | None, str | None]] = field(default_factory=list)
    plans: dict[str, Any] = field(default_factory=dict)
    awards: dict[str, list[Award]] = field(default_factory=dict)
    setpoints: list[Setpoint] = field(default_factory=list)
    telemetry: list[Telemetry] = field(default_factory=list)

    def has_bid(self, idempotency_key: str) -> bool:
        return any(
            b.idempotency_key == idempotency_key and status == "accepted"
            for b, status, *_ in self.bids
        )

    def record_plan(self, result: Any) -> None:
        self.plans[result.bid.idempotency_key] = result

    def record_bid(
        self, bid: DayAheadBid, *, status: str, receipt: str | None, reason: str | None
    ) -> None:
        self.bids.append((bid, status, receipt, reason))

    def record_awards(self, bid: DayAheadBid, awards: Sequence[Award]) -> None:
        self.awards[bid.idempotency_key] = list(awards)

    def record_setpoints(self, setpoints: Sequence[Setpoint]) -> None:
        self.setpoints.extend(setpoints)

    def record_telemetry(self, readings: Sequence[Telemetry]) -> None:
        self.telemetry.extend(readings)


class StoreRecorder:
    """Records into the SQL store; the bid's idempotency key is unique there.

    Every call is one transaction, tried up to ``attempts`` times with
    exponential backoff from ``backoff_s`` [s] when the database fails.
    """

    def __init__(self, store: Store, *, attempts: int = 3, backoff_s: float = 0.2) -> None:
        self.store = store
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s

    def has_bid(self, idempotency_key: str) -> bool:
        """True once the exchange accepted the bid (a ``submitted`` one may not have landed)."""
        record = self.bid_record(idempotency_key)
        return record is not None and record.status == "accepted"

    @_retrying
    def bid_record(self, idempotency_key: str) -> BidRecord | None:
        with self.store.session() as session:
            return session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == idempotency_key)
            ).first()

    def bid(self, idempotency_key: str) -> DayAheadBid | None:
        """The stored bid's curves, or None if none was stored (or a missed auction's)."""
        record = self.bid_record(idempotency_key)
        if record is None or not record.curves_json:
            return None
        try:
            return bid_from_json(json.loads(record.curves_json))
        except (ValueError, WireError):
            return None

    def record_plan(self, result: Any) -> None:
        """Write ahead, in one transaction: the bid as ``submitted`` and the strategy's plan.

        ``result`` is a :class:`strategies.DayAheadResult`, stored as JSON
        (:mod:`vpp.runtime.plan_json`). Called before the bid is sent, so a restart
        can re-send the very same bid and split its awards with the very
        same allocation.
        """
        bid: DayAheadBid = result.bid
        try:
            document = plan_to_json(result)
        except PlanFormatError as exc:  # a plan that cannot be read back is not written
            raise StoreError(
                f"day_plans[{bid.idempotency_key}]: {exc}; the plan was not stored"
            ) from exc
        self._record_plan(bid, document)

    @_retrying
    def _record_plan(self, bid: DayAheadBid, document: str) -> None:
        now = utcnow()
        with self.store.session() as session:
            record = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == bid.idempotency_key)
            ).first()
            if record is None or record.status != "accepted":
                record = record or BidRecord(
                    idempotency_key=bid.idempotency_key,
                    market_id=bid.market_id,
                    portfolio_id=bid.portfolio_id,
                    kind="day_ahead",
                    delivery_day=bid.delivery_day,
                    submitted_at=now,
                    status="submitted",
                    curves_json="",
                )
                record.status = "submitted"
                record.reason = None
                record.submitted_at = now
                record.curves_json = json.dumps(bid_to_json(bid))
                session.add(record)
            plan = session.get(DayPlanRecord, bid.idempotency_key) or DayPlanRecord(
                idempotency_key=bid.idempotency_key,
                market_id=bid.market_id,
                delivery_day=bid.delivery_day,
                created_at=now,
                plan_json="",
            )
            plan.created_at = now
            plan.plan_json = document
            session.add(plan)

    @_retrying
    def plan(self, idempotency_key: str) -> Any | None:
        """The :class:`strategies.DayAheadResult` stored with a bid, or None if there is none.

        The row is parsed strictly as data; one that does not parse (tampered,
        truncated, a pickle from an old version, another schema version) is a
        :class:`~vpp.StoreError` naming the table, the row and the field.
        """
        with self.store.session() as session:
            record = session.get(DayPlanRecord, idempotency_key)
        if record is None:
            return None
        try:
            result = plan_from_json(record.plan_json)
        except PlanFormatError as exc:
            raise StoreError(
                f"day_plans[{idempotency_key}]: field {exc.field}: "
                f"{str(exc).removeprefix(exc.field + ': ')}; the plan is refused"
            ) from exc
        if result.bid.idempotency_key != idempotency_key:
            raise StoreError(
                f"day_plans[{idempotency_key}]: field bid: belongs to "
                f"{result.bid.idempotency_key!r}; the plan is refused"
            )
        return result

    @_retrying
    def record_missed(
        self,
        idempotency_key: str,
        *,
        market_id: str,
        portfolio_id: str,
        delivery_day: dt.date,
        reason: str,
    ) -> None:
        """Mark the day's auction as missed (keeping any curves already written)."""
        with self.store.session() as session:
            record = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == idempotency_key)
            ).first() or BidRecord(
                idempotency_key=idempotency_key,
                market_id=market_id,
                portfolio_id=portfolio_id,
                kind="day_ahead",
                delivery_day=delivery_day,
                submitted_at=utcnow(),
                status="missed",
                curves_json="",
            )
            record.status = "missed"
            record.reason = reason
            session.add(record)

    @_retrying
    def record_bid(
        self, bid: DayAheadBid, *, status: str, receipt: str | None, reason: str | None
    ) -> None:
        with self.store.session() as session:
            existing = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == bid.idempotency_key)
            ).first()
            record = existing or BidRecord(
                idempotency_key=bid.idempotency_key,
                market_id=bid.market_id,
                portfolio_id=bid.portfolio_id,
                kind="day_ahead",
                delivery_day=bid.delivery_day,
                submitted_at=utcnow(),
                status=status,
                curves_json="",
            )
            record.status = status
            record.reason = reason if receipt is None else f"receipt={receipt}"
            if reason is not None and receipt is not None:
                record.reason = f"receipt={receipt}; {reason}"
            record.submitted_at = utcnow()
            record.curves_json = json.dumps(bid_to_json(bid))
            session.add(record)

    @_retrying
    def record_awards(self, bid: DayAheadBid, awards: Sequence[Award]) -> None:
        with self.store.session() as session:
            record = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == bid.idempotency_key)
            ).one()
            assert record.id is not None
            known = {
                a.interval_start: a
                for a in session.exec(select(AwardRecord).where(AwardRecord.bid_id == record.id))
            }
            now = utcnow()
            for award in awards:
                row = known.get(award.interval_start)
                if row is not None:
                    # The awards were verified against the bid: a stored row that differs
                    # (tampered, or half-written) is replaced, never kept.
                    if (row.quantity_mw, row.price_per_mwh) != (
                        award.quantity_mw,
                        award.price_per_mwh,
                    ):
                        row.quantity_mw, row.price_per_mwh = award.quantity_mw, award.price_per_mwh
                        row.received_at = now
                        session.add(row)
                    continue
                session.add(
                    AwardRecord(
                        bid_id=record.id,
                        interval_start=award.interval_start,
                        quantity_mw=award.quantity_mw,
                        price_per_mwh=award.price_per_mwh,
                        received_at=now,
                    )
                )

    @_retrying
    def awards_for(self, idempotency_key: str) -> list[Award]:
        with self.store.session() as session:
            record = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == idempotency_key)
            ).first()
            if record is None:
                return []
            rows = session.exec(
                select(AwardRecord)
                .where(AwardRecord.bid_id == record.id)
                .order_by(AwardRecord.interval_start)  # type: ignore[arg-type]
            )
            return [Award(r.interval_start, r.quantity_mw, r.price_per_mwh) for r in rows]

    @_retrying
    def record_setpoints(self, setpoints: Sequence[Setpoint]) -> None:
        if not setpoints:
            return
        now = utcnow()
        with self.store.session() as session:
            for sp in setpoints:
                session.add(
                    SetpointRecord(
                        park_id=sp.park_id,
                        asset_id=sp.asset_id,
                        interval_start=sp.interval_start,
                        power_kw=sp.power_kw,
                        sent_at=now,
                    )
                )

    @_retrying
    def record_telemetry(self, readings: Sequence[Telemetry]) -> None:
        if not readings:
            return
        with self.store.session() as session:
            for r in readings:
                session.add(
                    TelemetryRecord(
                        park_id=r.park_id,
                        asset_id=r.asset_id,
                        measured_at=r.measured_at,
                        power_kw=r.power_kw,
                        soc=r.soc,
                        available=r.health == Health.OK,
                        reason=r.reason,
                        extra_json=json.dumps(r.extra) if r.extra else None,
                    )
                )
