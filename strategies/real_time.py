"""Real-time re-optimisation: follow the day-ahead award, re-plan the rest of the day.

At interval ``position`` of the delivery day, with the measured state of
every asset, each park's model is solved over the remaining intervals
``[position, T)``. The park's day-ahead award ``award_kw[t]`` (its share of
the portfolio award, :meth:`strategies.day_ahead.BidAllocation.park_award_kw`)
is fixed; the deviation ``net_kw[t] - award_kw[t] = surplus[t] - shortfall[t]``
(both >= 0) settles in real time::

    maximise sum_t dt_h[t] / 1000 * (price_surplus[t] * surplus[t]
                                     - price_shortfall[t] * shortfall[t]
                                     - penalty * (surplus[t] + shortfall[t]))
             - degradation + terminal value

Under ``two_settlement`` both prices are the real-time price forecast, so
the park deviates from its award exactly when the forecast makes it pay;
``deviation_penalty_per_mwh`` (default 0) adds a cost per MWh of deviation
for markets that claw back deviation profits or to make the plan stick to
the award. ``price_surplus`` is capped at ``price_shortfall`` so that
deviating both ways at once can never pay (the LP stays bounded).

**Re-use.** :class:`RealTimePark` compiles the problem once per
``(position, plugged-in sessions)`` and keeps it: prices, awards, battery
energy, process state and the energy each car still needs are
:class:`cvxpy.Parameter` values (the problem is DPP), so a re-solve for the
same interval -- the daemon re-plans every dispatch period with fresh
telemetry and forecasts -- only updates parameters. With HiGHS it goes
through :class:`strategies._solver.HotHighs` (persistent model, previous
basis); other solvers re-solve through CVXPY's cached DPP map.

On failure (:class:`~vpp.SolverError`, including the typed
:class:`~vpp.InfeasibleError`), :func:`real_time_dispatch` returns the
idle fallback for the park(s) concerned (``fallback=True``), never NaN.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd
import structlog

from strategies._solver import DEFAULT_SOLVER, HotHighs, SolveStats, check_solver, solve
from strategies.park import ParkModel, build_park_model, interval_hours
from strategies.schedule import Schedule, idle_power_kw
from strategies.state import EnergyPolicy, ParkInputs, ParkState, session_table, state_of
from vpp._exceptions import SolverError
from vpp.config.models import BatterySpec, EvChargingSpec, ParkConfig
from vpp.types import Setpoint
from vpp.units import KW_PER_MW, KWH_PER_MWH

log = structlog.get_logger(__name__)


@dataclass
class _Compiled:
    key: tuple[object, ...]
    model: ParkModel
    problem: cp.Problem
    award_kw: cp.Parameter
    price_surplus: cp.Parameter
    price_shortfall: cp.Parameter
    hot: HotHighs | None


class RealTimePark:
    """One park's real-time problem over the rest of a horizon, compiled once and re-solved."""

    def __init__(
        self,
        park: ParkConfig,
        inputs: ParkInputs,
        interval_minutes: int,
        *,
        deviation_penalty_per_mwh: float = 0.0,
        solver: str = DEFAULT_SOLVER,
        time_limit_s: float = 60.0,
        energy_policy: EnergyPolicy = "cap",
        hot: bool = True,
    ) -> None:
        if deviation_penalty_per_mwh < 0:
            raise ValueError("deviation_penalty_per_mwh must be >= 0")
        self.park = park
        self.inputs = inputs
        self.dt_h = interval_hours(inputs.index, interval_minutes)
        self.penalty = deviation_penalty_per_mwh
        self.solver = check_solver(solver)
        self.time_limit_s = time_limit_s
        self.energy_policy = energy_policy
        self.hot = hot and self.solver == "HIGHS"
        self._compiled: _Compiled | None = None
        self.compiles = 0

    def _tables(self, position: int, state: ParkState | None) -> dict[str, pd.DataFrame]:
        window = self.inputs.window(position)
        return {
            hub.id: session_table(
                hub,
                state_of(state, hub.id).sessions,
                window.expected_sessions.get(hub.id),
                window.index,
                self.dt_h[position:],
                energy_policy=self.energy_policy,
            )
            for hub in self.park.assets
            if isinstance(hub, EvChargingSpec)
        }

    @staticmethod
    def _key(position: int, tables: Mapping[str, pd.DataFrame]) -> tuple[object, ...]:
        sessions = tuple(
            (hub, tuple(map(tuple, t.loc[:, ["session_id", "arrival", "stated_departure",
                                              "weight"]].astype(str).to_numpy())))
            for hub, t in sorted(tables.items())
        )
        return (position, sessions)

    def _build(
        self, key: tuple[object, ...], position: int, state: ParkState | None,
        tables: Mapping[str, pd.DataFrame],
    ) -> _Compiled:
        window = self.inputs.window(position)
        dt_h = self.dt_h[position:]
        model = build_park_model(
            self.park, window, state, dt_h, energy_policy=self.energy_policy,
            session_tables=tables,
        )
        steps = len(dt_h)
        award = cp.Parameter(steps, name="award_kw")
        surplus_price = cp.Parameter(steps, name="price_surplus_per_mwh")
        shortfall_price = cp.Parameter(steps, name="price_shortfall_per_mwh")
        surplus = cp.Variable(steps, name="surplus_kw", nonneg=True)
        shortfall = cp.Variable(steps, name="shortfall_kw", nonneg=True)
        model.builder.add(
            "park", "deviation", "balance", [f"{self.park.id}/{t.isoformat()}" for t in window.index],
            model.net_kw[0] - award - surplus + shortfall, "==",
        )
        per_kwh = dt_h / KWH_PER_MWH
        value = (
            cp.sum(cp.multiply(cp.multiply(per_kwh, surplus_price), surplus))
            - cp.sum(cp.multiply(cp.multiply(per_kwh, shortfall_price), shortfall))
            - self.penalty * cp.sum(cp.multiply(per_kwh, surplus + shortfall))
        )
        problem = cp.Problem(cp.Minimize(model.builder.cost - value), model.builder.cvxpy_constraints)
        if not problem.is_dpp():
            raise AssertionError("real-time problem must be DPP so re-solves reuse it")
        self.compiles += 1
        hot = HotHighs(problem, [model.builder], self.time_limit_s) if self.hot else None
        return _Compiled(key, model, problem, award, surplus_price, shortfall_price, hot)

    def solve(
        self,
        position: int,
        state: ParkState | None,
        award_kw: np.ndarray,
        price_surplus: np.ndarray,
        price_shortfall: np.ndarray | None = None,
    ) -> tuple[ParkModel, SolveStats]:
        """Solve intervals ``[position, T)``; arrays cover those intervals. Raises on failure."""
        start = time.perf_counter()
        steps = len(self.dt_h) - position
        award = _vector(award_kw, steps, "award_kw")
        shortfall = _vector(
            price_shortfall if price_shortfall is not None else price_surplus, steps,
            "price_shortfall",
        )
        surplus = np.minimum(_vector(price_surplus, steps, "price_surplus"), shortfall)
        tables = self._tables(position, state)
        key = self._key(position, tables)
        compiled = self._compiled
        if compiled is None or compiled.key != key:
            compiled = self._compiled = self._build(key, position, state, tables)
        else:
            self._set_state(compiled.model, state, tables)
        compiled.award_kw.value = award
        compiled.price_surplus.value = surplus
        compiled.price_shortfall.value = shortfall
        build_s = time.perf_counter() - start
        context = {"model": "real_time", "park": self.park.id, "position": position,
                   "intervals": steps}
        if compiled.hot is not None:
            stats = compiled.hot.solve()
            stats = SolveStats(stats.solver, stats.status, stats.objective, build_s,
                               stats.compile_s, stats.solve_s, build_s + stats.total_s)
            log.info("solve_finished", solver="HIGHS", mode="hot", objective=stats.objective,
                     solve_s=round(stats.solve_s, 4), **context)
        else:
            stats = solve(compiled.problem, [compiled.model.builder], solver=self.solver,
                          time_limit_s=self.time_limit_s, build_s=build_s, context=context)
        return compiled.model, stats

    def _set_state(
        self, model: ParkModel, state: ParkState | None, tables: Mapping[str, pd.DataFrame]
    ) -> None:
        if model.batteries is not None:
            model.batteries.set_state(
                np.array([_soc(b, state) for b in model.batteries.specs])
            )
        if model.processes is not None:
            specs = model.processes.specs
            model.processes.set_state(
                np.array([state_of(state, p.id).energy_offset_kwh for p in specs]),
                np.array([state_of(state, p.id).shift_kw for p in specs]),
            )
        if model.ev is not None and model.ev.charge_kw is not None:
            energy = np.concatenate(
                [tables[spec.id]["energy_kwh"].to_numpy(float) for spec in model.ev.specs]
            )
            model.ev.set_energy(energy)


def _soc(spec: BatterySpec, state: ParkState | None) -> float:
    value = state_of(state, spec.id).soc_kwh
    return spec.soc_initial * spec.energy_kwh if value is None else float(value)


def _vector(values: np.ndarray | pd.Series | None, steps: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.shape != (steps,) or not np.isfinite(array).all():
        raise ValueError(f"{name} needs {steps} finite values, got shape {array.shape}")
    return array


@dataclass(frozen=True)
class RealTimeResult:
    """What to do now and the plan for the rest of the horizon.

    Attributes:
        setpoints: one :class:`~vpp.types.Setpoint` per asset for the current interval [kW].
        schedule: the re-optimised plan for intervals ``[position, T)``.
        deviation_kw: planned ``net - award`` per park and remaining interval [kW]
            (> 0: more sold / less bought than awarded).
        deviation_mw: the portfolio's planned deviation per remaining interval [MW] --
            the real-time bid/adjustment quantity.
        stats: solver statistics (summed over parks; ``None`` if every park fell back).
        fallback: True when at least one park uses the idle fallback.
        errors: park id -> error message for parks that fell back.
    """

    setpoints: tuple[Setpoint, ...]
    schedule: Schedule
    deviation_kw: pd.DataFrame
    deviation_mw: pd.Series
    stats: SolveStats | None
    fallback: bool = False
    errors: Mapping[str, str] = field(default_factory=dict)


class RealTimeDispatcher:
    """Real-time re-optimisation of a portfolio over one horizon (usually a delivery day).

    Create once per horizon with the parks' inputs over the whole horizon;
    call :meth:`dispatch` at each decision time. Each park keeps its own
    compiled problem (:class:`RealTimePark`).
    """

    def __init__(
        self,
        parks: Sequence[ParkConfig],
        inputs: Mapping[str, ParkInputs],
        interval_minutes: int,
        *,
        deviation_penalty_per_mwh: float = 0.0,
        solver: str = DEFAULT_SOLVER,
        time_limit_s: float = 60.0,
        energy_policy: EnergyPolicy = "cap",
        hot: bool = True,
    ) -> None:
        if not parks:
            raise ValueError("no parks to dispatch")
        self.parks = list(parks)
        self.inputs = inputs
        self.index = inputs[self.parks[0].id].index
        self.interval_minutes = interval_minutes
        self.dt_h = interval_hours(self.index, interval_minutes)
        self.park_problems = {
            p.id: RealTimePark(
                p, inputs[p.id], interval_minutes,
                deviation_penalty_per_mwh=deviation_penalty_per_mwh, solver=solver,
                time_limit_s=time_limit_s, energy_policy=energy_policy, hot=hot,
            )
            for p in self.parks
        }

    def dispatch(
        self,
        position: int,
        states: Mapping[str, ParkState] | None,
        award_kw: Mapping[str, np.ndarray] | pd.DataFrame,
        price: pd.Series | np.ndarray,
        *,
        price_shortfall: pd.Series | np.ndarray | None = None,
        on_failure: str = "fallback",
    ) -> RealTimeResult:
        """Re-optimise ``[position, T)`` and return setpoints for interval ``position``.

        ``award_kw[park_id]``: the park's day-ahead award per interval of the
        *whole* horizon (T,) [kW]. ``price``: the real-time price forecast
        [currency/MWh] for the remaining intervals (``T - position`` values,
        or a Series over the whole horizon / the remaining intervals);
        ``price_shortfall`` likewise when shortfalls settle at another price.
        """
        if not 0 <= position < len(self.index):
            raise ValueError(f"position {position} outside the horizon of {len(self.index)}")
        remaining = self.index[position:]
        surplus = _remaining(price, self.index, position, "price")
        shortfall = (
            None if price_shortfall is None
            else _remaining(price_shortfall, self.index, position, "price_shortfall")
        )
        models, stats, errors = [], [], {}
        power_parts: dict[tuple[str, str], np.ndarray] = {}
        soc_parts: dict[tuple[str, str], np.ndarray] = {}
        park_net: dict[str, np.ndarray] = {}
        for park in self.parks:
            award = _vector(_award_of(award_kw, park.id), len(self.index), f"award_kw[{park.id}]")
            state = (states or {}).get(park.id)
            try:
                model, stat = self.park_problems[park.id].solve(
                    position, state, award[position:], surplus, shortfall
                )
            except SolverError as exc:
                if on_failure == "raise":
                    raise
                errors[park.id] = str(exc)
                power, soc = idle_power_kw(
                    park, self.inputs[park.id].window(position), state, self.dt_h[position:]
                )
                for asset_id, values in power.items():
                    power_parts[(park.id, asset_id)] = values
                for asset_id, values in soc.items():
                    soc_parts[(park.id, asset_id)] = values
                park_net[park.id] = sum(power.values(), np.zeros(len(remaining)))
                continue
            models.append(model)
            stats.append(stat)
            for asset_id, values in model.asset_power_kw().items():
                power_parts[(park.id, asset_id)] = values[0]
            for asset_id, values in model.soc_kwh().items():
                soc_parts[(park.id, asset_id)] = values[0]
            park_net[park.id] = np.asarray(model.net_kw.value)[0]
        schedule = _schedule(remaining, power_parts, soc_parts, park_net, stats, bool(errors), errors)
        deviation = pd.DataFrame(
            {
                p.id: park_net[p.id] - _vector(
                    _award_of(award_kw, p.id), len(self.index), "award_kw"
                )[position:]
                for p in self.parks
            },
            index=remaining,
        )
        setpoints = tuple(schedule.setpoints(0))
        total = None
        if stats:
            total = stats[0]
            for extra in stats[1:]:
                total = total.plus(extra)
        if errors:
            log.warning("real_time_fallback", position=position, errors=errors)
        return RealTimeResult(
            setpoints, schedule, deviation, deviation.sum(axis=1) / KW_PER_MW, total,
            bool(errors), errors,
        )


def _award_of(award_kw: Mapping[str, np.ndarray] | pd.DataFrame, park_id: str) -> np.ndarray:
    if isinstance(award_kw, pd.DataFrame):
        return award_kw[park_id].to_numpy(float)
    return np.asarray(award_kw[park_id], dtype=float)


def _remaining(
    values: pd.Series | np.ndarray, index: pd.DatetimeIndex, position: int, name: str
) -> np.ndarray:
    if isinstance(values, pd.Series):
        if values.index.equals(index):
            return values.to_numpy(float)[position:]
        if values.index.equals(index[position:]):
            return values.to_numpy(float)
        raise ValueError(f"{name} must be indexed by the horizon or its remaining intervals")
    array = np.asarray(values, dtype=float)
    if len(array) == len(index):
        return array[position:]
    return array


def _schedule(
    index: pd.DatetimeIndex,
    power: Mapping[tuple[str, str], np.ndarray],
    soc: Mapping[tuple[str, str], np.ndarray],
    park_net: Mapping[str, np.ndarray],
    stats: Sequence[SolveStats],
    fallback: bool,
    errors: Mapping[str, str],
) -> Schedule:
    def frame(parts: Mapping[tuple[str, str], np.ndarray]) -> pd.DataFrame:
        out = pd.DataFrame(dict(parts.items()), index=index)
        out.columns = pd.MultiIndex.from_tuples(list(parts), names=["park_id", "asset_id"])
        return out

    total = None
    if stats:
        total = stats[0]
        for extra in stats[1:]:
            total = total.plus(extra)
    return Schedule(
        index, frame(power), pd.DataFrame(dict(park_net), index=index), frame(soc),
        total.objective if total else 0.0, total, fallback, dict(errors),
    )

