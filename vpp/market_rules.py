"""Market rules: one validator for the strategy and the replay exchange.

The strategy checks a bid with :func:`check_bid` before it submits it; the
replay exchange (in process and behind its HTTP server) checks every bid it
receives with :func:`check_submission`, which runs the same :func:`check_bid`
after the two rules only the receiving side can judge (gate closure and the
whole day's intervals). So a bid for the whole delivery day that passes the
strategy's check before gate closure is never rejected by the exchange.

Every rule has one name, used in :class:`~vpp.errors.MarketRuleError`
(``exc.rule``), in the exchange's HTTP answers (``{"rule": ...}``), in logs
and in ``docs/market-rules.md``:

==============  =====================================================  =========
rule            checks                                                 runs in
==============  =====================================================  =========
market          the bid is for the market whose rules judge it         both
quantity_only   a quantity-only market takes exactly one point         both
max_segments    at most ``bidding.max_segments`` points per curve       both
price_floor     every price >= ``price_limits.floor_per_mwh``          both
price_cap       every price <= ``price_limits.cap_per_mwh``            both
price_tick      every price is a multiple of ``price_tick_per_mwh``    both
min_lot         every quantity is a multiple of ``min_lot_mw``         both
price_order     prices strictly increase along the curve               both
monotonicity    quantity never falls as the price rises                both
intervals       one curve per product of the delivery day, in order    exchange
gate_closure    the bid arrives before the product's gate closure      exchange
duplicate_bid   one bid per market, delivery day and portfolio         exchange
==============  =====================================================  =========

The price rules (floor, cap, tick) apply where the market reads prices
(``bidding.mode = "price_quantity"``); a quantity-only market ignores the
price of its one point. Rules are grouped per product in :data:`PRODUCTS`:
adding a product (the real-time bids of issue #12) is one entry there.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from vpp.config.models import MarketRules
from vpp.errors import InputError, MarketRuleError
from vpp.timeutil import day_intervals_utc
from vpp.types import BidCurve, DayAheadBid

__all__ = [
    "CURVE_RULES",
    "PRODUCTS",
    "RULES",
    "TOLERANCE",
    "ProductRules",
    "check_bid",
    "check_curve",
    "check_gate_closure",
    "check_intervals",
    "check_submission",
    "curve_violations",
]

#: Relative tolerance of the lot and tick rules and of monotonicity [fraction of a lot/tick].
TOLERANCE = 1e-6

#: Every rule name and what it checks (``docs/market-rules.md`` has where each runs).
RULES: Mapping[str, str] = {
    "market": "the bid is for the market whose rules judge it",
    "quantity_only": "a quantity-only market takes exactly one point per curve",
    "max_segments": "at most bidding.max_segments points per curve",
    "price_floor": "every price >= price_limits.floor_per_mwh (price_quantity markets)",
    "price_cap": "every price <= price_limits.cap_per_mwh (price_quantity markets)",
    "price_tick": "every price is a multiple of bidding.price_tick_per_mwh (price_quantity markets)",
    "min_lot": "every quantity is a multiple of bidding.min_lot_mw",
    "price_order": "prices strictly increase along the curve",
    "monotonicity": "quantity never falls as the price rises",
    "intervals": "one curve per product of the delivery day, in order",
    "gate_closure": "the bid arrives no later than the product's gate closure",
    "duplicate_bid": "one bid per market, delivery day and portfolio",
}

CurveRule = Callable[[BidCurve, MarketRules], "str | None"]


# --------------------------------------------------------------------------- curve rules
# Each returns None when the curve keeps the rule, else a one-line message
# naming the interval, the value and what is allowed.


def _when(curve: BidCurve) -> str:
    return curve.interval_start.isoformat()


def _reads_prices(rules: MarketRules) -> bool:
    return rules.bidding.mode == "price_quantity"


def _off_grid(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) > TOLERANCE


def _quantity_only(curve: BidCurve, rules: MarketRules) -> str | None:
    if rules.bidding.mode == "quantity_only" and len(curve.points) != 1:
        return f"{_when(curve)}: {len(curve.points)} points, allowed 1 in a quantity-only market"
    return None


def _max_segments(curve: BidCurve, rules: MarketRules) -> str | None:
    if len(curve.points) > rules.bidding.max_segments:
        return (
            f"{_when(curve)}: {len(curve.points)} points, "
            f"allowed at most {rules.bidding.max_segments}"
        )
    return None


def _price_floor(curve: BidCurve, rules: MarketRules) -> str | None:
    floor, cap = rules.price_limits.floor_per_mwh, rules.price_limits.cap_per_mwh
    for point in curve.points if _reads_prices(rules) else ():
        if point.price_per_mwh < floor:
            return f"{_when(curve)}: price {point.price_per_mwh} < floor, allowed [{floor}, {cap}]"
    return None


def _price_cap(curve: BidCurve, rules: MarketRules) -> str | None:
    floor, cap = rules.price_limits.floor_per_mwh, rules.price_limits.cap_per_mwh
    for point in curve.points if _reads_prices(rules) else ():
        if point.price_per_mwh > cap:
            return f"{_when(curve)}: price {point.price_per_mwh} > cap, allowed [{floor}, {cap}]"
    return None


def _price_tick(curve: BidCurve, rules: MarketRules) -> str | None:
    tick = rules.bidding.price_tick_per_mwh
    for point in curve.points if _reads_prices(rules) else ():
        if _off_grid(point.price_per_mwh, tick):
            return (
                f"{_when(curve)}: price {point.price_per_mwh}, allowed multiples of the tick {tick}"
            )
    return None


def _min_lot(curve: BidCurve, rules: MarketRules) -> str | None:
    lot = rules.bidding.min_lot_mw
    for point in curve.points:
        if _off_grid(point.quantity_mw, lot):
            return f"{_when(curve)}: quantity {point.quantity_mw} MW, allowed multiples of {lot} MW"
    return None


def _price_order(curve: BidCurve, rules: MarketRules) -> str | None:
    for a, b in itertools.pairwise(curve.points):
        if b.price_per_mwh <= a.price_per_mwh:
            return (
                f"{_when(curve)}: price {b.price_per_mwh} after {a.price_per_mwh}, "
                "allowed strictly increasing prices"
            )
    return None


def _monotonicity(curve: BidCurve, rules: MarketRules) -> str | None:
    slack_mw = TOLERANCE * rules.bidding.min_lot_mw
    for a, b in itertools.pairwise(curve.points):
        if b.quantity_mw < a.quantity_mw - slack_mw:
            return (
                f"{_when(curve)}: quantity falls from {a.quantity_mw} to {b.quantity_mw} MW as the "
                f"price rises from {a.price_per_mwh} to {b.price_per_mwh}, allowed non-decreasing"
            )
    return None


CURVE_RULES: Mapping[str, CurveRule] = {
    "quantity_only": _quantity_only,
    "max_segments": _max_segments,
    "price_floor": _price_floor,
    "price_cap": _price_cap,
    "price_tick": _price_tick,
    "min_lot": _min_lot,
    "price_order": _price_order,
    "monotonicity": _monotonicity,
}


# --------------------------------------------------------------------------- products


@dataclass(frozen=True)
class ProductRules:
    """What one market product is checked against.

    ``curve_rules`` run in this order on every curve (the first broken one
    is reported); ``gate_closure(rules, delivery_day)`` is the last moment a
    bid is taken [UTC]; ``product_starts(rules, delivery_day)`` are the
    intervals the bid must cover, one curve each, in order.
    """

    curve_rules: tuple[str, ...]
    gate_closure: Callable[[MarketRules, dt.date], dt.datetime]
    product_starts: Callable[[MarketRules, dt.date], pd.DatetimeIndex]


PRODUCTS: Mapping[str, ProductRules] = {
    "day_ahead": ProductRules(
        curve_rules=tuple(CURVE_RULES),
        gate_closure=lambda rules, day: rules.gate_closure(day),
        product_starts=lambda rules, day: day_intervals_utc(
            day, rules.timezone, rules.day_ahead.interval_minutes
        ),
    ),
}


def _product(name: str) -> ProductRules:
    try:
        return PRODUCTS[name]
    except KeyError:
        raise InputError(f"unknown market product {name!r}, allowed {sorted(PRODUCTS)}") from None


# --------------------------------------------------------------------------- checks


def curve_violations(
    curve: BidCurve, rules: MarketRules, product: str = "day_ahead"
) -> list[MarketRuleError]:
    """Every rule ``curve`` breaks, in the product's rule order (empty when it keeps them all)."""
    found = []
    for name in _product(product).curve_rules:
        message = CURVE_RULES[name](curve, rules)
        if message is not None:
            found.append(MarketRuleError(name, message))
    return found


def check_curve(curve: BidCurve, rules: MarketRules, product: str = "day_ahead") -> None:
    """Raise :class:`~vpp.errors.MarketRuleError` naming the first rule ``curve`` breaks."""
    for name in _product(product).curve_rules:
        message = CURVE_RULES[name](curve, rules)
        if message is not None:
            raise MarketRuleError(name, message)


def _check_market(bid: DayAheadBid, rules: MarketRules) -> None:
    if bid.market_id != rules.market_id:
        raise MarketRuleError(
            "market", f"bid for {bid.market_id}, allowed only {rules.market_id} under these rules"
        )


def check_bid(bid: DayAheadBid, rules: MarketRules, product: str = "day_ahead") -> None:
    """The strategy's check before submitting: the market and every rule of every curve.

    It does not ask for the whole day (a strategy may bid a shorter horizon
    in tests and studies) nor the time; :func:`check_submission` adds both.
    """
    _check_market(bid, rules)
    for curve in bid.curves:
        check_curve(curve, rules, product)


def check_gate_closure(
    bid: DayAheadBid, rules: MarketRules, now: dt.datetime, product: str = "day_ahead"
) -> None:
    """Raise ``gate_closure`` when ``now`` is after the product's gate closure for the bid's day."""
    gate = _product(product).gate_closure(rules, bid.delivery_day)
    if now > gate:
        raise MarketRuleError(
            "gate_closure",
            f"{bid.delivery_day}: received {now.isoformat()}, "
            f"allowed until gate closure at {gate.isoformat()}",
        )


def check_intervals(bid: DayAheadBid, rules: MarketRules, product: str = "day_ahead") -> None:
    """Raise ``intervals`` unless the bid has one curve per product of its day, in order."""
    expected = _product(product).product_starts(rules, bid.delivery_day)
    got = [curve.interval_start for curve in bid.curves]
    if [start.to_pydatetime() for start in expected] != got:
        minutes = rules.day_ahead.interval_minutes
        raise MarketRuleError(
            "intervals",
            f"{bid.delivery_day}: {len(got)} curves, allowed exactly the day's "
            f"{len(expected)} {minutes}-min products in order",
        )


def check_submission(
    bid: DayAheadBid, rules: MarketRules, now: dt.datetime, product: str = "day_ahead"
) -> None:
    """The exchange's check on receipt: market, gate closure, the day's intervals, every curve."""
    _check_market(bid, rules)
    check_gate_closure(bid, rules, now, product)
    check_intervals(bid, rules, product)
    check_bid(bid, rules, product)
