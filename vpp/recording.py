"""Recorders: where the operator writes what it did.

:class:`MemoryRecorder` keeps everything in lists (backtests build their
reports from it); :class:`StoreRecorder` writes to the SQL store (the
daemon), one short transaction per call so a crash loses at most the record
being written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import select

from vpp.store import AwardRecord, BidRecord, SetpointRecord, Store, TelemetryRecord, utcnow
from vpp.types import Award, DayAheadBid, Health, Setpoint, Telemetry
from vpp.wire import bid_to_json


@dataclass
class MemoryRecorder:
    bids: list[tuple[DayAheadBid, str, str | None, str | None]] = field(default_factory=list)
    awards: dict[str, list[Award]] = field(default_factory=dict)
    setpoints: list[Setpoint] = field(default_factory=list)
    telemetry: list[Telemetry] = field(default_factory=list)

    def has_bid(self, idempotency_key: str) -> bool:
        return any(b.idempotency_key == idempotency_key for b, *_ in self.bids)

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
    """Records into the SQL store; the bid's idempotency key is unique there."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def has_bid(self, idempotency_key: str) -> bool:
        with self.store.session() as session:
            found = session.exec(
                select(BidRecord).where(
                    BidRecord.idempotency_key == idempotency_key,
                    BidRecord.status.in_(("accepted", "submitted")),  # type: ignore[attr-defined]
                )
            ).first()
        return found is not None

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
            record.submitted_at = utcnow()
            record.curves_json = json.dumps(bid_to_json(bid))
            session.add(record)

    def record_awards(self, bid: DayAheadBid, awards: Sequence[Award]) -> None:
        with self.store.session() as session:
            record = session.exec(
                select(BidRecord).where(BidRecord.idempotency_key == bid.idempotency_key)
            ).one()
            assert record.id is not None
            known = {
                a.interval_start
                for a in session.exec(select(AwardRecord).where(AwardRecord.bid_id == record.id))
            }
            now = utcnow()
            for award in awards:
                if award.interval_start in known:
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
                    )
                )
