"""Perfect foresight: the same park models with the realized prices known in advance.

The upper bound every backtest compares against. Two forms:

* one price series (``rt_price=None``): maximise ``sum_t price[t] * net_kw[t] * dt_h[t] / 1000``
  minus costs -- the optimal schedule at known prices (``vpp plan`` uses the
  day-ahead price);
* two-settlement (``rt_price`` given): the park also chooses its day-ahead
  position ``position_kw`` per day-ahead product within its grid connection
  (``-import_limit_kw <= position_kw <= export_limit_kw``), and earns
  ``da_price * position + rt_price * (net - position)`` per interval -- the
  most any strategy could earn under that settlement with the same assets;
* regulating (``rt_price_up`` and ``rt_price_down`` given: the Nordic
  two-price rule with mFRR energy bids): the Nordic settlement itself as one
  portfolio LP (:func:`_regulating_bound`).

EV sessions should be the *realized* ones (:func:`realized_states`), since
foresight knows who comes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from strategies._solver import DEFAULT_SOLVER, SolveStats, solve
from strategies.assets import InputsRequest, model_for
from strategies.day_ahead import product_matrix
from strategies.park import SolvedPark, build_park_model, interval_hours
from strategies.schedule import Schedule, run_parks, schedule_from_models, try_shared
from strategies.state import (
    AssetState,
    EnergyPolicy,
    ParkInputs,
    ParkState,
    initial_state,
)
from vpp.config.models import ParkConfig
from vpp.errors import InputError
from vpp.units import KWH_PER_MWH


@dataclass(frozen=True)
class ForesightResult:
    """The perfect-foresight schedule and (two-settlement form) the day-ahead positions [kW]."""

    schedule: Schedule
    position_kw: pd.DataFrame | None

    @property
    def objective(self) -> float:
        return self.schedule.objective


def realized_states(
    park: ParkConfig,
    config_dir: Path,
    index: pd.DatetimeIndex,
    state: ParkState | None = None,
) -> dict[str, AssetState]:
    """``state`` (default: as configured) with what will really happen over ``index``.

    Each type says what that is (:meth:`~strategies.assets.AssetModel.realized_state`):
    for EV hubs, every realized session plugged in.
    """
    out = dict(state) if state is not None else initial_state(park)
    request = InputsRequest(config_dir, index, park.timezone, park=park)
    for asset in park.assets:
        previous = out.get(asset.id, AssetState())
        realized = model_for(asset).realized_state(asset, previous, request)
        if realized is not None:
            out[asset.id] = realized
    return out


def _as_array(prices: pd.Series | np.ndarray, index: pd.DatetimeIndex, name: str) -> np.ndarray:
    if isinstance(prices, pd.Series):
        if not prices.index.equals(index):
            raise InputError(f"{name} must be indexed by the horizon's interval starts")
        prices = prices.to_numpy(float)
    values = np.asarray(prices, dtype=float)
    if values.shape != (len(index),) or not np.isfinite(values).all():
        raise InputError(f"{name} needs {len(index)} finite values [currency/MWh]")
    return values


def _foresight_park(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    *,
    dt_h: np.ndarray,
    da: np.ndarray,
    rt: np.ndarray | None,
    products: Any,
    expand: Any,
    solver: str,
    time_limit_s: float,
    energy_policy: EnergyPolicy,
) -> tuple[SolvedPark, SolveStats, np.ndarray | None]:
    """One park's perfect-foresight solve (a task of :func:`run_parks`).

    Day-ahead only (``rt`` None) it is :func:`strategies.schedule.solve_park`'s LP at
    ``da``, so parks of one structure share a compiled problem (:func:`try_shared`).
    """
    if rt is None:
        found = try_shared(
            park, inputs, state, dt_h, da, solver=solver, time_limit_s=time_limit_s,
            energy_policy=energy_policy, label="perfect_foresight",
        )
        if found is not None:
            return found[0], found[1], None
    start = time.perf_counter()
    model = build_park_model(
        park, inputs, state, dt_h, energy_policy=energy_policy
    )
    net = model.net_kw[0]
    per_kwh = dt_h / KWH_PER_MWH
    position = None
    if rt is None:
        revenue = cp.sum(cp.multiply(da * per_kwh, net))
    else:
        position = cp.Variable(
            products.shape[0],
            name="position_kw",
            bounds=[
                np.full(products.shape[0], -park.grid.import_limit_kw),
                np.full(products.shape[0], park.grid.export_limit_kw),
            ],
        )
        held = expand @ position
        revenue = cp.sum(cp.multiply(da * per_kwh, held)) + cp.sum(
            cp.multiply(rt * per_kwh, net - held)
        )
    problem = cp.Problem(
        cp.Minimize(model.builder.cost - revenue), model.builder.cvxpy_constraints
    )
    stats = solve(
        problem, [model.builder], solver=solver, time_limit_s=time_limit_s,
        build_s=time.perf_counter() - start,
        context={"model": "perfect_foresight", "park": park.id, "intervals": len(inputs.index)},
    )
    held_kw = None if position is None else np.asarray(expand @ position.value)
    return model.solved(), stats, held_kw


def perfect_foresight(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    interval_minutes: int,
    price: pd.Series | np.ndarray,
    rt_price: pd.Series | np.ndarray | None = None,
    *,
    rt_price_up: pd.Series | np.ndarray | None = None,
    rt_price_down: pd.Series | np.ndarray | None = None,
    product_minutes: int | None = None,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    parallel: int = 1,
    energy_policy: EnergyPolicy = "cap",
) -> ForesightResult:
    """Optimal schedule with realized prices known; raises :class:`~vpp.SolverError` on failure.

    ``price`` is the day-ahead (or only) price [currency/MWh] per interval;
    ``product_minutes`` the day-ahead product length (default ``interval_minutes``);
    ``rt_price_up`` and ``rt_price_down`` (both or neither, not with ``rt_price``): the
    regulating form (:func:`_regulating_bound`), its ``position_kw`` each park's day-ahead
    schedule per interval.
    """
    index = inputs[parks[0].id].index
    dt_h = interval_hours(index, interval_minutes)
    da = _as_array(price, index, "price")
    rt = None if rt_price is None else _as_array(rt_price, index, "rt_price")
    if (rt_price_up is None) != (rt_price_down is None) or (
        rt_price_up is not None and rt is not None
    ):
        raise InputError(
            "perfect_foresight: give rt_price_up with rt_price_down (the regulating form) "
            "or rt_price (two-settlement), not a mix"
        )
    if rt_price_up is not None and rt_price_down is not None:
        return _regulating_bound(
            parks, inputs, states, dt_h, da,
            _as_array(rt_price_up, index, "rt_price_up"),
            _as_array(rt_price_down, index, "rt_price_down"),
            solver=solver, time_limit_s=time_limit_s, energy_policy=energy_policy,
        )
    products = product_matrix(index, product_minutes or interval_minutes, interval_minutes)
    expand = (products > 0).astype(float).T.tocsr()  # (T, products): product value per interval

    run = functools.partial(
        _foresight_park, dt_h=dt_h, da=da, rt=rt, products=products, expand=expand,
        solver=solver, time_limit_s=time_limit_s, energy_policy=energy_policy,
    )
    results = run_parks(parks, inputs, states, run, parallel)
    schedule = schedule_from_models([m for m, _, _ in results], [s for _, s, _ in results], 0)
    positions = None
    if rt is not None:
        positions = pd.DataFrame(
            {m.park.id: held for m, _, held in results}, index=index
        )
    return ForesightResult(schedule, positions)


def _regulating_bound(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    dt_h: np.ndarray,
    da: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
    *,
    solver: str,
    time_limit_s: float,
    energy_policy: EnergyPolicy,
) -> ForesightResult:
    """The most the portfolio can earn with day-ahead and regulating (mFRR) bids, one LP.

    Each park's model twice, as :func:`_foresight_park` builds it: the physical
    schedule ``x`` (its costs paid) and the schedule ``a`` sold day-ahead (only
    its constraints: it is a schedule, not a delivery). Per interval, for the
    portfolio (it is the one participant, so its sums are what settles):

    * activations ``u >= 0``, allowed only where ``up > da``, and ``d <= 0``,
      only where ``down < da``, each within the grid connection from the award
      (``sum a + u <= sum export_limit_kw``, ``sum a + d >= -sum import_limit_kw``);
    * the imbalance ``e = sum net(x) - sum net(a) - u - d``, valued ``min(e * up,
      e * down)`` -- a surplus at the down price, a shortfall at the up price,
      exactly :func:`vpp.runtime.settlement.settle`'s two-price rule;

    maximising ``a * da + u * up + d * down + value(e) - cost(x)``. Why that bounds
    a strategy: :func:`vpp.backtest.run.foresight`. The objective is reported
    like the other forms; ``position_kw`` holds each park's ``a``.
    """
    start = time.perf_counter()
    physical = [build_park_model(p, inputs[p.id], (states or {}).get(p.id), dt_h,
                                 energy_policy=energy_policy) for p in parks]
    sold = [build_park_model(p, inputs[p.id], (states or {}).get(p.id), dt_h,
                             energy_policy=energy_policy) for p in parks]
    steps = len(da)
    export_kw = sum(p.grid.export_limit_kw for p in parks)
    import_kw = sum(p.grid.import_limit_kw for p in parks)
    span_kw = export_kw + import_kw
    net_x = sum((m.net_kw[0] for m in physical), cp.Constant(np.zeros(steps)))
    net_a = sum((m.net_kw[0] for m in sold), cp.Constant(np.zeros(steps)))
    activate_up = cp.Variable(
        steps, name="activation_up_kw", bounds=[np.zeros(steps), np.where(up > da, span_kw, 0.0)]
    )
    activate_down = cp.Variable(
        steps, name="activation_down_kw",
        bounds=[np.where(down < da, -span_kw, 0.0), np.zeros(steps)],
    )
    per_kwh = dt_h / KWH_PER_MWH
    imbalance_kw = net_x - net_a - activate_up - activate_down
    imbalance_value = cp.Variable(steps, name="imbalance_value")
    constraints = [
        c for m in physical + sold for c in m.builder.cvxpy_constraints
    ] + [
        net_a + activate_up <= export_kw,
        net_a + activate_down >= -import_kw,
        imbalance_value <= cp.multiply(up * per_kwh, imbalance_kw),
        imbalance_value <= cp.multiply(down * per_kwh, imbalance_kw),
    ]
    revenue = (
        cp.sum(cp.multiply(da * per_kwh, net_a))
        + cp.sum(cp.multiply(up * per_kwh, activate_up))
        + cp.sum(cp.multiply(down * per_kwh, activate_down))
        + cp.sum(imbalance_value)
    )
    cost = sum((m.builder.cost for m in physical), cp.Constant(0.0))
    problem = cp.Problem(cp.Minimize(cost - revenue), constraints)
    stats = solve(
        problem, [m.builder for m in physical + sold], solver=solver,
        time_limit_s=time_limit_s, build_s=time.perf_counter() - start,
        context={"model": "perfect_foresight_regulating", "parks": len(parks),
                 "intervals": steps},
    )
    schedule = schedule_from_models(physical, [stats], 0)
    positions = pd.DataFrame(
        {m.park.id: np.asarray(m.net_kw.value)[0] for m in sold}, index=physical[0].index
    )
    return ForesightResult(schedule, positions)
