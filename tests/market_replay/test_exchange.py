"""Replay exchange: publication times, bid rules, clearing; replay clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_replay.exchange import ReplayExchange, clear_curve
from vpp import LookAheadError, MarketRuleError
from vpp.config import load_market
from vpp.market_rules import check_curve
from vpp.runtime.clock import ReplayClock
from vpp.timeutil import day_intervals_utc
from vpp.types import BidCurve, BidPoint, DayAheadBid

CN = load_market(Path("config/markets/cn-province-a.toml"))
DAY = dt.date(2025, 5, 2)
RULES = CN.rules_on(DAY)
UTC = dt.UTC


def _prices(days: int = 3) -> pd.DataFrame:
    index = pd.date_range(
        pd.Timestamp("2025-04-30 16:00", tz="UTC"),
        periods=96 * days,
        freq="15min",
        name="interval_start",
    )
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "da_price": np.round(rng.uniform(200, 600, len(index)), 2),
            "rt_price": np.round(rng.uniform(150, 700, len(index)), 2),
            "load_forecast_mw": rng.uniform(1e4, 2e4, len(index)),
        },
        index=index,
    )


def _curve(start: dt.datetime, *points: tuple[float, float]) -> BidCurve:
    return BidCurve(start, tuple(BidPoint(p, q) for p, q in points))


def _bid(
    day: dt.date = DAY,
    points: tuple[tuple[float, float], ...] = ((-80, -1.0), (400, 0.0), (500, 2.0)),
) -> DayAheadBid:
    index = day_intervals_utc(day, "Asia/Shanghai", 15)
    curves = tuple(_curve(t.to_pydatetime(), *points) for t in index)
    return DayAheadBid("cn-province-a", "pf", day, curves, dt.datetime(2025, 5, 1, tzinfo=UTC))


def test_clock_never_moves_back() -> None:
    clock = ReplayClock(dt.datetime(2025, 5, 1, tzinfo=UTC))
    clock.advance_to(dt.datetime(2025, 5, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="cannot move back"):
        clock.advance_to(dt.datetime(2025, 5, 1, tzinfo=UTC))
    with pytest.raises(TypeError, match="timezone-aware"):
        ReplayClock(dt.datetime(2025, 5, 1))


def test_day_ahead_prices_hidden_until_publication() -> None:
    clock = ReplayClock(dt.datetime(2025, 5, 1, 9, 0, tzinfo=UTC))  # 17:00 Shanghai on D-1
    exchange = ReplayExchange(_prices(), CN, clock)
    start, end = (
        pd.Timestamp(x).to_pydatetime()
        for x in day_intervals_utc(DAY, "Asia/Shanghai", 15)[[0, -1]]
    )
    with pytest.raises(LookAheadError, match=r"da_price .* not published"):
        exchange.get("da_price", start, end)
    clock.advance_to(RULES.da_publication(DAY))  # 17:30 Shanghai D-1
    assert len(exchange.get("da_price", start, end)) == 95
    # Real-time prices of the same day are still unknown.
    with pytest.raises(LookAheadError):
        exchange.get("rt_price", start, end)


def test_realtime_price_known_when_interval_ends() -> None:
    t0 = dt.datetime(2025, 5, 1, 2, 0, tzinfo=UTC)
    clock = ReplayClock(t0)
    exchange = ReplayExchange(_prices(), CN, clock)
    with pytest.raises(LookAheadError):
        exchange.get("rt_price", t0, t0 + dt.timedelta(minutes=15))
    clock.advance_to(t0 + dt.timedelta(minutes=15))
    assert len(exchange.get("rt_price", t0, t0 + dt.timedelta(minutes=15))) == 1
    history = exchange.history()
    assert history["rt_price"].last_valid_index() == pd.Timestamp(t0)
    assert history.index.max() < pd.Timestamp(t0 + dt.timedelta(days=2))


def test_fundamentals_published_before_gate_closure() -> None:
    gate = RULES.gate_closure(DAY)
    clock = ReplayClock(gate - dt.timedelta(minutes=30))
    exchange = ReplayExchange(_prices(), CN, clock)
    start = day_intervals_utc(DAY, "Asia/Shanghai", 15)[0].to_pydatetime()
    assert len(exchange.get("load_forecast_mw", start, start + dt.timedelta(days=1))) == 96
    with pytest.raises(LookAheadError):
        exchange.get("load_forecast_mw", start + dt.timedelta(days=1), start + dt.timedelta(days=2))


def test_bid_accepted_then_awarded_after_publication() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    prices = _prices()
    exchange = ReplayExchange(prices, CN, clock)
    exchange.submit_day_ahead(_bid())
    with pytest.raises(LookAheadError, match="published at"):
        exchange.day_ahead_awards("cn-province-a", "pf", DAY)
    clock.advance_to(RULES.da_publication(DAY))
    awards = exchange.day_ahead_awards("cn-province-a", "pf", DAY)
    assert len(awards) == 96
    for award in awards:
        price = prices.loc[pd.Timestamp(award.interval_start), "da_price"]
        assert award.price_per_mwh == price
        assert award.quantity_mw == (2.0 if price >= 500 else 0.0 if price >= 400 else -1.0)


def test_late_bid_rejected_with_rule() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) + dt.timedelta(seconds=1))
    exchange = ReplayExchange(_prices(), CN, clock)
    with pytest.raises(MarketRuleError) as info:
        exchange.submit_day_ahead(_bid())
    assert info.value.rule == "gate_closure"


def test_duplicate_bid_rejected() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    exchange = ReplayExchange(_prices(), CN, clock)
    exchange.submit_day_ahead(_bid())
    with pytest.raises(MarketRuleError) as info:
        exchange.submit_day_ahead(_bid())
    assert info.value.rule == "duplicate_bid"


def test_missing_intervals_rejected() -> None:
    bid = _bid()
    short = DayAheadBid(
        bid.market_id, bid.portfolio_id, bid.delivery_day, bid.curves[:-1], bid.created_at
    )
    exchange = ReplayExchange(
        _prices(), CN, ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    )
    with pytest.raises(MarketRuleError) as info:
        exchange.submit_day_ahead(short)
    assert info.value.rule == "intervals"


START = dt.datetime(2025, 5, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("points", "rule"),
    [
        (((-81.0, 0.0),), "price_floor"),
        (((1500.01, 1.0),), "price_cap"),
        (((100.0, 1.0), (200.0, 0.5)), "monotonicity"),
        (((100.0, 0.05),), "min_lot"),
        (((100.0, 1.0), (50.0, 2.0)), "price_order"),
        (((100.005, 1.0),), "price_tick"),
        (tuple((float(p), 0.1 * p) for p in range(11)), "max_segments"),
    ],
)
def test_rule_breaking_curves_name_the_rule(
    points: tuple[tuple[float, float], ...], rule: str
) -> None:
    with pytest.raises(MarketRuleError) as info:
        check_curve(_curve(START, *points), RULES)
    assert info.value.rule == rule


def test_quantity_only_market_takes_one_point() -> None:
    rules = RULES.model_copy(
        update={"bidding": RULES.bidding.model_copy(update={"mode": "quantity_only"})}
    )
    check_curve(_curve(START, (0.0, 1.5)), rules)
    with pytest.raises(MarketRuleError) as info:
        check_curve(_curve(START, (0.0, 1.0), (10.0, 2.0)), rules)
    assert info.value.rule == "quantity_only"


CURVE = _curve(START, (100.0, -1.0), (200.0, 0.0), (300.0, 2.0))


@pytest.mark.parametrize(
    ("price", "step", "linear"),
    [
        (50.0, -1.0, -1.0),  # below the first point: flat extension
        (100.0, -1.0, -1.0),  # at a point
        (150.0, -1.0, -0.5),  # between points
        (200.0, 0.0, 0.0),
        (250.0, 0.0, 1.0),
        (300.0, 2.0, 2.0),
        (999.0, 2.0, 2.0),  # above the last point
    ],
)
def test_clearing_at_above_and_below_each_segment(price: float, step: float, linear: float) -> None:
    assert clear_curve(CURVE, price, "step", "price_quantity") == pytest.approx(step)
    assert clear_curve(CURVE, price, "linear", "price_quantity") == pytest.approx(linear)
    assert clear_curve(CURVE, price, "step", "quantity_only") == -1.0
