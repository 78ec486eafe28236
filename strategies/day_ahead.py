"""Day-ahead bids: monotone price-quantity curves from a stochastic program over price scenarios.

**Program.** For scenarios ``s`` (probability ``p_s``, prices ``price[s, t]``
clipped to the market's floor and cap) every park gets one copy of its asset
model per scenario. The objective is the expected profit
``sum_s p_s sum_t price[s, t] * net_kw[s, t] * dt_h[t] / 1000 - expected costs``.
The day-ahead position of a product ``j`` (a market time unit; it may span
several schedule intervals) is ``q[s, j]`` = the mean of ``net_kw`` over the
product's intervals.

**Monotone by construction.** Per product, scenarios are sorted by price and
grouped (equal prices form one group). Non-anticipativity ties scenarios of a
group to one quantity (``bid-tie``), and an ordering constraint makes
quantity non-decreasing from each group to the next more expensive one
(``bid-monotone``): a higher price never yields less energy sold or more
bought. Each park is constrained on its own (parks are solved independently,
in parallel if asked) and a sum of monotone curves is monotone, so the
portfolio curve is monotone too.

**Curve.** Group ``g`` of product ``j`` becomes a point with quantity
``sum_parks q[g, j]`` [MW]. ``step`` curves (the exchange reads the quantity of
the last point at or below the clearing price): the first point is at the
floor, point ``g`` starts half-way between the prices of groups ``g-1`` and
``g`` (nearest-scenario rule), rounded to the price tick. ``linear`` curves:
points at the group prices, extended flat to floor and cap. Quantities are
rounded to the nearest multiple of ``min_lot_mw`` (a monotone rounding, so
the curve stays monotone; the residual, at most half a lot, is left to
real-time); consecutive points of equal quantity are merged.

**Too many segments.** If a product has more groups than the market allows,
groups are merged: a dynamic program picks the contiguous partition of the
sorted groups into ``max_segments`` parts that minimises the probability
weighted squared deviation of the first solve's quantities from their part's
mean (optimal 1-D quantisation), then the program is solved again with the
merged groups tied, so the final quantities are optimal for the merged curve.

**quantity_only** markets take one quantity per product: all scenarios are
tied (the expected-price optimum); the single point's price is the floor.

**Allocation.** :class:`BidAllocation` records, per product and curve
group, the scenario schedule of every asset. An award of ``Q`` MW is split
back to parks and assets by interpolating, in quantity, between the two
groups whose quantities bracket ``Q`` (:meth:`BidAllocation.award`, a
:class:`vpp.awards.IntervalAward` in kW per schedule interval).
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp
import structlog

from strategies._model import ModelBuilder
from strategies._solver import DEFAULT_SOLVER, SolveStats, solve
from strategies.forecast import Forecast
from strategies.park import ParkModel, build_park_model, interval_hours
from strategies.schedule import (
    Schedule,
    idle_schedule,
    price_objective,
    run_parks,
    schedule_from_models,
)
from strategies.state import EnergyPolicy, ParkInputs, ParkState
from vpp.awards import IntervalAward, delivery_intervals, portfolio_award_kw
from vpp.config.models import MarketRules, ParkConfig
from vpp.errors import InputError, SolverError
from vpp.market_rules import check_bid
from vpp.types import Award, BidCurve, BidPoint, DayAheadBid
from vpp.units import KW_PER_MW

log = structlog.get_logger(__name__)

Groups = list[list[np.ndarray]]  # per product: scenario index arrays, cheapest group first


# --------------------------------------------------------------------------- products


def product_matrix(index: pd.DatetimeIndex, product_minutes: int, interval_minutes: int) -> sp.csr_matrix:
    """Sparse (products, intervals) matrix averaging the intervals of each day-ahead product."""
    if product_minutes % interval_minutes:
        raise InputError(
            f"day-ahead product {product_minutes} min is not a multiple of {interval_minutes} min"
        )
    per = product_minutes // interval_minutes
    if len(index) % per:
        raise InputError(f"{len(index)} intervals do not fill whole {product_minutes}-min products")
    products = np.arange(len(index)) // per
    return sp.csr_matrix(
        (np.full(len(index), 1.0 / per), (products, np.arange(len(index)))),
        shape=(len(index) // per, len(index)),
    )


def price_groups(product_prices: np.ndarray, tick: float, quantity_only: bool) -> Groups:
    """Per product, scenarios sorted by price and grouped by equal (tick-rounded) price."""
    _scenarios, products = product_prices.shape
    out: Groups = []
    for j in range(products):
        order = np.argsort(product_prices[:, j], kind="stable")
        if quantity_only:
            out.append([order])
            continue
        rounded = np.round(product_prices[order, j] / tick)
        breaks = np.flatnonzero(np.diff(rounded)) + 1
        out.append(np.split(order, breaks))
    return out


def merge_groups(
    groups: Groups, quantities: np.ndarray, probabilities: np.ndarray, limit: int
) -> Groups:
    """Merge each product's groups into at most ``limit`` contiguous parts (see module doc).

    ``quantities`` (S, products) are the portfolio quantities of the first solve.
    """
    out: Groups = []
    for j, product in enumerate(groups):
        if len(product) <= limit:
            out.append(product)
            continue
        q = np.array([quantities[g[0], j] for g in product])
        w = np.array([probabilities[g].sum() for g in product])
        cuts = _optimal_partition(q, w, limit)
        out.append([np.concatenate(product[a:b]) for a, b in itertools.pairwise(cuts)])
    return out


def _optimal_partition(values: np.ndarray, weights: np.ndarray, parts: int) -> list[int]:
    """Boundaries of the contiguous partition minimising weighted squared error (DP)."""
    n = len(values)
    cw = np.concatenate([[0.0], np.cumsum(weights)])
    cwx = np.concatenate([[0.0], np.cumsum(weights * values)])
    cwxx = np.concatenate([[0.0], np.cumsum(weights * values * values)])

    def cost(a: int, b: int) -> float:  # items a..b-1
        w = cw[b] - cw[a]
        if w <= 0:
            return 0.0
        s = cwx[b] - cwx[a]
        return float(cwxx[b] - cwxx[a] - s * s / w)

    best = np.full((parts + 1, n + 1), np.inf)
    back = np.zeros((parts + 1, n + 1), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, parts + 1):
        for b in range(k, n + 1):
            for a in range(k - 1, b):
                value = best[k - 1, a] + cost(a, b)
                if value < best[k, b] - 1e-12:
                    best[k, b], back[k, b] = value, a
    cuts = [n]
    for k in range(parts, 0, -1):
        cuts.append(int(back[k, cuts[-1]]))
    return cuts[::-1]


# --------------------------------------------------------------------------- park program


def _ordering_matrices(
    groups: Groups, scenarios: int, products: int
) -> tuple[sp.csr_matrix, list[int], sp.csr_matrix, list[int]]:
    """Sparse rows over vec_C(q) (index ``s * products + j``): ties (== 0) and order (<= 0)."""
    tie_r: list[int] = []
    tie_c: list[int] = []
    tie_v: list[float] = []
    tie_j: list[int] = []
    ord_r: list[int] = []
    ord_c: list[int] = []
    ord_v: list[float] = []
    ord_j: list[int] = []
    for j, product in enumerate(groups):
        for g, members in enumerate(product):
            head = int(members[0])
            for other in members[1:]:
                row = len(tie_j)
                tie_r += [row, row]
                tie_c += [int(other) * products + j, head * products + j]
                tie_v += [1.0, -1.0]
                tie_j.append(j)
            if g:
                row = len(ord_j)
                previous_head = int(product[g - 1][0])
                ord_r += [row, row]
                ord_c += [previous_head * products + j, head * products + j]
                ord_v += [1.0, -1.0]
                ord_j.append(j)
    size = scenarios * products
    ties = sp.csr_matrix((tie_v, (tie_r, tie_c)), shape=(len(tie_j), size))
    order = sp.csr_matrix((ord_v, (ord_r, ord_c)), shape=(len(ord_j), size))
    return ties, tie_j, order, ord_j


def _bid_park_task(
    park: ParkConfig, inputs: ParkInputs, state: ParkState | None, **kwargs: Any
) -> tuple[ParkModel, SolveStats]:
    """One park's bid model solved (a task of :func:`strategies.schedule.run_parks`)."""
    names = ("dt_h", "prices", "probabilities", "groups", "products", "product_starts")
    positional = [kwargs.pop(n) for n in names]
    return _solve_bid_park(park, inputs, state, *positional, **kwargs)


def _solve_bid_park(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    prices: np.ndarray,
    probabilities: np.ndarray,
    groups: Groups,
    products: sp.csr_matrix,
    product_starts: pd.DatetimeIndex,
    *,
    solver: str,
    time_limit_s: float,
    energy_policy: EnergyPolicy,
    omit: frozenset[str],
) -> tuple[ParkModel, SolveStats]:
    start = time.perf_counter()
    scenarios = prices.shape[0]
    model = build_park_model(
        park, inputs, state, dt_h, scenarios=scenarios, weights=probabilities,
        omit=omit, energy_policy=energy_policy,
    )
    price = cp.Parameter(prices.shape, name="price_per_mwh", value=prices)
    n_products = products.shape[0]
    position = model.net_kw @ products.T  # (S, products) [kW]
    flat = cp.vec(position, order="C")
    ties, tie_j, order, order_j = _ordering_matrices(groups, scenarios, n_products)
    builder: ModelBuilder = model.builder
    labels = [f"{park.id}/{product_starts[j].isoformat()}" for j in range(n_products)]
    if ties.shape[0]:
        builder.add("bid", "quantity", "tie", [labels[j] for j in tie_j], ties @ flat, "==")
    if order.shape[0]:
        builder.add("bid", "quantity", "monotone", [labels[j] for j in order_j], order @ flat, "<=")
    problem = cp.Problem(
        cp.Minimize(builder.cost - price_objective(model, price)), builder.cvxpy_constraints
    )
    build_s = time.perf_counter() - start
    stats = solve(
        problem, [builder], solver=solver, time_limit_s=time_limit_s, build_s=build_s,
        context={"model": "day_ahead_bid", "park": park.id, "scenarios": scenarios,
                 "intervals": len(dt_h)},
    )
    return model, stats


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BidAllocation:
    """How an award is split back to parks and assets (see module doc).

    Attributes:
        index: schedule interval starts (UTC).
        product_starts: day-ahead product starts (UTC), one per curve.
        product_of: product position of each schedule interval.
        groups: per product, the scenario index arrays of each curve group,
            cheapest first (after merging).
        group_quantity_mw: per product, the portfolio quantity of each group [MW]
            before lot rounding.
        asset_power_kw: per ``(park_id, asset_id)``, power per scenario (S, T) [kW].
        park_power_kw: per park, net power per scenario (S, T) [kW].
    """

    index: pd.DatetimeIndex
    product_starts: pd.DatetimeIndex
    product_of: np.ndarray
    groups: Groups
    group_quantity_mw: list[np.ndarray]
    asset_power_kw: Mapping[tuple[str, str], np.ndarray]
    park_power_kw: Mapping[str, np.ndarray]

    def _weights(self, j: int, quantity_mw: float) -> list[tuple[int, float]]:
        """(scenario, weight) pairs interpolating product ``j`` at ``quantity_mw``."""
        q = self.group_quantity_mw[j]
        heads = [int(g[0]) for g in self.groups[j]]
        if len(q) == 1 or quantity_mw <= q[0]:
            return [(heads[0], 1.0)]
        if quantity_mw >= q[-1]:
            return [(heads[-1], 1.0)]
        k = int(np.searchsorted(q, quantity_mw, side="right"))
        lo, hi = q[k - 1], q[k]
        if hi - lo <= 1e-12:
            return [(heads[k], 1.0)]
        w = (quantity_mw - lo) / (hi - lo)
        return [(heads[k - 1], 1.0 - w), (heads[k], w)]

    @property
    def product_minutes(self) -> int:
        """Length of one day-ahead product [min]: its intervals times the interval length."""
        if len(self.index) < 2:
            raise InputError("an allocation needs at least two schedule intervals")
        per = len(self.index) // len(self.product_starts)
        return per * int((self.index[1] - self.index[0]) / pd.Timedelta(minutes=1))

    def _product(self, award: Award) -> tuple[int, np.ndarray]:
        """The product position of ``award`` and its schedule intervals."""
        stamp = pd.Timestamp(award.interval_start).tz_convert("UTC")
        if stamp not in self.product_starts:
            raise InputError(f"award at {stamp} is not a product start of this bid")
        j = int(self.product_starts.get_loc(stamp))
        return j, delivery_intervals(self.index, stamp, self.product_minutes)

    def award(
        self, awards: Sequence[Award], capacity_kw: Mapping[str, float] | None = None
    ) -> IntervalAward:
        """The awards split back to parks and assets per schedule interval [kW].

        An asset's (and a park's) share is its scenario schedule interpolated at
        the awarded quantity (see module doc); what lot rounding left between the
        award and the parks' sum is spread over the parks in proportion to
        ``capacity_kw`` (default: equally). Intervals of products not awarded hold 0.
        """
        parks = list(self.park_power_kw)
        park_kw = pd.DataFrame(0.0, index=self.index, columns=parks)
        assets = list(self.asset_power_kw)
        asset_kw = np.zeros((len(self.index), len(assets)))
        weight = np.array([1.0 if capacity_kw is None else capacity_kw[p] for p in parks])
        weight = weight / weight.sum()
        for award in awards:
            j, intervals = self._product(award)
            weights = self._weights(j, award.quantity_mw)
            for k, key in enumerate(assets):
                values = self.asset_power_kw[key]
                asset_kw[intervals, k] = [
                    sum(w * values[s, t] for s, w in weights) for t in intervals
                ]
            shares = np.array(
                [[sum(w * self.park_power_kw[p][s, t] for s, w in weights) for p in parks]
                 for t in intervals]
            )
            residual = award.quantity_mw * KW_PER_MW - shares.mean(axis=0).sum()
            park_kw.iloc[intervals] = shares + residual * weight[None, :]
        columns = pd.MultiIndex.from_tuples(assets, names=["park_id", "asset_id"])
        return IntervalAward(
            portfolio_award_kw(awards, self.index, self.product_minutes),
            park_kw,
            pd.DataFrame(asset_kw, index=self.index, columns=columns),
        )

    def frame(self) -> pd.DataFrame:
        """Long table: product, group, scenario, interval, park, asset, power_kw."""
        rows = []
        for j, product in enumerate(self.groups):
            intervals = delivery_intervals(self.index, self.product_starts[j], self.product_minutes)
            for g, members in enumerate(product):
                head = int(members[0])
                for (park_id, asset_id), values in self.asset_power_kw.items():
                    for t in intervals:
                        rows.append(
                            (self.product_starts[j], g, float(self.group_quantity_mw[j][g]),
                             self.index[t], park_id, asset_id, float(values[head, t]))
                        )
        return pd.DataFrame(
            rows,
            columns=["product_start", "group", "group_quantity_mw", "interval_start",
                     "park_id", "asset_id", "power_kw"],
        )


@dataclass(frozen=True)
class DayAheadResult:
    """A day-ahead bid, how awards split back to assets, and the expected schedule."""

    bid: DayAheadBid
    allocation: BidAllocation | None
    expected_schedule: Schedule
    stats: SolveStats | None
    fallback: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- curves


def _round_lots(quantity_mw: np.ndarray, lot: float) -> np.ndarray:
    return np.floor(quantity_mw / lot + 0.5) * lot


def _curve_points(
    prices: np.ndarray, quantities: np.ndarray, rules: MarketRules
) -> tuple[BidPoint, ...]:
    """Points of one product from group prices and quantities (both ascending)."""
    floor, cap = rules.price_limits.floor_per_mwh, rules.price_limits.cap_per_mwh
    tick = rules.bidding.price_tick_per_mwh
    q = _round_lots(quantities, rules.bidding.min_lot_mw)
    q = np.round(q, 9) + 0.0
    if rules.bidding.mode == "quantity_only":
        return (BidPoint(floor, float(q[0])),)
    if rules.bidding.curve == "step":
        starts = np.concatenate([[floor], (prices[:-1] + prices[1:]) / 2.0])
        starts = np.clip(np.round(np.round(starts / tick) * tick, 6), floor, cap)
        points: list[BidPoint] = []
        for price, quantity in zip(starts, q, strict=True):
            if points and (quantity == points[-1].quantity_mw or price <= points[-1].price_per_mwh):
                continue
            points.append(BidPoint(float(price), float(quantity)))
        return tuple(points)
    # linear
    p = np.clip(np.round(np.round(prices / tick) * tick, 6), floor, cap)
    pairs = list(zip(p.tolist(), q.tolist(), strict=True))
    if pairs[0][0] > floor:
        pairs.insert(0, (floor, pairs[0][1]))
    if pairs[-1][0] < cap:
        pairs.append((cap, pairs[-1][1]))
    kept: list[tuple[float, float]] = []
    for i, (price, quantity) in enumerate(pairs):
        if kept and price <= kept[-1][0]:
            continue
        interior = 0 < i < len(pairs) - 1
        if interior and kept and quantity == kept[-1][1] and quantity == pairs[i + 1][1]:
            continue
        kept.append((price, quantity))
    return tuple(BidPoint(float(a), float(b)) for a, b in kept)


# --------------------------------------------------------------------------- entry point


def build_day_ahead_bid(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    rules: MarketRules,
    forecast: Forecast,
    *,
    portfolio_id: str,
    created_at: dt.datetime,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    parallel: int = 1,
    energy_policy: EnergyPolicy = "cap",
    on_failure: str = "fallback",
    omit: frozenset[str] = frozenset(),
) -> DayAheadResult:
    """The portfolio's day-ahead bid for the delivery day of ``forecast.index``.

    ``inputs[park_id]`` must cover ``forecast.index`` (the delivery day's
    schedule intervals, UTC). With ``on_failure="fallback"`` a failed solve
    returns a price-taking bid of the idle schedule (flagged ``fallback``);
    ``"raise"`` re-raises.
    """
    if not parks:
        raise InputError("no parks to bid for")
    index = forecast.index
    dt_h = interval_hours(index, rules.interval_minutes)
    products = product_matrix(index, rules.day_ahead.interval_minutes, rules.interval_minutes)
    product_starts = pd.DatetimeIndex(index[:: rules.day_ahead.interval_minutes // rules.interval_minutes])
    product_of = np.asarray(products.argmax(axis=0)).ravel()
    floor, cap = rules.price_limits.floor_per_mwh, rules.price_limits.cap_per_mwh
    prices = np.clip(forecast.matrix, floor, cap)
    probabilities = np.asarray(forecast.probabilities, dtype=float)
    quantity_only = rules.bidding.mode == "quantity_only"
    groups = price_groups(prices @ products.T, rules.bidding.price_tick_per_mwh, quantity_only)
    delivery_day = index[0].tz_convert(rules.timezone).date()
    limit = rules.bidding.max_segments - (2 if rules.bidding.curve == "linear" else 0)
    limit = max(limit, 1)

    def solve_all(groups: Groups) -> list[tuple[ParkModel, SolveStats]]:
        run = functools.partial(
            _bid_park_task, dt_h=dt_h, prices=prices, probabilities=probabilities,
            groups=groups, products=products, product_starts=product_starts, solver=solver,
            time_limit_s=time_limit_s, energy_policy=energy_policy, omit=omit,
        )
        return run_parks(parks, inputs, states, run, parallel)

    try:
        results = solve_all(groups)
        if any(len(g) > limit for g in groups):
            portfolio = sum(np.asarray(m.net_kw.value) @ products.T for m, _ in results)
            merged = merge_groups(groups, portfolio, probabilities, limit)
            log.info("bid_segments_merged", products=sum(len(g) > limit for g in groups),
                     limit=limit)
            first = results
            results = solve_all(merged)
            results = [
                (m, s2.after(s1)) for (m, s2), (_, s1) in zip(results, first, strict=True)
            ]
            groups = merged
    except SolverError as exc:
        if on_failure == "raise":
            raise
        return _fallback_bid(
            parks, inputs, states, rules, dt_h, forecast, products, product_starts,
            portfolio_id=portfolio_id, created_at=created_at, error=exc,
        )

    models = [m for m, _ in results]
    stats = [s for _, s in results]
    portfolio_mw = sum(np.asarray(m.net_kw.value) @ products.T for m in models) / KW_PER_MW
    product_prices = prices @ products.T
    curves = []
    group_quantity = []
    for j, product in enumerate(groups):
        heads = [int(g[0]) for g in product]
        raw = portfolio_mw[heads, j]
        if (np.diff(raw) < -1e-6 * max(1.0, float(np.abs(raw).max()))).any():
            raise SolverError(f"bid for {product_starts[j]} is not monotone: {raw}")
        quantity = np.maximum.accumulate(raw)  # removes solver round-off only (checked above)
        weights = [probabilities[g] / probabilities[g].sum() if probabilities[g].sum() > 0
                   else np.full(len(g), 1.0 / len(g)) for g in product]
        price = np.array([w @ product_prices[g, j] for w, g in zip(weights, product, strict=True)])
        group_quantity.append(quantity)
        curves.append(
            BidCurve(product_starts[j].to_pydatetime(), _curve_points(price, quantity, rules))
        )
    bid = DayAheadBid(rules.market_id, portfolio_id, delivery_day, tuple(curves), created_at)
    check_bid(bid, rules)
    allocation = BidAllocation(
        index,
        product_starts,
        product_of,
        groups,
        group_quantity,
        {(m.park.id, a): v for m in models for a, v in m.asset_power_kw().items()},
        {m.park.id: np.asarray(m.net_kw.value) for m in models},
    )
    expected = _expected_schedule(models, stats, probabilities)
    log.info("bid_built", market=rules.market_id, portfolio=portfolio_id,
             day=delivery_day.isoformat(), scenarios=len(probabilities), products=len(curves),
             objective=expected.objective)
    return DayAheadResult(bid, allocation, expected, expected.stats)


def _expected_schedule(
    models: Sequence[ParkModel], stats: Sequence[SolveStats], probabilities: np.ndarray
) -> Schedule:
    """Probability-weighted mean of the scenario schedules (feasible: the model is convex)."""
    first = schedule_from_models(models, stats, 0)
    if len(probabilities) == 1:
        return first
    assets = first.asset_power_kw * 0.0
    soc = first.soc_kwh * 0.0
    parks = first.park_power_kw * 0.0
    for s, p in enumerate(probabilities):
        one = schedule_from_models(models, stats, s)
        assets += p * one.asset_power_kw
        soc += p * one.soc_kwh
        parks += p * one.park_power_kw
    return Schedule(first.index, assets, parks, soc, first.objective, first.stats)


def _fallback_bid(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    rules: MarketRules,
    dt_h: np.ndarray,
    forecast: Forecast,
    products: sp.csr_matrix,
    product_starts: pd.DatetimeIndex,
    *,
    portfolio_id: str,
    created_at: dt.datetime,
    error: SolverError,
) -> DayAheadResult:
    """Price-taking bid of the idle schedule, one point per product at the floor."""
    idle = idle_schedule(
        parks, inputs, states, dt_h, forecast.point.to_numpy(), errors={"portfolio": str(error)}
    )
    quantity = _round_lots(
        products @ idle.park_power_kw.sum(axis=1).to_numpy() / KW_PER_MW, rules.bidding.min_lot_mw
    )
    floor = rules.price_limits.floor_per_mwh
    curves = tuple(
        BidCurve(start.to_pydatetime(), (BidPoint(floor, float(np.round(q, 9) + 0.0)),))
        for start, q in zip(product_starts, quantity, strict=True)
    )
    delivery_day = forecast.index[0].tz_convert(rules.timezone).date()
    bid = DayAheadBid(rules.market_id, portfolio_id, delivery_day, curves, created_at)
    log.warning("bid_fallback", market=rules.market_id, portfolio=portfolio_id,
                day=delivery_day.isoformat(), error=str(error))
    return DayAheadResult(bid, None, idle, None, fallback=True, errors={"portfolio": str(error)})
