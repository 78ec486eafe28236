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

A real-time bid (``rt_bids``) goes the same way, without ``missed``::

    submitted --(exchange accepts: a new bid, or a replacement before the gate)--> accepted
              --(a product rule refuses it)-----------------------------------> rejected

A ``submitted`` one (a crash while sending) is built and sent again by the
next ``rt_bid`` job before the gate: under the same key the exchange replaces
it, so the exchange never holds two. An ``accepted`` one is never sent again
(:meth:`StoreRecorder.has_bid` knows both kinds of key).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import numpy as np
import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from strategies.rt_bids import FlexibilityCurve
from vpp.errors import StoreError
from vpp.runtime.plan_json import PlanFormatError, plan_from_json, plan_to_json
from vpp.store import (
    AwardRecord,
    BidRecord,
    DayPlanRecord,
    RtAwardRecord,
    RtBidRecord,
    SetpointRecord,
    Store,
    TelemetryRecord,
    utcnow,
)
from vpp.types import (
    Award,
    DayAheadBid,
    Health,
    RealTimeAward,
    RealTimeBid,
    Setpoint,
    Telemetry,
)
from vpp.wire import WireError, bid_from_json, bid_to_json, rt_bid_from_json, rt_bid_to_json

log = structlog.get_logger(__name__)

RT_STATUSES = ("submitted", "accepted", "rejected")

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
    #: real-time bids by key: (bid, status, receipt, reason), the last state of each
    rt_bids: dict[str, tuple[RealTimeBid, str, str | None, str | None]] = field(
        default_factory=dict
    )
    rt_awards: dict[str, list[RealTimeAward]] = field(default_factory=dict)

    def has_bid(self, idempotency_key: str) -> bool:
        held = self.rt_bids.get(idempotency_key)
        if held is not None:
            return held[1] == "accepted"
        return any(
            b.idempotency_key == idempotency_key and status == "accepted"
            for b, status, *_ in self.bids
        )

    def record_rt_bid(
        self,
        bid: RealTimeBid,
        *,
        status: str,
        receipt: str | None,
        reason: str | None,
        curve: Any | None = None,
    ) -> None:
        self.rt_bids[bid.idempotency_key] = (bid, status, receipt, reason)

    def record_rt_awards(self, idempotency_key: str, awards: Sequence[RealTimeAward]) -> None:
        self.rt_awards[idempotency_key] = list(awards)

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
        """True once the exchange accepted the bid (a ``submitted`` one may not have landed);
        a day-ahead or a real-time key."""
        record = self.bid_record(idempotency_key)
        if record is not None:
            return record.status == "accepted"
        rt = self.rt_bid_record(idempotency_key)
        return rt is not None and rt.status == "accepted"

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

    # ------------------------------------------------------------------ real-time bids

    @_retrying
    def rt_bid_record(self, idempotency_key: str) -> RtBidRecord | None:
        with self.store.session() as session:
            return session.exec(
                select(RtBidRecord).where(RtBidRecord.idempotency_key == idempotency_key)
            ).first()

    @_retrying
    def record_rt_bid(
        self,
        bid: RealTimeBid,
        *,
        status: str,
        receipt: str | None,
        reason: str | None,
        curve: Any | None = None,
    ) -> None:
        """Write a real-time bid's state: ``submitted`` before sending, then its outcome.

        An ``accepted`` row is never set back to ``submitted`` (a late re-send of the
        same key after acceptance changes nothing); its receipt is kept when an
        outcome comes without one.
        """
        if status not in RT_STATUSES:
            raise StoreError(f"rt_bids[{bid.idempotency_key}]: status {status!r}, allowed {RT_STATUSES}")
        now = utcnow()
        with self.store.session() as session:
            record = session.exec(
                select(RtBidRecord).where(RtBidRecord.idempotency_key == bid.idempotency_key)
            ).first()
            if record is not None and record.status == "accepted" and status == "submitted":
                # a replacement before the gate: the new points are on their way
                record.points_json = json.dumps(rt_bid_to_json(bid))
                if curve is not None:
                    record.curve_json = curve_to_json(curve)
                session.add(record)
                return
            record = record or RtBidRecord(
                idempotency_key=bid.idempotency_key,
                market_id=bid.market_id,
                portfolio_id=bid.portfolio_id,
                product_id=bid.product_id,
                period_start=bid.period_start,
                direction=bid.direction,
                points_json="",
                status=status,
                created_at=now,
            )
            record.status = status
            record.points_json = json.dumps(rt_bid_to_json(bid))
            if curve is not None:
                record.curve_json = curve_to_json(curve)
            record.receipt = receipt if receipt is not None else record.receipt
            record.reason = reason
            session.add(record)

    @_retrying
    def record_rt_awards(self, idempotency_key: str, awards: Sequence[RealTimeAward]) -> None:
        """Upsert a real-time bid's awards per interval (a price published later fills the NULL)."""
        now = utcnow()
        with self.store.session() as session:
            known = {
                r.interval_start: r
                for r in session.exec(
                    select(RtAwardRecord).where(RtAwardRecord.idempotency_key == idempotency_key)
                )
            }
            for award in awards:
                row = known.get(award.interval_start.astimezone(dt.UTC))
                if row is None:
                    session.add(RtAwardRecord(
                        idempotency_key=idempotency_key,
                        interval_start=award.interval_start,
                        quantity_mw=award.quantity_mw,
                        price_per_mwh=award.price_per_mwh,
                        received_at=now,
                    ))
                elif (row.quantity_mw, row.price_per_mwh) != (award.quantity_mw, award.price_per_mwh):
                    row.quantity_mw, row.price_per_mwh = award.quantity_mw, award.price_per_mwh
                    row.received_at = now
                    session.add(row)

    @_retrying
    def rt_awards_for(self, idempotency_key: str) -> list[RealTimeAward]:
        with self.store.session() as session:
            bid = session.exec(
                select(RtBidRecord).where(RtBidRecord.idempotency_key == idempotency_key)
            ).first()
            if bid is None:
                return []
            rows = session.exec(
                select(RtAwardRecord)
                .where(RtAwardRecord.idempotency_key == idempotency_key)
                .order_by(RtAwardRecord.interval_start)  # type: ignore[arg-type]
            )
            return [
                RealTimeAward(bid.product_id, bid.direction, r.interval_start, r.quantity_mw,
                              r.price_per_mwh)
                for r in rows
            ]

    @_retrying
    def rt_bids_between(
        self, market_id: str, portfolio_id: str, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[RealTimeBid, FlexibilityCurve | None, RtBidRecord]]:
        """The stored real-time bids of a portfolio with ``start <= period_start < end``:
        each bid, the flexibility curve it came from (None if not stored or unreadable)
        and its row. A row whose points do not parse is left out (logged)."""
        with self.store.session() as session:
            rows = list(session.exec(
                select(RtBidRecord)
                .where(RtBidRecord.market_id == market_id, RtBidRecord.portfolio_id == portfolio_id,
                       RtBidRecord.period_start >= start, RtBidRecord.period_start < end)
                .order_by(RtBidRecord.period_start, RtBidRecord.id)  # type: ignore[arg-type]
            ))
        out = []
        for row in rows:
            try:
                bid = rt_bid_from_json(json.loads(row.points_json))
            except (ValueError, WireError) as exc:
                log.error("stored_rt_bid_refused", key=row.idempotency_key, reason=str(exc))
                continue
            if bid.idempotency_key != row.idempotency_key:
                log.error("stored_rt_bid_refused", key=row.idempotency_key,
                          reason=f"points belong to {bid.idempotency_key}")
                continue
            out.append((bid, curve_from_json(row.curve_json), row))
        return out

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


def curve_to_json(curve: FlexibilityCurve) -> str:
    """A :class:`strategies.rt_bids.FlexibilityCurve` as JSON (plain lists of floats)."""
    return json.dumps({
        "prices_per_mwh": [float(x) for x in curve.prices_per_mwh],
        "quantity_mw": [float(x) for x in curve.quantity_mw],
        "park_mw": {p: [float(x) for x in v] for p, v in curve.park_mw.items()},
    }, allow_nan=False)


def curve_from_json(text: str | None) -> FlexibilityCurve | None:
    """The curve of :func:`curve_to_json`; None if absent or malformed (never trusted half-read)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        prices = np.asarray(data["prices_per_mwh"], dtype=float)
        quantity = np.asarray(data["quantity_mw"], dtype=float)
        parks = {str(p): np.asarray(v, dtype=float) for p, v in data["park_mw"].items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if prices.shape != quantity.shape or any(v.shape != prices.shape for v in parks.values()):
        return None
    if not parks or not (np.isfinite(prices).all() and np.isfinite(quantity).all()):
        return None
    return FlexibilityCurve(prices, quantity, parks)
