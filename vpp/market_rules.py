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

================  ===================================================  ========
rule              checks                                               runs in
================  ===================================================  ========
market            the bid is for the market whose rules judge it       both
quantity_only     a quantity-only market takes exactly one point       both
max_segments      at most ``bidding.max_segments`` points per curve    both
price_floor       every price >= ``price_limits.floor_per_mwh``        both
price_cap         every price <= ``price_limits.cap_per_mwh``          both
price_tick        every price is a multiple of ``price_tick_per_mwh``  both
min_lot           every quantity is a multiple of ``min_lot_mw``       both
price_order       prices strictly increase along the curve             both
monotonicity      quantity never falls as the price rises              both
intervals         one curve per product of the delivery day, in order  exchange
gate_closure      the bid arrives before the product's gate closure    exchange
duplicate_bid     one bid per market, delivery day and portfolio       exchange
rt_product        a real-time bid names a product in force that day    both
product_disabled  the real-time product is enabled                     both
rt_period         the period is one of the product's delivery periods  both
rt_gate_closure   the bid arrives before its period's gate             exchange
rt_direction      both/up/down fits the kind; up >= 0, down <= 0 MW    both
================  ===================================================  ========

The price rules (floor, cap, tick) apply where the market reads prices
(``bidding.mode = "price_quantity"``); a quantity-only market ignores the
price of its one point. Rules are grouped per product in :data:`PRODUCTS`:
``day_ahead`` and ``real_time``.

Real-time bids (:class:`~vpp.types.RealTimeBid`, one period of one product of
``[[real_time_products]]``) run the same curve rules, with the lot, tick,
segments and floor/cap of the PRODUCT (:func:`rt_rules_view`), after the
product rules: :func:`check_rt_bid` for the strategy, :func:`check_rt_submission`
(adding the period's gate) for the exchange. :func:`clear_rt_bid` clears a
real-time bid against a row of realised prices, by the product's kind.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vpp.config.models import MarketRules, RealTimeProduct
from vpp.errors import InputError, MarketRuleError
from vpp.timeutil import day_intervals_utc, require_aware, zone
from vpp.types import BidCurve, DayAheadBid, RealTimeBid

__all__ = [
    "CURVE_RULES",
    "PRODUCTS",
    "RT_RULES",
    "RULES",
    "TOLERANCE",
    "ProductRules",
    "check_bid",
    "check_curve",
    "check_gate_closure",
    "check_intervals",
    "check_rt_bid",
    "check_rt_gate_closure",
    "check_rt_submission",
    "check_submission",
    "clear_rt_bid",
    "curve_violations",
    "rt_clearing_price",
    "rt_rules_view",
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
    "rt_product": "a real-time bid names a real-time product of the market in force that day",
    "product_disabled": "the real-time product is open to the portfolio (enabled = true)",
    "rt_period": "the period start is one of the product's delivery periods of its local day",
    "rt_gate_closure": "the real-time bid arrives no later than its period's gate closure",
    "rt_direction": "direction fits the kind (both; regulating: up or down) and up "
    "quantities are >= 0, down quantities <= 0",
}

#: The rules only real-time bids have (the curve rules and ``market`` they share).
RT_RULES = ("rt_product", "product_disabled", "rt_period", "rt_gate_closure", "rt_direction")

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
    gate_closure: Callable[[MarketRules, dt.date], dt.datetime] | None = None
    product_starts: Callable[[MarketRules, dt.date], pd.DatetimeIndex] | None = None
    #: Real-time products gate and bid per period of one product id instead of per day:
    #: ``period_gate_closure(rules, product_id, period_start)`` [UTC] and
    #: ``period_starts(rules, product_id, day)``; ``bid_rules`` run before the curve rules.
    period_gate_closure: Callable[[MarketRules, str, dt.datetime], dt.datetime] | None = None
    period_starts: Callable[[MarketRules, str, dt.date], pd.DatetimeIndex] | None = None
    bid_rules: tuple[str, ...] = ()


PRODUCTS: Mapping[str, ProductRules] = {
    "day_ahead": ProductRules(
        curve_rules=tuple(CURVE_RULES),
        gate_closure=lambda rules, day: rules.gate_closure(day),
        product_starts=lambda rules, day: day_intervals_utc(
            day, rules.timezone, rules.day_ahead.interval_minutes
        ),
    ),
    # The curve rules read the product's limits through rt_rules_view; a real-time product
    # always reads prices, so quantity_only does not apply.
    "real_time": ProductRules(
        curve_rules=tuple(name for name in CURVE_RULES if name != "quantity_only"),
        period_gate_closure=lambda rules, product_id, start: rules.rt_gate_closure(
            product_id, start
        ),
        period_starts=lambda rules, product_id, day: rules.rt_periods(product_id, day),
        bid_rules=("market", "rt_product", "product_disabled", "rt_period", "rt_direction"),
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


def _check_market(bid: DayAheadBid | RealTimeBid, rules: MarketRules) -> None:
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
    gate_closure = _product(product).gate_closure
    if gate_closure is None:
        raise InputError(f"product {product!r} closes per period: use check_rt_submission")
    gate = gate_closure(rules, bid.delivery_day)
    if now > gate:
        raise MarketRuleError(
            "gate_closure",
            f"{bid.delivery_day}: received {now.isoformat()}, "
            f"allowed until gate closure at {gate.isoformat()}",
        )


def check_intervals(bid: DayAheadBid, rules: MarketRules, product: str = "day_ahead") -> None:
    """Raise ``intervals`` unless the bid has one curve per product of its day, in order."""
    product_starts = _product(product).product_starts
    if product_starts is None:
        raise InputError(f"product {product!r} is bid per period: use check_rt_submission")
    expected = product_starts(rules, bid.delivery_day)
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


# --------------------------------------------------------------------------- real-time bids


def rt_rules_view(rules: MarketRules, product: RealTimeProduct) -> MarketRules:
    """``rules`` with the bidding and price limits of a real-time ``product``.

    The curve rules of :data:`CURVE_RULES` read ``rules.bidding`` and
    ``rules.price_limits``; through this view they judge a real-time curve by the
    product's segments, lot, tick, curve shape and floor/cap, not the day-ahead ones.
    """
    bidding = rules.bidding.model_copy(
        update={
            "mode": "price_quantity",
            "max_segments": product.max_segments,
            "min_lot_mw": product.min_lot_mw,
            "price_tick_per_mwh": product.price_tick_per_mwh,
            "curve": product.curve,
            "source": product.source,
            "effective_date": product.effective_date,
        }
    )
    limits = rules.price_limits.model_copy(
        update={
            "floor_per_mwh": product.floor_per_mwh,
            "cap_per_mwh": product.cap_per_mwh,
            "source": product.source,
            "effective_date": product.effective_date,
        }
    )
    return rules.model_copy(update={"bidding": bidding, "price_limits": limits})


def _local(when: dt.datetime, rules: MarketRules) -> str:
    return when.astimezone(zone(rules.timezone)).isoformat()


def _rt_product(bid: RealTimeBid, rules: MarketRules, product_id: str) -> RealTimeProduct:
    known = [p.id for p in rules.real_time_products]
    if product_id != bid.product_id:
        raise MarketRuleError(
            "rt_product",
            f"bid for product {bid.product_id!r} submitted as {product_id!r}; "
            "submit it to its own product",
        )
    for product in rules.real_time_products:
        if product.id == product_id:
            return product
    raise MarketRuleError(
        "rt_product",
        f"{rules.market_id} has no real-time product {product_id!r} in force on "
        f"{_local(bid.period_start, rules)[:10]}, allowed {known or 'none'}",
    )


def _check_enabled(bid: RealTimeBid, rules: MarketRules, product: RealTimeProduct) -> None:
    if not product.enabled:
        raise MarketRuleError(
            "product_disabled",
            f"{product.id} in {rules.market_id} takes no bids from this portfolio "
            f"(enabled = false, version of {product.effective_date}): deviations settle by "
            f"the {rules.settlement.rule} rule instead; a market whose rules admit VPP "
            "real-time offers adds a version with enabled = true",
        )


def _check_period(bid: RealTimeBid, rules: MarketRules, product: RealTimeProduct) -> None:
    day = bid.period_start.astimezone(zone(rules.timezone)).date()
    periods = rules.rt_periods(product.id, day)
    if pd.Timestamp(bid.period_start) not in periods:
        window = (
            f", in {', '.join(s.name for s in product.sessions)}'s delivery windows"
            if product.sessions else ""
        )
        raise MarketRuleError(
            "rt_period",
            f"{product.id}: period start {_local(bid.period_start, rules)}, allowed the "
            f"{len(periods)} {product.period_minutes}-min period starts of {day}{window}",
        )


def _check_direction(bid: RealTimeBid, rules: MarketRules, product: RealTimeProduct) -> None:
    where = f"{product.id} {_local(bid.period_start, rules)}"
    if product.kind != "regulating":
        if bid.direction != "both":
            raise MarketRuleError(
                "rt_direction",
                f"{where}: direction {bid.direction!r}, allowed 'both' for a {product.kind} "
                "(one curve that sells above and buys below)",
            )
        return
    if bid.direction not in ("up", "down"):
        raise MarketRuleError(
            "rt_direction",
            f"{where}: direction {bid.direction!r}, allowed 'up' or 'down' (a regulating "
            "product takes separate up and down bids)",
        )
    slack_mw = TOLERANCE * product.min_lot_mw
    for point in bid.points:
        wrong = point.quantity_mw < -slack_mw if bid.direction == "up" else (
            point.quantity_mw > slack_mw
        )
        if wrong:
            allowed = ">= 0 (more injection or less draw)" if bid.direction == "up" else (
                "<= 0 (less injection or more draw)"
            )
            raise MarketRuleError(
                "rt_direction",
                f"{where}: {bid.direction} bid quantity {point.quantity_mw} MW at "
                f"{point.price_per_mwh}, allowed {allowed}",
            )


def _check_rt_curve(bid: RealTimeBid, rules: MarketRules, product: RealTimeProduct) -> None:
    view = rt_rules_view(rules, product)
    for name in PRODUCTS["real_time"].curve_rules:
        message = CURVE_RULES[name](bid.curve, view)
        if message is not None:
            raise MarketRuleError(name, f"{product.id} {message}")


def check_rt_bid(
    bid: RealTimeBid, rules: MarketRules, product: RealTimeProduct | None = None
) -> None:
    """The strategy's check of a real-time bid before it submits it.

    ``rules`` are those of the period's local day; ``product`` defaults to the version of
    ``bid.product_id`` in force in them. Runs ``market``, ``rt_product``,
    ``product_disabled``, ``rt_period``, ``rt_direction`` and the curve rules with the
    product's limits (:func:`rt_rules_view`); the first broken rule is raised.
    """
    _check_market(bid, rules)
    if product is None:
        product = _rt_product(bid, rules, bid.product_id)
    elif product.id != bid.product_id:
        raise MarketRuleError(
            "rt_product", f"bid for product {bid.product_id!r} checked against {product.id!r}"
        )
    _check_enabled(bid, rules, product)
    _check_period(bid, rules, product)
    _check_direction(bid, rules, product)
    _check_rt_curve(bid, rules, product)


def check_rt_gate_closure(
    bid: RealTimeBid, rules: MarketRules, product_id: str, now: dt.datetime
) -> None:
    """Raise ``rt_gate_closure`` when ``now`` is after the gate of the bid's period."""
    require_aware(now, "now")
    period_gate = PRODUCTS["real_time"].period_gate_closure
    assert period_gate is not None  # the real_time entry has one
    gate = period_gate(rules, product_id, bid.period_start)
    if now > gate:
        raise MarketRuleError(
            "rt_gate_closure",
            f"{product_id} period {_local(bid.period_start, rules)}: received "
            f"{_local(now, rules)}, allowed until the gate at {_local(gate, rules)} "
            f"({rules.timezone})",
        )


def check_rt_submission(
    bid: RealTimeBid, rules: MarketRules, product_id: str, now: dt.datetime
) -> None:
    """The exchange's check of a real-time bid on receipt: :func:`check_rt_bid`'s rules with
    the period's gate closure (``rt_gate_closure``) after ``rt_period``."""
    _check_market(bid, rules)
    product = _rt_product(bid, rules, product_id)
    _check_enabled(bid, rules, product)
    _check_period(bid, rules, product)
    check_rt_gate_closure(bid, rules, product_id, now)
    _check_direction(bid, rules, product)
    _check_rt_curve(bid, rules, product)


# --------------------------------------------------------------------------- real-time clearing


def _price(prices_row: Mapping[str, float], column: str, product: RealTimeProduct) -> float:
    try:
        value = float(prices_row[column])
    except KeyError:
        raise InputError(
            f"{product.id} clears against {column!r}, not in the price row "
            f"({sorted(prices_row)})"
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{product.id}: {column} = {value}, a realised price must be finite")
    return value


def rt_clearing_price(
    bid: RealTimeBid, product: RealTimeProduct, prices_row: Mapping[str, float]
) -> float:
    """The price a real-time bid clears against and is paid [currency/MWh]: the product's
    column (a regulating bid: the up- or down-regulating price of its direction)."""
    if product.kind == "regulating":
        column = product.price_columns[0 if bid.direction == "up" else 1]
    else:
        column = product.price_columns[0]
    return _price(prices_row, column, product)


def clear_rt_bid(
    bid: RealTimeBid, product: RealTimeProduct, prices_row: Mapping[str, float]
) -> float:
    """Quantity [MW] a real-time bid is awarded for one settlement interval.

    ``prices_row`` holds the interval's realised prices (``product.price_columns``).

    * ``energy_offer`` / ``intraday_auction``: the curve read at the price exactly as the
      day-ahead clearing reads it (``market_replay.exchange.clear_curve``): a step curve
      gives the quantity of the highest point priced at or below the price, a linear one
      interpolates; both extend flat beyond their first and last point.
    * ``regulating`` up bid: activated at the up-regulating price P where a point's price
      <= P: the quantity of the highest such point, 0 if P is below every point.
    * ``regulating`` down bid: activated at the down-regulating price P where a point's
      price >= P: the quantity of the lowest such point, 0 if P is above every point.

    A point's quantity is the total at that price, so a monotone curve's award grows
    step by step as the regulating price moves away from the spot price.
    """
    if bid.product_id != product.id:
        raise InputError(f"bid for product {bid.product_id!r} cleared as {product.id!r}")
    price = rt_clearing_price(bid, product, prices_row)
    prices = np.array([p.price_per_mwh for p in bid.points])
    quantities = np.array([p.quantity_mw for p in bid.points])
    if product.kind != "regulating":
        if product.curve == "linear":
            return float(np.interp(price, prices, quantities))
        index = int(np.searchsorted(prices, price, side="right")) - 1
        return float(quantities[max(index, 0)])
    if bid.direction == "up":
        index = int(np.searchsorted(prices, price, side="right")) - 1
        return float(quantities[index]) if index >= 0 else 0.0
    index = int(np.searchsorted(prices, price, side="left"))
    return float(quantities[index]) if index < len(prices) else 0.0
