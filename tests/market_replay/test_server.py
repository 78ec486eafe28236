"""The replay exchange over real HTTP on loopback, through the daemon's gateway client."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from tests.market_replay.test_exchange import CN, DAY, RULES, _bid, _prices
from vpp import ExchangeError, LookAheadError, MarketRuleError
from vpp.gateway import HttpExchange
from vpp.runtime.clock import AcceleratedClock, ReplayClock

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served() -> Iterator[tuple[ReplayClock, HttpExchange, ExchangeServer]]:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    server = ExchangeServer(
        ReplayExchange(_prices(), CN, clock), tokens={TOKEN: frozenset({"pf", "p"})}
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0))
    try:
        yield clock, HttpExchange(client, retries=0, token=TOKEN), server
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_bid_award_round_trip_over_http(
    served: tuple[ReplayClock, HttpExchange, ExchangeServer],
) -> None:
    clock, gateway, _ = served
    assert gateway.now() == clock.now()
    bid_id = gateway.submit_day_ahead(_bid())
    assert bid_id.startswith("replay-")
    with pytest.raises(LookAheadError):
        gateway.day_ahead_awards("cn-province-a", "pf", DAY)
    clock.advance_to(RULES.da_publication(DAY))
    awards = gateway.day_ahead_awards("cn-province-a", "pf", DAY)
    assert len(awards) == 96
    assert all(a.interval_start.tzinfo is not None for a in awards)


def test_rule_violations_cross_the_wire(
    served: tuple[ReplayClock, HttpExchange, ExchangeServer],
) -> None:
    clock, gateway, _ = served
    with pytest.raises(MarketRuleError) as info:
        gateway.submit_day_ahead(_bid(points=((-80, 1.0), (400, 0.0))))
    assert info.value.rule == "monotonicity"
    assert str(info.value).startswith("monotonicity: ")
    assert not str(info.value).startswith("monotonicity: monotonicity")  # one prefix, as in process
    gateway.submit_day_ahead(_bid())
    with pytest.raises(MarketRuleError) as info:
        gateway.submit_day_ahead(_bid())
    assert info.value.rule == "duplicate_bid"
    clock.advance_to(RULES.gate_closure(DAY) + dt.timedelta(minutes=1))
    with pytest.raises(MarketRuleError) as info:
        gateway.submit_day_ahead(_bid(day=DAY + dt.timedelta(days=-1)))
    assert info.value.rule == "gate_closure"


def test_prices_respect_publication(
    served: tuple[ReplayClock, HttpExchange, ExchangeServer],
) -> None:
    clock, gateway, _ = served
    start = pd.Timestamp("2025-05-01 16:00", tz="UTC").to_pydatetime()
    with pytest.raises(LookAheadError):
        gateway.get("da_price", start, start + dt.timedelta(hours=1))
    clock.advance_to(RULES.da_publication(DAY))
    series = gateway.get("da_price", start, start + dt.timedelta(hours=1))
    assert len(series) == 4
    assert str(series.index.tz) == "UTC"


def test_malformed_bid_is_a_bad_request(
    served: tuple[ReplayClock, HttpExchange, ExchangeServer],
) -> None:
    _, _, server = served
    response = httpx.post(
        f"{server.url}/v1/day-ahead/bids", content=b"{not json", headers=AUTH, timeout=5
    )
    assert response.status_code == 400
    naive = {
        "market_id": "cn-province-a",
        "portfolio_id": "p",
        "delivery_day": "2025-05-02",
        "created_at": "2025-05-01T00:00:00",
        "curves": [],
    }
    response = httpx.post(f"{server.url}/v1/day-ahead/bids", json=naive, headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert "no UTC offset" in response.json()["message"]


def test_unreachable_exchange_retries_then_raises() -> None:
    sleeps: list[float] = []
    client = httpx.Client(base_url="http://127.0.0.1:9", timeout=httpx.Timeout(0.5))
    gateway = HttpExchange(client, retries=3, backoff_s=0.1, sleep=sleeps.append)
    with pytest.raises(ExchangeError, match="after 4 attempts"):
        gateway.now()
    assert sleeps == [0.1, 0.2, 0.4]


def test_client_without_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="explicit timeout"):
        HttpExchange(httpx.Client(timeout=None))


def test_accelerated_clock() -> None:
    wall = [100.0]
    clock = AcceleratedClock(
        dt.datetime(2025, 5, 1, tzinfo=dt.UTC), speed=3600, monotonic=lambda: wall[0]
    )
    wall[0] += 2.0
    assert clock.now() == dt.datetime(2025, 5, 1, 2, tzinfo=dt.UTC)
    assert clock.wall_seconds_until(dt.datetime(2025, 5, 1, 3, tzinfo=dt.UTC)) == pytest.approx(1.0)
