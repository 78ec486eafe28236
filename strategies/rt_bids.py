"""Real-time bid curves: the portfolio's remaining flexibility, priced by re-optimising the day.

After the day-ahead award, for one delivery period of a real-time product
(an ERCOT real-time energy offer, a CAISO fifteen-minute-market bid, a Nordic
mFRR energy bid), :func:`flexibility_curve` answers: *if the real-time price
of that period were p, how much would the portfolio deviate from its
position?* For each candidate price ``p`` (ascending) the real-time
re-optimisation (:class:`strategies.real_time.RealTimeDispatcher`, the same
compiled model the dispatch uses, measured state and all) is solved with the
period's deviations valued at ``p`` and every other remaining interval at its
deviation prices from the settlement rule (:mod:`strategies.imbalance`). The
period's planned deviation (mean over its intervals, > 0 sold) is the
curve's quantity at ``p``. So the curve knows the SoC, the process recovery
still owed, the EV deadlines and the PV forecast -- it is the rest of the day
re-planned, not a heuristic.

**Monotone.** In a linear program the optimal amount of a good never falls
as its price rises, so the quantities are non-decreasing in ``p`` up to the
solver's tolerance and ties between equally good plans; a running maximum
makes them exactly so.

**Directions.** ``"both"`` (an energy offer): the quantity may be either
sign. ``"up"``: an up-regulating bid offers only extra selling / less
buying, ``max(q, 0)``, activated when the up price reaches its price;
``"down"``: only the opposite, ``min(q, 0)``.

:func:`candidate_prices` picks the prices from the published history: the
real-time forecast of the period plus empirical quantiles of past real-time
minus day-ahead spreads at the same local hour (up and down regulating
prices for the two directions), within the product's floor and cap.
:func:`curve_points` turns prices and quantities into a product's bid points
(lots, ticks, segments, floor/cap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from strategies.real_time import RealTimeDispatcher
from strategies.state import ParkState
from vpp.awards import IntervalAward
from vpp.errors import InputError
from vpp.timeutil import zone
from vpp.types import BidPoint
from vpp.units import KW_PER_MW

__all__ = ["CANDIDATE_PRICES", "DIRECTIONS", "FlexibilityCurve", "candidate_prices", "curve_points", "flexibility_curve"]

DIRECTIONS = ("both", "up", "down")
#: Candidate prices a curve is read at (at most the product's segments): each costs one hot
#: re-solve per park, so a few well-placed quantiles rather than every possible price.
CANDIDATE_PRICES = 6


@dataclass(frozen=True)
class FlexibilityCurve:
    """The portfolio's deviation in one period at each candidate price, and each park's part.

    Attributes:
        prices_per_mwh: the candidate prices, strictly increasing.
        quantity_mw: the portfolio's deviation at each price (non-decreasing) [MW].
        park_mw: per park, its deviation at each price [MW] (sums to ``quantity_mw``
            before the running maximum).
    """

    prices_per_mwh: np.ndarray
    quantity_mw: np.ndarray
    park_mw: Mapping[str, np.ndarray]

    def split(self, quantity_mw: float) -> dict[str, float]:
        """An awarded ``quantity_mw`` split to the parks: each park's part at the candidate
        price whose portfolio quantity is closest, scaled to the award (equal shares where
        the plan offered nothing there)."""
        parks = list(self.park_mw)
        k = int(np.argmin(np.abs(self.quantity_mw - quantity_mw)))
        parts = np.array([self.park_mw[p][k] for p in parks])
        total = parts.sum()
        if abs(total) < 1e-9:
            return {p: quantity_mw / len(parks) for p in parks}
        return {p: float(quantity_mw * part / total) for p, part in zip(parks, parts, strict=True)}


def flexibility_curve(
    dispatcher: RealTimeDispatcher,
    position: int,
    states: Mapping[str, ParkState] | None,
    award: IntervalAward,
    surplus_per_mwh: np.ndarray,
    shortfall_per_mwh: np.ndarray,
    period: slice,
    prices_per_mwh: Sequence[float] | np.ndarray,
    *,
    direction: str = "both",
) -> FlexibilityCurve:
    """The portfolio's deviation [MW] in ``period`` at each of ``prices_per_mwh`` (module doc).

    ``surplus_per_mwh`` / ``shortfall_per_mwh``: deviation prices of the
    remaining intervals ``[position, T)`` (:func:`strategies.imbalance.deviation_prices`);
    ``period``: the product's delivery intervals, positions in the horizon
    (``period.start >= position``). Returns one quantity per price, non-decreasing,
    and each park's part.
    """
    if direction not in DIRECTIONS:
        raise InputError(f"direction = {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    prices = np.asarray(prices_per_mwh, dtype=float)
    if prices.ndim != 1 or not prices.size or not np.isfinite(prices).all():
        raise InputError("flexibility_curve needs a non-empty list of finite prices")
    if np.any(np.diff(prices) <= 0):
        raise InputError("flexibility_curve: prices must strictly increase")
    start, stop = period.start or 0, period.stop
    if stop is None or not position <= start < stop <= len(dispatcher.index):
        raise InputError(
            f"period {start}:{stop} must lie within the remaining intervals "
            f"{position}:{len(dispatcher.index)}"
        )
    surplus = np.asarray(surplus_per_mwh, dtype=float).copy()
    shortfall = np.asarray(shortfall_per_mwh, dtype=float).copy()
    steps = len(dispatcher.index) - position
    if surplus.shape != (steps,) or shortfall.shape != (steps,):
        raise InputError(f"deviation prices need {steps} values (the remaining intervals)")
    window = slice(start - position, stop - position)
    quantities = np.empty(len(prices))
    parks = {p.id: np.empty(len(prices)) for p in dispatcher.parks}
    for k, price in enumerate(prices):
        s, f = surplus.copy(), shortfall.copy()
        if direction == "both":
            s[window], f[window] = price, price
        elif direction == "up":  # extra selling is paid the up price; shortfalls as before
            s[window] = price
            f[window] = np.maximum(f[window], price)
        else:  # extra buying pays the down price; surpluses as before
            f[window] = price
            s[window] = np.minimum(s[window], price)
        total = 0.0
        for park in dispatcher.parks:  # the parks' own compiled models, re-solved hot
            park_award = np.asarray(award.park(park.id), dtype=float)[position:]
            solution, _stats = dispatcher.park_problems[park.id].solve(
                position, (states or {}).get(park.id), park_award, s, f
            )
            deviation_mw = float((solution.net_kw - park_award)[window].mean()) / KW_PER_MW
            parks[park.id][k] = deviation_mw
            total += deviation_mw
        quantities[k] = total
    quantities = np.maximum.accumulate(quantities)
    if direction == "up":
        quantities = np.maximum(quantities, 0.0)
    elif direction == "down":
        quantities = np.minimum(quantities, 0.0)
    return FlexibilityCurve(prices, quantities, parks)


def candidate_prices(
    history: pd.DataFrame,
    forecast_per_mwh: float,
    period_start: pd.Timestamp,
    timezone: str,
    *,
    floor_per_mwh: float,
    cap_per_mwh: float,
    count: int,
    direction: str = "both",
    lookback_days: int = 28,
) -> np.ndarray:
    """``count`` strictly increasing prices to read the curve at (module doc).

    Spreads come from history strictly before ``period_start`` within
    ``lookback_days``: ``rt_price - da_price`` (``both``), ``rt_price_up -
    da_price`` (``up``), ``rt_price_down - da_price`` (``down``) at the
    period's local hour (all hours if that hour has fewer than 7 values).
    Without such history, a symmetric spread of 20 % of ``|forecast|`` around
    the forecast is used.
    """
    if count < 1:
        raise InputError(f"count = {count}: must be >= 1")
    if direction not in DIRECTIONS:
        raise InputError(f"direction = {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    column = {"both": "rt_price", "up": "rt_price_up", "down": "rt_price_down"}[direction]
    stamp = pd.Timestamp(period_start)
    spreads = np.array([])
    if {"da_price", column} <= set(history.columns):
        recent = history.loc[
            (history.index < stamp) & (history.index >= stamp - pd.Timedelta(days=lookback_days)),
            ["da_price", column],
        ].dropna()
        spread = recent[column] - recent["da_price"]
        local_hours = pd.DatetimeIndex(recent.index).tz_convert(zone(timezone)).hour
        same_hour = spread[local_hours == stamp.tz_convert(zone(timezone)).hour]
        spreads = (same_hour if len(same_hour) >= 7 else spread).to_numpy(float)
    if direction == "up":
        spreads = spreads[spreads > 0]
    elif direction == "down":
        spreads = spreads[spreads < 0]
    if spreads.size < 2:
        width = max(abs(forecast_per_mwh) * 0.2, 1.0)
        spreads = {"both": np.array([-width, width]), "up": np.array([0.0, width]),
                   "down": np.array([-width, 0.0])}[direction]
    levels = (np.arange(count) + 0.5) / count
    prices = forecast_per_mwh + np.quantile(spreads, levels)
    prices = np.clip(prices, floor_per_mwh, cap_per_mwh)
    prices = np.unique(np.round(prices, 6))
    if prices.size < count:  # quantiles collapsed: spread the rest evenly
        low, high = float(prices.min()), float(prices.max())
        if high - low < 1e-6:
            high = min(cap_per_mwh, low + max(abs(low) * 0.01, 1.0))
            low = max(floor_per_mwh, high - max(abs(high) * 0.02, 2.0))
        prices = np.linspace(low, high, count)
    return prices


def curve_points(
    prices_per_mwh: np.ndarray,
    quantities_mw: np.ndarray,
    *,
    min_lot_mw: float,
    price_tick_per_mwh: float,
    floor_per_mwh: float,
    cap_per_mwh: float,
    max_segments: int,
) -> tuple[BidPoint, ...]:
    """Step-curve points of a product from ascending prices and monotone quantities.

    Quantities are rounded to lots towards zero (a bid never offers more
    than the plan can deliver) and prices to ticks within floor/cap;
    consecutive points of equal quantity are merged (the first price kept);
    beyond ``max_segments`` the points are thinned evenly, keeping the first
    and the last. The result is monotone, so :func:`vpp.market_rules.check_bid`
    accepts it.
    """
    prices = np.asarray(prices_per_mwh, dtype=float)
    quantities = np.maximum.accumulate(np.asarray(quantities_mw, dtype=float))
    if prices.shape != quantities.shape or not prices.size:
        raise InputError("curve_points needs as many prices as quantities (at least one)")
    lots = np.fix(quantities / min_lot_mw + np.sign(quantities) * 1e-9)
    rounded = np.round(lots * min_lot_mw, 9) + 0.0
    rounded = np.maximum.accumulate(rounded)
    ticks = np.clip(np.round(np.round(prices / price_tick_per_mwh) * price_tick_per_mwh, 6),
                    floor_per_mwh, cap_per_mwh)
    points: list[BidPoint] = []
    previous = -np.inf
    for price, quantity in zip(ticks, rounded, strict=True):
        # Prices that round (or clip) to one tick keep the first quantity: a later, larger
        # one belongs to a price the curve cannot state.
        later_at_same_tick = price <= previous
        previous = max(previous, float(price))
        if later_at_same_tick or (points and quantity == points[-1].quantity_mw):
            continue
        points.append(BidPoint(float(price), float(quantity)))
    if len(points) > max_segments:
        keep = np.unique(np.round(np.linspace(0, len(points) - 1, max_segments)).astype(int))
        points = [points[i] for i in keep]
    return tuple(points)
