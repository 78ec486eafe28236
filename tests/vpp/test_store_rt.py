"""Real-time bids in the store (``rt_bids``, ``rt_awards``): the write-ahead states, the keys
``has_bid`` knows, awards whose price arrives later, what a restart reads back.

Every test runs on SQLite and on PostgreSQL (``store_url``: ids ``[sqlite]``/``[postgres]``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlmodel import select

from strategies.rt_bids import FlexibilityCurve
from vpp.errors import StoreError
from vpp.runtime.recording import MemoryRecorder, StoreRecorder, curve_from_json, curve_to_json
from vpp.store import RtAwardRecord, RtBidRecord, Store
from vpp.types import BidPoint, RealTimeAward, RealTimeBid

UTC = dt.UTC
HOUR = dt.datetime(2016, 1, 12, 8, tzinfo=UTC)
CURVE = FlexibilityCurve(
    np.array([40.0, 80.0]), np.array([0.5, 1.5]),
    {"a": np.array([0.5, 1.0]), "b": np.array([0.0, 0.5])},
)


def _bid(quantity: float = 1.0, direction: str = "up", start: dt.datetime = HOUR) -> RealTimeBid:
    return RealTimeBid("nordpool-dk1", "vpp-nordpool-dk1", "mfrr-energy", start,
                       (BidPoint(40.0, quantity / 2), BidPoint(80.0, quantity)), direction,
                       start - dt.timedelta(hours=1))


@pytest.fixture
def recorder(store_url: str):  # type: ignore[no-untyped-def]
    store = Store(store_url)
    yield StoreRecorder(store)
    store.close()


def test_write_ahead_states_and_has_bid(recorder: StoreRecorder) -> None:
    bid = _bid()
    key = bid.idempotency_key
    assert not recorder.has_bid(key)
    recorder.record_rt_bid(bid, status="submitted", receipt=None, reason=None, curve=CURVE)
    row = recorder.rt_bid_record(key)
    assert row is not None
    assert (row.status, row.receipt, row.product_id, row.direction) == (
        "submitted", None, "mfrr-energy", "up")
    assert row.period_start == HOUR
    assert not recorder.has_bid(key)  # sent, outcome unknown: may be sent again
    recorder.record_rt_bid(bid, status="accepted", receipt="replay-rt-1", reason=None, curve=CURVE)
    assert recorder.has_bid(key)
    # A replacement's write-ahead keeps the row accepted with its receipt, the new points stored.
    bigger = _bid(2.0)
    recorder.record_rt_bid(bigger, status="submitted", receipt=None, reason=None)
    row = recorder.rt_bid_record(key)
    assert row is not None
    assert (row.status, row.receipt) == ("accepted", "replay-rt-1")
    ((stored, curve, _),) = recorder.rt_bids_between(
        "nordpool-dk1", "vpp-nordpool-dk1", HOUR, HOUR + dt.timedelta(hours=1))
    assert stored == bigger
    assert curve is not None
    assert curve.split(1.5) == {"a": 1.0, "b": 0.5}
    with recorder.store.session() as session:
        assert len(session.exec(select(RtBidRecord)).all()) == 1  # one row per key, ever


def test_a_rejected_bid_keeps_the_reason_and_is_not_held(recorder: StoreRecorder) -> None:
    bid = _bid(direction="down", quantity=-1.0)
    recorder.record_rt_bid(bid, status="submitted", receipt=None, reason=None)
    recorder.record_rt_bid(bid, status="rejected", receipt=None, reason="rt_gate_closure: late")
    row = recorder.rt_bid_record(bid.idempotency_key)
    assert row is not None
    assert (row.status, row.reason) == ("rejected", "rt_gate_closure: late")
    assert not recorder.has_bid(bid.idempotency_key)
    with pytest.raises(StoreError, match="status 'missed'"):
        recorder.record_rt_bid(bid, status="missed", receipt=None, reason=None)


def test_awards_upsert_and_the_price_fills_in_later(recorder: StoreRecorder) -> None:
    bid = _bid()
    key = bid.idempotency_key
    recorder.record_rt_bid(bid, status="accepted", receipt="r", reason=None)
    recorder.record_rt_awards(key, [RealTimeAward("mfrr-energy", "up", HOUR, 1.0, None)])
    assert recorder.rt_awards_for(key) == [RealTimeAward("mfrr-energy", "up", HOUR, 1.0, None)]
    recorder.record_rt_awards(key, [RealTimeAward("mfrr-energy", "up", HOUR, 1.0, 61.25)])
    assert recorder.rt_awards_for(key) == [RealTimeAward("mfrr-energy", "up", HOUR, 1.0, 61.25)]
    with recorder.store.session() as session:
        assert len(session.exec(select(RtAwardRecord)).all()) == 1
    assert recorder.rt_awards_for("nordpool-dk1/none") == []


def test_bids_between_reads_one_portfolio_and_window(recorder: StoreRecorder) -> None:
    inside = _bid()
    later = _bid(start=HOUR + dt.timedelta(days=1))
    for bid in (inside, later):
        recorder.record_rt_bid(bid, status="accepted", receipt="r", reason=None)
    found = recorder.rt_bids_between("nordpool-dk1", "vpp-nordpool-dk1", HOUR - dt.timedelta(hours=8),
                                     HOUR + dt.timedelta(hours=16))
    assert [b for b, _, _ in found] == [inside]
    assert found[0][1] is None  # no curve stored
    assert recorder.rt_bids_between("nordpool-dk1", "other", HOUR, HOUR + dt.timedelta(days=2)) == []
    # A tampered row is left out, not half-read.
    with recorder.store.session() as session:
        row = session.exec(select(RtBidRecord).where(
            RtBidRecord.idempotency_key == inside.idempotency_key)).one()
        row.points_json = '{"market_id": 1}'
        session.add(row)
    assert recorder.rt_bids_between("nordpool-dk1", "vpp-nordpool-dk1", HOUR,
                                    HOUR + dt.timedelta(hours=1)) == []


def test_curve_json_round_trip_and_malformed_curves() -> None:
    again = curve_from_json(curve_to_json(CURVE))
    assert again is not None
    assert again.prices_per_mwh.tolist() == [40.0, 80.0]
    assert {p: v.tolist() for p, v in again.park_mw.items()} == {"a": [0.5, 1.0], "b": [0.0, 0.5]}
    for text in (None, "", "{", '{"prices_per_mwh": [1], "quantity_mw": [1, 2], "park_mw": {"a": [1]}}',
                 '{"prices_per_mwh": [1], "quantity_mw": [1], "park_mw": {}}'):
        assert curve_from_json(text) is None


def test_memory_recorder_knows_real_time_keys_like_the_store() -> None:
    memory = MemoryRecorder()
    bid = _bid()
    memory.record_rt_bid(bid, status="submitted", receipt=None, reason=None)
    assert not memory.has_bid(bid.idempotency_key)
    memory.record_rt_bid(bid, status="accepted", receipt="r", reason=None)
    assert memory.has_bid(bid.idempotency_key)
