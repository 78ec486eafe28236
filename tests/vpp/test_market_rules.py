"""The one market-rule validator: every rule fires on a bid that breaks it, and a bid that
passes the strategy's check is never rejected by the replay exchange."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from market_replay.exchange import ReplayExchange
from vpp.config import load_market
from vpp.config.models import MarketRules
from vpp.errors import InputError, MarketRuleError
from vpp.market_rules import (
    PRODUCTS,
    RT_RULES,
    RULES,
    check_bid,
    check_curve,
    check_gate_closure,
    check_intervals,
    check_submission,
    curve_violations,
)
from vpp.runtime.clock import ReplayClock
from vpp.timeutil import day_intervals_utc
from vpp.types import BidCurve, BidPoint, DayAheadBid

REPO = Path(__file__).resolve().parents[2]
CN = load_market(REPO / "config" / "markets" / "cn-province-a.toml")
DAY = dt.date(2025, 5, 2)
RULES_CN = CN.rules_on(DAY)  # floor -80, cap 1500, tick 0.01, lot 0.1 MW, 10 segments, step
BEFORE_GATE = RULES_CN.gate_closure(DAY) - dt.timedelta(hours=1)
STARTS = [t.to_pydatetime() for t in day_intervals_utc(DAY, "Asia/Shanghai", 15)]
GOOD = ((-80.0, -1.0), (400.0, 0.0), (500.0, 2.0))


def _bidding(rules: MarketRules, **update: object) -> MarketRules:
    return rules.model_copy(update={"bidding": rules.bidding.model_copy(update=update)})


def _bid(
    points: tuple[tuple[float, float], ...] = GOOD,
    *,
    starts: list[dt.datetime] = STARTS,
    market: str = "cn-province-a",
) -> DayAheadBid:
    curves = tuple(BidCurve(t, tuple(BidPoint(p, q) for p, q in points)) for t in starts)
    return DayAheadBid(market, "pf", DAY, curves, dt.datetime(2025, 5, 1, tzinfo=dt.UTC))


# --------------------------------------------------------------------------- each rule fires

CURVE_CASES = {
    "quantity_only": (_bidding(RULES_CN, mode="quantity_only"), ((0.0, 1.0), (10.0, 2.0))),
    "max_segments": (RULES_CN, tuple((float(p), 0.1 * p) for p in range(11))),
    "price_floor": (RULES_CN, ((-80.01, 0.0),)),
    "price_cap": (RULES_CN, ((1500.01, 1.0),)),
    "price_tick": (RULES_CN, ((100.005, 1.0),)),
    "min_lot": (RULES_CN, ((100.0, 0.05),)),
    "price_order": (RULES_CN, ((100.0, 1.0), (50.0, 2.0))),
    "monotonicity": (RULES_CN, ((100.0, 1.0), (200.0, 0.5))),
}


@pytest.mark.parametrize("rule", sorted(CURVE_CASES))
def test_each_curve_rule_fires_in_the_strategy_and_the_exchange(rule: str) -> None:
    rules, points = CURVE_CASES[rule]
    bid = _bid(points)
    with pytest.raises(MarketRuleError) as strategy_side:
        check_bid(bid, rules)
    with pytest.raises(MarketRuleError) as exchange_side:
        check_submission(bid, rules, BEFORE_GATE)
    assert strategy_side.value.rule == exchange_side.value.rule == rule
    message = str(strategy_side.value)
    assert message.startswith(f"{rule}: ")
    assert "\n" not in message
    assert "allowed" in message  # names what is allowed next to the value received


def test_the_market_rule_fires() -> None:
    with pytest.raises(MarketRuleError) as info:
        check_bid(_bid(market="epex-de-lu"), RULES_CN)
    assert info.value.rule == "market"
    with pytest.raises(MarketRuleError) as info:
        check_submission(_bid(market="epex-de-lu"), RULES_CN, BEFORE_GATE)
    assert info.value.rule == "market"


def test_the_gate_closure_rule_fires_one_second_late() -> None:
    gate = RULES_CN.gate_closure(DAY)
    check_gate_closure(_bid(), RULES_CN, gate)  # at gate closure is still on time
    with pytest.raises(MarketRuleError) as info:
        check_submission(_bid(), RULES_CN, gate + dt.timedelta(seconds=1))
    assert info.value.rule == "gate_closure"
    assert gate.isoformat() in str(info.value)


@pytest.mark.parametrize(
    "starts",
    [STARTS[:-1], STARTS[::-1], [*STARTS[:1], *STARTS]],
    ids=["short", "reversed", "twice"],
)
def test_the_intervals_rule_fires(starts: list[dt.datetime]) -> None:
    bid = _bid(starts=starts)
    check_bid(bid, RULES_CN)  # the strategy may bid any horizon ...
    with pytest.raises(MarketRuleError) as info:  # ... the exchange takes whole days only
        check_intervals(bid, RULES_CN)
    assert info.value.rule == "intervals"


def _prices() -> pd.DataFrame:
    index = pd.date_range("2025-04-30 16:00", periods=96 * 3, freq="15min", tz="UTC")
    values = np.round(np.random.default_rng(0).uniform(200, 600, len(index)), 2)
    return pd.DataFrame({"da_price": values}, index=index.rename("interval_start"))


def test_the_duplicate_bid_rule_fires_at_the_exchange() -> None:
    exchange = ReplayExchange(_prices(), CN, ReplayClock(BEFORE_GATE))
    exchange.submit_day_ahead(_bid())
    with pytest.raises(MarketRuleError) as info:
        exchange.submit_day_ahead(_bid())
    assert info.value.rule == "duplicate_bid"


def test_every_rule_name_is_tested_here() -> None:
    tested = set(CURVE_CASES) | {"market", "gate_closure", "intervals", "duplicate_bid"}
    assert tested == set(RULES) - set(RT_RULES)  # RT_RULES: tests/vpp/test_rt_products.py


def test_equal_prices_break_price_order_for_step_and_linear_curves() -> None:
    for shape in ("step", "linear"):
        with pytest.raises(MarketRuleError) as info:
            check_curve(
                BidCurve(STARTS[0], (BidPoint(10.0, 0.0), BidPoint(10.0, 0.1))),
                _bidding(RULES_CN, curve=shape),
            )
        assert info.value.rule == "price_order"


def test_a_quantity_only_market_does_not_read_the_price() -> None:
    rules = _bidding(RULES_CN, mode="quantity_only")
    check_curve(BidCurve(STARTS[0], (BidPoint(-1000.005, 1.5),)), rules)
    with pytest.raises(MarketRuleError) as info:
        check_curve(BidCurve(STARTS[0], (BidPoint(-1000.0, 1.55),)), rules)
    assert info.value.rule == "min_lot"


def test_curve_violations_lists_every_broken_rule_in_order() -> None:
    curve = BidCurve(STARTS[0], (BidPoint(-90.0, 1.05), BidPoint(-95.0, 0.5)))
    found = [e.rule for e in curve_violations(curve, RULES_CN)]
    assert found == ["price_floor", "min_lot", "price_order", "monotonicity"]
    with pytest.raises(MarketRuleError) as info:
        check_curve(curve, RULES_CN)
    assert info.value.rule == found[0]


def test_an_unknown_product_is_an_input_error() -> None:
    assert set(PRODUCTS) == {"day_ahead", "real_time"}
    with pytest.raises(InputError, match="unknown market product 'intraday'"):
        check_curve(BidCurve(STARTS[0], (BidPoint(0.0, 0.0),)), RULES_CN, "intraday")


# --------------------------------------------------------------------------- the property

TICK, LOT = RULES_CN.bidding.price_tick_per_mwh, RULES_CN.bidding.min_lot_mw
prices = st.one_of(
    st.integers(-8_100, 150_100).map(lambda n: round(n * TICK, 2)),  # on the tick, near the limits
    st.floats(-200.0, 1_700.0, allow_nan=False),  # anything, mostly off the tick
)
quantities = st.one_of(
    st.integers(-30, 30).map(lambda n: round(n * LOT, 1)),  # whole lots
    st.floats(-3.0, 3.0, allow_nan=False),
)
raw_curves = st.lists(st.tuples(prices, quantities), min_size=1, max_size=12)
# Curves built to keep the rules, which then break them only at the edges (segments, limits).
tidy_curves = st.lists(
    st.tuples(st.integers(-8_000, 150_000), st.integers(-30, 30)), min_size=1, max_size=12
).map(
    lambda pairs: tuple(
        zip(
            sorted({round(p * TICK, 2) for p, _ in pairs}),
            sorted(round(q * LOT, 1) for _, q in pairs),
            strict=False,
        )
    )
)
curves = st.one_of(raw_curves.map(tuple), raw_curves.map(lambda c: tuple(sorted(c))), tidy_curves)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.lists(curves, min_size=1, max_size=4),
    mode=st.sampled_from(["price_quantity", "quantity_only"]),
    shape=st.sampled_from(["step", "linear"]),
    max_segments=st.integers(1, 10),
)
def test_a_bid_passing_the_strategy_check_is_never_rejected_by_the_exchange(
    day: list[tuple[tuple[float, float], ...]], mode: str, shape: str, max_segments: int
) -> None:
    rules = _bidding(RULES_CN, mode=mode, curve=shape, max_segments=max_segments)
    curves_of_day = tuple(
        BidCurve(start, tuple(BidPoint(p, q) for p, q in day[i % len(day)]))
        for i, start in enumerate(STARTS)
    )
    bid = DayAheadBid("cn-province-a", "pf", DAY, curves_of_day, BEFORE_GATE)
    broken = [v.rule for curve in curves_of_day[: len(day)] for v in curve_violations(curve, rules)]
    event("strategy check fails" if broken else "strategy check passes")
    if broken:
        assert set(broken) <= set(RULES)
        with pytest.raises(MarketRuleError) as info:
            check_bid(bid, rules)
        assert info.value.rule == broken[0]
        return
    check_bid(bid, rules)
    check_submission(bid, rules, BEFORE_GATE)  # raises if the exchange would reject it
