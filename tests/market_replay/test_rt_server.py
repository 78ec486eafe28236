"""Real-time bids over real HTTP on loopback (``/v1/real-time/...``), through the daemon's
gateway client, on real DK1 regulating prices; and their wire format."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from market_replay import import_prices
from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from tests.market_replay._support import NORDPOOL, market
from vpp import ExchangeError, LookAheadError, MarketRuleError
from vpp.gateway import HttpExchange
from vpp.runtime.clock import ReplayClock
from vpp.types import BidPoint, RealTimeAward, RealTimeBid
from vpp.wire import (
    WireError,
    rt_award_from_json,
    rt_award_to_json,
    rt_bid_content_hash,
    rt_bid_from_json,
    rt_bid_to_json,
)

DK1 = market("nordpool-dk1")
TOKEN = "rt-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def dk1(shared_prices: Path) -> pd.DataFrame:
    frame = import_prices(shared_prices / NORDPOOL, "nordpool-regulating", DK1, zone="DK1").prices.frame
    return frame.loc["2016-01-10":"2016-01-20"]


def _up_hour(frame: pd.DataFrame) -> pd.Timestamp:
    later = frame.loc["2016-01-12":]
    return later.index[(later["rt_price_up"] - later["da_price"] > 20).to_numpy()][0]


def _bid(start: pd.Timestamp, points: tuple[tuple[float, float], ...], direction: str = "up",
         portfolio: str = "pf") -> RealTimeBid:
    return RealTimeBid("nordpool-dk1", portfolio, "mfrr-energy", start.to_pydatetime(),
                       tuple(BidPoint(p, q) for p, q in points), direction,
                       dt.datetime(2016, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def served(dk1: pd.DataFrame) -> Iterator[tuple[ReplayClock, HttpExchange, ExchangeServer, pd.Timestamp]]:
    hour = _up_hour(dk1)
    clock = ReplayClock((hour - pd.Timedelta(minutes=75)).to_pydatetime())  # gate - 30 min
    server = ExchangeServer(ReplayExchange(dk1, DK1, clock), tokens={TOKEN: frozenset({"pf"})})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0))
    try:
        yield clock, HttpExchange(client, retries=0, token=TOKEN), server, hour
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_bid_replace_and_award_round_trip_over_http(served, dk1: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    clock, gateway, _, hour = served
    row = dk1.loc[hour]
    up, spot = float(row["rt_price_up"]), float(row["da_price"])
    first = _bid(hour, ((round(spot + 1.0, 2), 1.0), (round(up + 500.0, 2), 3.0)))
    receipt = gateway.submit_real_time(first)
    assert receipt.startswith("replay-rt-")
    # A replacement before the gate: same key, same bid id, the exchange holds the new one.
    second = _bid(hour, ((round(spot + 1.0, 2), 2.0), (round(up + 500.0, 2), 3.0)))
    assert gateway.submit_real_time(second) == receipt
    held = gateway.real_time_bid(first.idempotency_key)
    assert held is not None
    assert held.points == second.points
    assert gateway.real_time_bid(_bid(hour, ((1.0, 1.0),), "down").idempotency_key) is None
    with pytest.raises(LookAheadError, match="known from the period's start"):
        gateway.real_time_awards(second)
    clock.advance_to(hour.to_pydatetime())
    (award,) = gateway.real_time_awards(second)
    # spot + 1 <= up < up + 500: the 2 MW point is activated; not paid (published) yet
    assert award == RealTimeAward("mfrr-energy", "up", hour.to_pydatetime(), 2.0, None)
    clock.advance_to((hour + pd.Timedelta(hours=1)).to_pydatetime())
    (award,) = gateway.real_time_awards(second)
    assert award.quantity_mw == 2.0
    assert award.price_per_mwh == pytest.approx(up)
    # A bid the exchange does not hold is awarded nothing.
    assert gateway.real_time_awards(_bid(hour, ((1.0, -1.0),), "down")) == []


def test_rules_cross_the_wire_with_their_names(served) -> None:  # type: ignore[no-untyped-def]
    clock, gateway, _, hour = served
    with pytest.raises(MarketRuleError) as info:
        gateway.submit_real_time(_bid(hour, ((100.0, -1.0),)))  # an up bid that buys
    assert info.value.rule == "rt_direction"
    assert not str(info.value).startswith("rt_direction: rt_direction")
    kept = _bid(hour, ((100.0, 1.0),))
    gateway.submit_real_time(kept)
    clock.advance_to((hour - pd.Timedelta(minutes=45) + pd.Timedelta(seconds=1)).to_pydatetime())
    with pytest.raises(MarketRuleError) as info:
        gateway.submit_real_time(_bid(hour, ((100.0, 3.0),)))
    assert info.value.rule == "rt_gate_closure"
    held = gateway.real_time_bid(kept.idempotency_key)
    assert held is not None
    assert held.points == kept.points  # the late replacement changed nothing


def test_auth_portfolio_and_malformed_requests(served) -> None:  # type: ignore[no-untyped-def]
    _, gateway, server, hour = served
    other = _bid(hour, ((100.0, 1.0),), portfolio="not-ours")
    response = httpx.post(f"{server.url}/v1/real-time/bids", json=rt_bid_to_json(other),
                          headers=AUTH, timeout=5)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    response = httpx.get(f"{server.url}/v1/real-time/awards?key={quote(other.idempotency_key, safe='')}",
                         headers=AUTH, timeout=5)
    assert response.status_code == 403
    response = httpx.get(f"{server.url}/v1/real-time/bids?key=a/b", headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert "market/product/period_start/portfolio/direction" in response.json()["message"]
    response = httpx.get(f"{server.url}/v1/real-time/bids", timeout=5)
    assert response.status_code == 401
    body = rt_bid_to_json(_bid(hour, ((100.0, 1.0),)))
    body["direction"] = "sideways"
    response = httpx.post(f"{server.url}/v1/real-time/bids", json=body, headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert response.json()["message"] == "direction = 'sideways': allowed both, up, down"
    response = httpx.get(f"{server.url}/v1/real-time/bids?key={quote(other.idempotency_key)}",
                         headers={"Authorization": "Bearer wrong-token-0123456789"}, timeout=5)
    assert response.status_code == 401
    with pytest.raises(ExchangeError, match="not authorised"):
        gateway.submit_real_time(other)
    with pytest.raises(ExchangeError, match="403"):
        gateway.real_time_bid(other.idempotency_key)


# --------------------------------------------------------------------------- wire format


def test_wire_round_trip_keeps_the_key_and_the_hash() -> None:
    start = pd.Timestamp("2016-01-12 08:00", tz="UTC")
    bid = _bid(start, ((-10.5, -2.0), (20.25, -1.0)), "down")
    again = rt_bid_from_json(rt_bid_to_json(bid))
    assert again == bid
    assert again.idempotency_key == "nordpool-dk1/mfrr-energy/2016-01-12T08:00:00+00:00/pf/down"
    assert rt_bid_content_hash(again) == rt_bid_content_hash(bid)
    changed = _bid(start, ((-10.5, -2.0), (20.25, -1.5)), "down")
    assert rt_bid_content_hash(changed) != rt_bid_content_hash(bid)
    award = RealTimeAward("mfrr-energy", "down", start.to_pydatetime(), -1.0, None)
    assert rt_award_to_json(award) == {
        "interval_start": "2016-01-12T08:00:00+00:00", "quantity_mw": -1.0, "price_per_mwh": None,
    }
    assert rt_award_from_json(rt_award_to_json(award), bid) == award
    paid = rt_award_from_json({**rt_award_to_json(award), "price_per_mwh": 12.5}, bid)
    assert paid.price_per_mwh == 12.5


@pytest.mark.parametrize(("edit", "message"), [
    ({"period_start": "2016-01-12T08:00:00"}, "period_start: '2016-01-12T08:00:00' has no UTC offset"),
    ({"direction": 1}, "direction = 1: allowed both, up, down"),
    ({"product_id": "mfrr/energy"}, "product_id = 'mfrr/energy': use letters"),
    ({"points": []}, "points: must not be empty"),
    ({"points": [[1.0]]}, "points[0]: expected [price_per_mwh, quantity_mw], got [1.0]"),
    ({"points": [[1.0, 2e5]]}, "points[0][1] (quantity_mw) = 200000: must be within ±100000 MW"),
    ({"points": [[True, 1.0]]}, "points[0][0] (price_per_mwh): expected a number, got True"),
    ({"points": [[1.0, 1.0]] * 65}, "points: 65 entries, at most 64 allowed"),
])
def test_wire_refuses_bad_fields_naming_them(edit: dict[str, object], message: str) -> None:
    body = {**rt_bid_to_json(_bid(pd.Timestamp("2016-01-12 08:00", tz="UTC"), ((1.0, 1.0),))), **edit}
    with pytest.raises(WireError) as info:
        rt_bid_from_json(body)
    assert str(info.value).startswith(message)


def test_wire_refuses_a_missing_field_and_bad_awards() -> None:
    bid = _bid(pd.Timestamp("2016-01-12 08:00", tz="UTC"), ((1.0, 1.0),))
    body = rt_bid_to_json(bid)
    del body["created_at"]
    with pytest.raises(WireError, match="missing field 'created_at'"):
        rt_bid_from_json(body)
    with pytest.raises(WireError, match="missing field 'price_per_mwh'"):
        rt_award_from_json({"interval_start": "2016-01-12T08:00:00+00:00", "quantity_mw": 1.0}, bid)
    with pytest.raises(WireError, match="quantity_mw: expected a number, got 'x'"):
        rt_award_from_json({"interval_start": "2016-01-12T08:00:00+00:00", "quantity_mw": "x",
                            "price_per_mwh": None}, bid)
