"""Deterministic schedules: optimise parks against one price series, or fall back to idle.

:func:`optimise_schedule` is the building block of the deterministic
day-ahead strategy, of perfect foresight and of ``vpp plan``: every park is
solved on its own (optionally in parallel worker processes, :func:`run_parks`)
and the results are gathered into a :class:`Schedule`.

:func:`idle_schedule` is the safe fallback when a model cannot be solved:
batteries idle, PV at its forecast (curtailed to the export limit if it
can be), processes at baseline, EVs charging as soon as they are plugged in
up to the hub limit. It needs no solver and is always finite.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cvxpy as cp
import numpy as np
import pandas as pd
import structlog

from strategies._solver import (
    DEFAULT_SOLVER,
    CompiledBounds,
    SolveStats,
    solve,
    solve_compiled,
    solve_or_none,
)
from strategies.assets import by_model
from strategies.commodity import idle_flows, with_idle_conversion
from strategies.park import ParkModel, ParkModelRequest, SolvedPark, build_park_model
from strategies.state import EnergyPolicy, ParkInputs, ParkState
from vpp.config.models import ParkConfig
from vpp.errors import InputError, SolverError
from vpp.types import Setpoint
from vpp.units import KWH_PER_MWH

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Schedule:
    """A plan for one or more parks over a horizon.

    Attributes:
        index: UTC interval starts.
        asset_power_kw: power into the grid per asset [kW], columns
            ``(park_id, asset_id)`` (sign convention of :mod:`vpp.units`).
        park_power_kw: the parks' net power at their grid connection [kW].
        soc_kwh: battery energy at the END of each interval [kWh], columns
            ``(park_id, asset_id)``.
        objective: profit over the horizon [currency]: revenue at the
            prices used minus degradation cost plus terminal value.
        stats: solver statistics (``None`` for a fallback).
        fallback: True when this is :func:`idle_schedule` because a solve failed.
        errors: what failed, per park, when ``fallback`` is True.
        flows: heat [kW_th] and hydrogen [kg/h] each asset supplies per node
            (:mod:`strategies.commodity`), columns ``(park_id, asset_id, node)``.
    """

    index: pd.DatetimeIndex
    asset_power_kw: pd.DataFrame
    park_power_kw: pd.DataFrame
    soc_kwh: pd.DataFrame
    objective: float
    stats: SolveStats | None
    fallback: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)
    #: What each asset supplies to a heat level [kW_th] or the hydrogen node [kg/h]
    #: (negative: takes), columns ``(park_id, asset_id, node)``; empty without heat or hydrogen.
    flows: pd.DataFrame = field(default_factory=pd.DataFrame)

    def setpoints(self, position: int = 0) -> list[Setpoint]:
        """Per-asset setpoints for interval ``position`` of the index."""
        start = self.index[position].to_pydatetime()
        row = self.asset_power_kw.iloc[position]
        return [
            Setpoint(park_id, asset_id, start, float(row[(park_id, asset_id)]))
            for park_id, asset_id in self.asset_power_kw.columns
        ]


def _frames(
    index: pd.DatetimeIndex, parts: Sequence[tuple[str, Mapping[str, np.ndarray]]]
) -> pd.DataFrame:
    columns = {(park, asset): values for park, assets in parts for asset, values in assets.items()}
    frame = pd.DataFrame(columns, index=index)
    frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["park_id", "asset_id"])
    return frame


def price_objective(model: ParkModel, price: cp.Parameter) -> cp.Expression:
    """Expected revenue [currency] of ``model.net_kw`` at ``price`` [currency/MWh] (S, T)."""
    coef = model.weights[:, None] * model.dt_h[None, :] / KWH_PER_MWH
    return cp.sum(cp.multiply(price, cp.multiply(coef, model.net_kw)))


def solve_park(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    prices_per_mwh: np.ndarray,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    omit: frozenset[str] = frozenset(),
    energy_policy: EnergyPolicy = "cap",
) -> tuple[ParkModel, SolveStats]:
    """Maximise one park's profit at ``prices_per_mwh`` (T,); raises on failure."""
    start = time.perf_counter()
    model = build_park_model(
        park, inputs, state, dt_h, omit=omit, energy_policy=energy_policy
    )
    prices = np.asarray(prices_per_mwh, dtype=float).reshape(1, -1)
    if prices.shape[1] != len(inputs.index) or not np.isfinite(prices).all():
        raise InputError(f"{park.id}: need {len(inputs.index)} finite prices, got {prices.shape}")
    price = cp.Parameter(prices.shape, name="price_per_mwh", value=prices)
    problem = cp.Problem(
        cp.Minimize(model.builder.cost - price_objective(model, price)),
        model.builder.cvxpy_constraints,
    )
    build_s = time.perf_counter() - start
    stats = solve(
        problem, [model.builder], solver=solver, time_limit_s=time_limit_s, build_s=build_s,
        context={"model": "schedule", "park": park.id, "intervals": len(inputs.index)},
    )
    return model, stats


@dataclass
class _Shared:
    """One compiled schedule problem serving every park of one structure (see :func:`solve_shared`)."""

    model: ParkModel
    price: cp.Parameter
    problem: cp.Problem
    bounds: CompiledBounds
    compile_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    solves: int = 0


#: Compiled shared schedule problems of this process, by structure (most recent last).
_SHARED: OrderedDict[tuple[Hashable, str], _Shared | None] = OrderedDict()
_SHARED_MAX = 8
_SHARED_LOCK = threading.Lock()


def solve_shared(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    prices_per_mwh: np.ndarray,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    omit: frozenset[str] = frozenset(),
    energy_policy: EnergyPolicy = "cap",
) -> tuple[SolvedPark, SolveStats]:
    """:func:`solve_park`'s LP and result, in one compiled problem per park *structure*.

    Parks of equal :meth:`~strategies.park.ParkModelRequest.structure` (same asset
    types and counts, same horizon: a portfolio of similar parks) differ only in
    numbers, so the first one's problem is compiled with every number a Parameter
    and the next ones only set values: CVXPY's compile is paid once per structure
    and process, not per park. The LP handed to the solver is the park's own, solved
    from scratch each time, so the result is :func:`solve_park`'s. A park that cannot
    share, a failed solve (diagnosed with the park's own constraint names) or a
    shared problem busy in another thread goes through :func:`solve_park`.
    """
    found = try_shared(
        park, inputs, state, dt_h, prices_per_mwh, solver=solver, time_limit_s=time_limit_s,
        omit=omit, energy_policy=energy_policy,
    )
    if found is not None:
        return found
    model, stats = solve_park(
        park, inputs, state, dt_h, prices_per_mwh, solver=solver, time_limit_s=time_limit_s,
        omit=omit, energy_policy=energy_policy,
    )
    return model.solved(), stats


def try_shared(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    prices_per_mwh: np.ndarray,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    omit: frozenset[str] = frozenset(),
    energy_policy: EnergyPolicy = "cap",
    label: str = "schedule",
) -> tuple[SolvedPark, SolveStats] | None:
    """The shared solve of :func:`solve_shared`, or ``None``: solve the park's own model.

    ``None`` when the park cannot share, the solve failed or the shared problem is busy
    in another thread. ``label`` names the model in the logs.
    """
    start = time.perf_counter()
    request = ParkModelRequest(
        park, inputs, state, dt_h, omit=omit, energy_policy=energy_policy, shared=True
    )
    prices = np.asarray(prices_per_mwh, dtype=float).reshape(1, -1)
    key = request.structure()
    shared = None if key is None else _shared_problem((key, solver), request, prices)
    if shared is not None and shared.lock.acquire(blocking=False):
        try:
            if prices.shape[1] != len(inputs.index) or not np.isfinite(prices).all():
                raise InputError(
                    f"{park.id}: need {len(inputs.index)} finite prices, got {prices.shape}"
                )
            shared.model.load(request)
            shared.price.value = prices
            shared.bounds.write(shared.model.variable_bounds())
            compile_s = 0.0 if shared.solves else shared.compile_s  # the first park pays it
            shared.solves += 1
            context = {"model": label, "park": park.id, "intervals": len(inputs.index),
                       "shared": True}
            build_s = time.perf_counter() - start - compile_s
            stats = (
                solve_compiled(shared.problem, shared.bounds, time_limit_s=time_limit_s,
                               build_s=build_s, context=context)
                if solver == "HIGHS"
                else solve_or_none(shared.problem, solver=solver, time_limit_s=time_limit_s,
                                   build_s=build_s, context=context)
            )
            if stats is not None:
                return shared.model.solved(), dataclasses.replace(
                    stats, compile_s=stats.compile_s + compile_s,
                    total_s=stats.total_s + compile_s,
                )
        finally:
            shared.lock.release()
    return None


def _shared_problem(
    key: tuple[Hashable, str], request: ParkModelRequest, prices: np.ndarray
) -> _Shared | None:
    """The process's shared problem of ``key`` (structure, solver), built from ``request``
    the first time; ``None`` if that structure cannot be shared (remembered)."""
    with _SHARED_LOCK:
        if key in _SHARED:
            _SHARED.move_to_end(key)
            return _SHARED[key]
    if prices.shape[1] != len(request.index) or not np.isfinite(prices).all():
        return None  # solve_park raises the error
    model = request.build()
    price = cp.Parameter(prices.shape, name="price_per_mwh", value=prices)
    problem = cp.Problem(
        cp.Minimize(model.builder.cost - price_objective(model, price)),
        model.builder.cvxpy_constraints,
    )
    built = None
    if problem.is_dpp():
        began = time.perf_counter()
        bounds = CompiledBounds.of(problem, key[1], model.variable_bounds())
        if bounds is not None:
            built = _Shared(model, price, problem, bounds, time.perf_counter() - began)
    with _SHARED_LOCK:
        found = _SHARED.setdefault(key, built)
        while len(_SHARED) > _SHARED_MAX:
            _SHARED.popitem(last=False)
    return found


def optimise_schedule(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    dt_h: np.ndarray,
    prices_per_mwh: np.ndarray | pd.Series,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    parallel: int = 1,
    energy_policy: EnergyPolicy = "cap",
    on_failure: str = "fallback",
) -> Schedule:
    """Optimal schedule of every park at one price series; parks solved independently.

    ``on_failure="fallback"`` (default) returns :func:`idle_schedule` for the
    whole portfolio, flagged ``fallback=True`` with the errors, when any park
    fails; ``"raise"`` re-raises the :class:`~vpp.SolverError`.
    """
    if not parks:
        raise InputError("no parks to schedule")
    prices = np.asarray(prices_per_mwh, dtype=float)
    run = functools.partial(
        _solve_park_at, dt_h=dt_h, prices=prices, solver=solver, time_limit_s=time_limit_s,
        energy_policy=energy_policy,
    )
    try:
        results = run_parks(parks, inputs, states, run, parallel)
    except SolverError as exc:
        if on_failure == "raise":
            raise
        return idle_schedule(parks, inputs, states, dt_h, prices, errors={"portfolio": str(exc)})
    return schedule_from_models([m for m, _ in results], [s for _, s in results], 0)


def _solve_park_at(
    park: ParkConfig, inputs: ParkInputs, state: ParkState | None, **kwargs: Any
) -> tuple[SolvedPark, SolveStats]:
    dt_h, prices = kwargs.pop("dt_h"), kwargs.pop("prices")
    return solve_shared(park, inputs, state, dt_h, prices, **kwargs)


ParkRun = Callable[[ParkConfig, ParkInputs, "ParkState | None"], _T]

_POOLS: dict[int, ProcessPoolExecutor] = {}


def _quiet_worker() -> None:
    """Park workers log warnings and up as JSON lines (the parent logs the run)."""
    from vpp.logging import configure_logging

    configure_logging(json=True, level="WARNING")


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process's pool of ``workers`` park solvers, started once and reused ("spawn":
    HiGHS keeps threads, which do not survive a fork)."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_quiet_worker,
        )
        _POOLS[workers] = pool
    return pool


def _call(task: tuple[ParkRun[_T], ParkConfig, ParkInputs, ParkState | None]) -> _T:
    run, park, inputs, state = task
    return run(park, inputs, state)


def run_parks(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    run: ParkRun[_T],
    parallel: int = 1,
) -> list[_T]:
    """``run(park, its inputs, its state)`` for each park; results in the parks' order.

    Parks share nothing but the market, so each is one task. ``parallel`` > 1 runs
    them in that many worker processes (a pool started on first use and kept), 1 in
    this process: the same function on the same values either way, so the results
    are identical whatever the number of workers. ``run`` must then pickle (a
    ``functools.partial`` of a module-level function), as must what it returns.
    """
    tasks = [(run, p, inputs[p.id], (states or {}).get(p.id)) for p in parks]
    if parallel > 1 and len(parks) > 1:
        chunk = max(1, len(tasks) // (4 * parallel))
        return list(_pool(parallel).map(_call, tasks, chunksize=chunk))
    return [_call(t) for t in tasks]


def schedule_from_models(
    models: Sequence[ParkModel | SolvedPark], stats: Sequence[SolveStats], scenario: int
) -> Schedule:
    """Gather one scenario's solved values of several park models into a :class:`Schedule`."""
    index = models[0].index
    assets = _frames(
        index, [(m.park.id, {a: v[scenario] for a, v in m.asset_power_kw().items()}) for m in models]
    )
    soc = _frames(
        index, [(m.park.id, {a: v[scenario] for a, v in m.soc_kwh().items()}) for m in models]
    )
    parks = pd.DataFrame(
        {m.park.id: m.net_power_kw()[scenario] for m in models}, index=index
    )
    total = stats[0]
    for extra in stats[1:]:
        total = total.plus(extra)
    flows = flow_frame(
        index,
        {(m.park.id, a, n): v[scenario] for m in models for (a, n), v in m.commodity_flows().items()},
    )
    return Schedule(index, assets, parks, soc, total.objective, total, flows=flows)


def flow_frame(
    index: pd.DatetimeIndex, columns: Mapping[tuple[str, str, str], np.ndarray]
) -> pd.DataFrame:
    """Heat and hydrogen flows with columns ``(park_id, asset_id, node)`` (empty: none)."""
    frame = pd.DataFrame(dict(columns), index=index)
    frame.columns = pd.MultiIndex.from_tuples(
        list(columns), names=["park_id", "asset_id", "node"]
    )
    return frame


def idle_power_kw(
    park: ParkConfig, inputs: ParkInputs, state: ParkState | None, dt_h: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-asset power [kW] (T,) and stored energy [kWh] (T,) of the idle fallback.

    Each type gives its own idle schedule (:meth:`~strategies.assets.AssetModel.idle_power_kw`);
    types placed after the others (PV) get the export room the others leave.
    """
    steps = len(inputs.index)
    groups = by_model(park.assets)
    inputs = with_idle_conversion(park, inputs)
    power: dict[str, np.ndarray] = {}
    soc: dict[str, np.ndarray] = {}
    for after in (False, True):
        placed = [power[a.id] for a in park.assets if a.id in power]
        others = sum(placed, np.zeros(steps))
        headroom = np.maximum(park.grid.export_limit_kw - others, 0.0)
        for model, specs in groups:
            if model.idle_after_others is after:
                part_power, part_soc = model.idle_power_kw(specs, inputs, state, dt_h, headroom)
                power.update(part_power)
                soc.update(part_soc)
    order = {a.id: i for i, a in enumerate(park.assets)}
    return (
        dict(sorted(power.items(), key=lambda kv: order[kv[0]])),
        dict(sorted(soc.items(), key=lambda kv: order[kv[0]])),
    )


def idle_schedule(
    parks: Sequence[ParkConfig],
    inputs: Mapping[str, ParkInputs],
    states: Mapping[str, ParkState] | None,
    dt_h: np.ndarray,
    prices_per_mwh: np.ndarray | None = None,
    *,
    errors: Mapping[str, str] | None = None,
) -> Schedule:
    """The safe fallback schedule (see module doc); ``objective`` is its revenue at the prices."""
    index = inputs[parks[0].id].index
    power_parts, soc_parts = [], []
    flows: dict[tuple[str, str, str], np.ndarray] = {}
    for park in parks:
        power, soc = idle_power_kw(park, inputs[park.id], (states or {}).get(park.id), dt_h)
        power_parts.append((park.id, power))
        soc_parts.append((park.id, soc))
        for (asset_id, node), values in idle_flows(park, inputs[park.id], power).items():
            flows[(park.id, asset_id, node)] = values
    assets = _frames(index, power_parts)
    parks_frame = assets.T.groupby(level="park_id").sum().T
    objective = 0.0
    if prices_per_mwh is not None:
        net = parks_frame.sum(axis=1).to_numpy()
        prices = np.asarray(prices_per_mwh, dtype=float).reshape(-1)
        objective = float(np.sum(prices * net * dt_h) / KWH_PER_MWH)
    log.warning("fallback_schedule", parks=[p.id for p in parks], errors=dict(errors or {}))
    return Schedule(
        index, assets, parks_frame, _frames(index, soc_parts), objective, None,
        fallback=True, errors=dict(errors or {}), flows=flow_frame(index, flows),
    )
