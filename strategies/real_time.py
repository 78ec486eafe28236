"""Real-time re-optimisation: follow the day-ahead award, re-plan the rest of the day.

At interval ``position`` of the delivery day, with the measured state of
every asset, each park's model is solved over the remaining intervals
``[position, T)``. The park's day-ahead award ``award_kw[t]`` (its share of
the portfolio award, a :class:`vpp.awards.IntervalAward` from
:meth:`strategies.day_ahead.BidAllocation.award`) is fixed; the deviation ``net_kw[t] - award_kw[t] = surplus[t] - shortfall[t]``
(both >= 0) settles in real time::

    maximise sum_t dt_h[t] / 1000 * (price_surplus[t] * surplus[t]
                                     - price_shortfall[t] * shortfall[t]
                                     - penalty * (surplus[t] + shortfall[t]))
             - degradation + terminal value

Under ``two_settlement`` both prices are the real-time price forecast, so
the park deviates from its award exactly when the forecast makes it pay;
``deviation_penalty_per_mwh`` (a :class:`~strategies.options.StrategyOptions`
field) adds a cost per MWh of deviation for markets that claw back deviation
profits or to make the plan stick to the award. ``price_surplus`` is capped at ``price_shortfall`` so that
deviating both ways at once can never pay (the LP stays bounded).

**Re-use across intervals.** :class:`RealTimePark` compiles ONE problem per
park and horizon, over the whole horizon, and re-solves it at every
interval. Everything that changes from one interval to the next is a
:class:`cvxpy.Parameter` (the problem is DPP) that enters only the costs, the
right-hand sides or the variable bounds -- never the constraint matrix:

* the position: intervals before it are pinned -- asset boxes zero (battery
  SoC free to sit at the measured value), process baseline zero, price,
  penalty and award weights zero -- so they add nothing and constrain
  nothing; the measured state enters where the plan starts (battery SoC
  before interval 0 stays there through the pinned intervals; the process
  ramp restarts from the measured shift at the position; the measured process
  offset enters the recovery row of the block the position is in);
* EV sessions: a fixed slot table (:func:`strategies.ev.add_ev_slots`) whose
  boxes and energies are Parameters, so arrivals and departures change
  values, not structure. Only more plugged-in cars (or cars sharing a charge
  point) than the slots hold force a rebuild (``real_time_slots_grown``).

With HiGHS a re-solve goes through :class:`strategies._solver.HotHighs`: a
persistent ``highspy.Highs`` model receives only the changed costs and bounds
and starts from its previous basis; other solvers re-solve through CVXPY's
cached DPP map. ``reuse=False`` compiles a model of ``[position, T)`` per
(position, plugged-in cars) instead: the former design, kept as the
reference the day model is tested against.

**Measured state never makes it infeasible.** Devices deviate a little from
plans, so the measured state may be one that the hard rules cannot recover
from (a recovery block that can no longer be evened out, a car that can no
longer get its energy, a battery that cannot reach its end-of-day SoC). In
real time those rows are soft (:mod:`strategies._model`): slack costs
:func:`soft_penalty_per_mwh` per MWh, far more than any plan can earn, so the
LP stays feasible, recovers as much as it can and logs
``realtime_recovery_shortfall`` with the amount whenever slack is used.
Day-ahead, plans and perfect foresight keep them hard.

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

from strategies import ev
from strategies._solver import HotHighs, SolveStats, check_solver, solve
from strategies.assets import specs_of
from strategies.ev import (
    EvBlock,
    SessionArrays,
    SessionWindow,
    SlotsExhaustedError,
    session_table,
    window_sessions,
)
from strategies.options import StrategyOptions
from strategies.park import DynamicLayout, ParkModel, build_park_model, interval_hours
from strategies.schedule import Schedule, idle_power_kw
from strategies.state import ParkInputs, ParkState, state_of
from vpp.awards import IntervalAward
from vpp.config.models import EvChargingSpec, ParkConfig
from vpp.errors import InputError, SolverError
from vpp.types import Setpoint
from vpp.units import KW_PER_MW, KWH_PER_MWH

log = structlog.get_logger(__name__)


#: Soft rows (energy owed because of a measured state, see :mod:`strategies._model`) give
#: way at ``max(SOFT_PENALTY_MIN_PER_MWH, SOFT_PENALTY_PRICE_FACTOR x (largest |price| of the
#: forecast + deviation penalty))`` per MWh left unrecovered / undelivered / below target:
#: far above what a MWh can earn in the plan, so slack is used only when nothing else works.
SOFT_PENALTY_MIN_PER_MWH = 10_000.0
SOFT_PENALTY_PRICE_FACTOR = 100.0


def soft_penalty_per_mwh(
    price_surplus: np.ndarray, price_shortfall: np.ndarray, deviation_penalty_per_mwh: float = 0.0
) -> float:
    """Penalty [currency/MWh] of a soft row's slack for one real-time solve (see above)."""
    largest = max(float(np.abs(price_surplus).max(initial=0.0)),
                  float(np.abs(price_shortfall).max(initial=0.0)))
    return max(SOFT_PENALTY_MIN_PER_MWH,
               SOFT_PENALTY_PRICE_FACTOR * (largest + deviation_penalty_per_mwh))


@dataclass
class _Compiled:
    model: ParkModel
    problem: cp.Problem
    award_kw: cp.Parameter
    value_surplus: cp.Parameter  # currency per kW of surplus, per interval
    cost_shortfall: cp.Parameter  # currency per kW of shortfall, per interval
    hot: HotHighs | None
    key: tuple[object, ...] = ()  # window models: (position, sessions)
    capacity: dict[str, tuple[int, int]] = field(default_factory=dict)  # day models: EV slots


@dataclass(frozen=True)
class RealTimeSolution:
    """One park's re-optimised plan for intervals ``[position, T)``.

    Attributes:
        power_kw: power into the grid per asset [kW] (T - position,).
        soc_kwh: battery energy at the end of each interval [kWh].
        net_kw: the park's net power [kW].
        shortfall_kwh: soft row name -> energy it gave way by [kWh] (empty when the
            measured state let every hard rule hold).
        model: the solved model (a day model covers the whole horizon; its first
            ``position`` intervals are pinned and not part of the plan). It is re-used:
            its values hold until the park's next solve.
    """

    power_kw: Mapping[str, np.ndarray]
    soc_kwh: Mapping[str, np.ndarray]
    net_kw: np.ndarray
    shortfall_kwh: Mapping[str, float]
    model: ParkModel


class RealTimePark:
    """One park's real-time problem over a horizon, compiled once and re-solved.

    ``reuse=True`` (default) compiles one *day model* over the whole horizon
    (:class:`strategies.park.DynamicLayout`): the position, the measured
    state and the plugged-in cars are Parameters, so the only recompile is
    when more cars are plugged in than the EV slots hold. ``reuse=False``
    compiles a model of ``[position, T)`` per (position, plugged-in cars) --
    the former design, kept as the reference the day model is tested against.

    ``options`` (:class:`~strategies.options.StrategyOptions`, default: the
    config's defaults) give the deviation penalty, the solver, its time limit
    and the EV energy policy.
    """

    def __init__(
        self,
        park: ParkConfig,
        inputs: ParkInputs,
        interval_minutes: int,
        options: StrategyOptions | None = None,
        *,
        hot: bool = True,
        reuse: bool = True,
        omit: frozenset[str] = frozenset(),
    ) -> None:
        options = options or StrategyOptions()
        self.park = park
        self.inputs = inputs
        self.dt_h = interval_hours(inputs.index, interval_minutes)
        self.options = options
        self.penalty = options.deviation_penalty_per_mwh
        self.solver = check_solver(options.solver)
        self.time_limit_s = options.time_limit_s
        self.energy_policy = options.energy_policy
        self.hot = hot and self.solver == "HIGHS"
        self.reuse = reuse
        self.omit = omit
        self.hubs: list[EvChargingSpec] = specs_of(park.assets, ev.__name__)
        self._compiled: _Compiled | None = None
        #: each hub's expected sessions of the horizon (fixed when the dispatcher is made)
        self._expected = {
            hub.id: SessionArrays.from_frame(inputs.expected_sessions.get(hub.id), None, hub.id)
            for hub in self.hubs
        }
        self.compiles = 0

    # ------------------------------------------------------------------ session tables

    def _table(
        self, hub: EvChargingSpec, position: int, known: pd.DataFrame | None,
        expected: pd.DataFrame | None,
    ) -> pd.DataFrame:
        return session_table(
            hub, known, expected, self.inputs.index[position:], self.dt_h[position:],
            energy_policy=self.energy_policy,
        )

    def _tables(self, position: int, state: ParkState | None) -> dict[str, pd.DataFrame]:
        """Known and expected sessions of every hub in one table (window models)."""
        return {
            hub.id: self._table(hub, position, state_of(state, hub.id).sessions,
                                self.inputs.expected_sessions.get(hub.id))
            for hub in self.hubs
        }

    # ------------------------------------------------------------------ building

    def _objective(
        self, model: ParkModel, award: cp.Parameter, labels: Sequence[str]
    ) -> tuple[cp.Problem, cp.Parameter, cp.Parameter]:
        steps = len(model.dt_h)
        value_surplus = cp.Parameter(steps, name="value_surplus_per_kw")
        cost_shortfall = cp.Parameter(steps, name="cost_shortfall_per_kw")
        surplus = cp.Variable(steps, name="surplus_kw", nonneg=True)
        shortfall = cp.Variable(steps, name="shortfall_kw", nonneg=True)
        model.builder.add(
            "park", "deviation", "balance", labels,
            model.net_kw[0] - award - surplus + shortfall, "==",
        )
        value = value_surplus @ surplus - cost_shortfall @ shortfall
        problem = cp.Problem(cp.Minimize(model.builder.cost - value), model.builder.cvxpy_constraints)
        if not problem.is_dpp():
            raise AssertionError("real-time problem must be DPP so re-solves reuse it")
        return problem, value_surplus, cost_shortfall

    def _compile(self, model: ParkModel, labels: Sequence[str]) -> _Compiled:
        award = cp.Parameter(len(model.dt_h), name="award_kw")
        problem, value_surplus, cost_shortfall = self._objective(model, award, labels)
        self.compiles += 1
        # A persistent HiGHS re-solve warm-starts an LP basis; a MILP (on/off electrolysers)
        # is solved through CVXPY each time instead.
        hot = (
            HotHighs(problem, [model.builder], self.time_limit_s)
            if self.hot and not problem.is_mixed_integer() else None
        )
        return _Compiled(model, problem, award, value_surplus, cost_shortfall, hot)

    def _windows(
        self, position: int, sessions: Mapping[str, SessionArrays], log_events: bool
    ) -> dict[str, SessionWindow]:
        out = {}
        for hub in self.hubs:
            window = window_sessions(
                hub, sessions[hub.id], self.inputs.index[position:], self.dt_h[position:],
                energy_policy=self.energy_policy,
            )
            if log_events and window.capped:
                log.info("ev_request_capped", hub=hub.id, sessions=window.capped)
            out[hub.id] = window
        return out

    def _build_day(self, capacity: dict[str, tuple[int, int]]) -> _Compiled:
        """The whole-horizon model; intervals before the position are pinned per solve."""
        expected = self._windows(0, self._expected, log_events=True)
        model = build_park_model(
            self.park, self.inputs, None, self.dt_h, energy_policy=self.energy_policy,
            omit=self.omit, dynamic=DynamicLayout(expected, capacity),
        )
        labels = [f"{self.park.id}/{t.isoformat()}" for t in self.inputs.index]
        compiled = self._compile(model, labels)
        compiled.capacity = dict(capacity)
        log.info("real_time_compiled", park=self.park.id, model="day",
                 ev_slots={h: list(c) for h, c in capacity.items()})
        return compiled

    def _build_window(
        self, key: tuple[object, ...], position: int, state: ParkState | None,
        tables: Mapping[str, pd.DataFrame],
    ) -> _Compiled:
        window = self.inputs.window(position)
        model = build_park_model(
            self.park, window, state, self.dt_h[position:], energy_policy=self.energy_policy,
            session_tables=tables, omit=self.omit, soft=True,
        )
        labels = [f"{self.park.id}/{t.isoformat()}" for t in window.index]
        compiled = self._compile(model, labels)
        compiled.key = key
        return compiled

    @staticmethod
    def _key(position: int, tables: Mapping[str, pd.DataFrame]) -> tuple[object, ...]:
        sessions = tuple(
            (hub, tuple(map(tuple, t.loc[:, ["session_id", "arrival", "stated_departure",
                                              "weight"]].astype(str).to_numpy())))
            for hub, t in sorted(tables.items())
        )
        return (position, sessions)

    # ------------------------------------------------------------------ solving

    def _day_model(self, position: int, state: ParkState | None) -> _Compiled:
        """The day model with this position's state and cars (rebuilt if the cars need more slots)."""
        known = self._windows(position, {
            hub.id: SessionArrays.from_frame(state_of(state, hub.id).sessions, 1.0, hub.id)
            for hub in self.hubs
        }, log_events=True)
        expected = self._windows(position, self._expected, log_events=False)
        known_list = [known[h.id] for h in self.hubs]
        expected_list = [expected[h.id] for h in self.hubs]
        compiled = self._compiled
        if compiled is None:
            compiled = self._build_day({hub.id: (hub.chargers, 1) for hub in self.hubs})
        hubs = _ev_block(compiled.model)
        if hubs is not None:
            try:
                hubs.set_sessions(known_list, expected_list, position)
            except SlotsExhaustedError as exc:
                grown = {
                    hub.id: (max(have[0], need[0]), max(have[1], need[1]))
                    for hub, have, need in zip(
                        self.hubs, compiled.capacity.values(), exc.need, strict=True
                    )
                }
                log.info("real_time_slots_grown", park=self.park.id, position=position,
                         ev_slots={h: list(c) for h, c in grown.items()})
                compiled = self._build_day(grown)
                grown_hubs = _ev_block(compiled.model)
                if grown_hubs is not None:
                    grown_hubs.set_sessions(known_list, expected_list, position)
        self._set_state(compiled.model, state, position)
        return compiled

    def _window_model(self, position: int, state: ParkState | None) -> _Compiled:
        tables = self._tables(position, state)
        key = self._key(position, tables)
        compiled = self._compiled
        if compiled is None or compiled.key != key:
            return self._build_window(key, position, state, tables)
        self._set_state(compiled.model, state, 0)
        hubs = _ev_block(compiled.model)
        if hubs is not None and hubs.charge_kw is not None:
            hubs.set_energy(np.concatenate(
                [tables[spec.id]["energy_kwh"].to_numpy(float) for spec in hubs.specs]
            ))
        return compiled

    def solve(
        self,
        position: int,
        state: ParkState | None,
        award_kw: np.ndarray,
        price_surplus: np.ndarray,
        price_shortfall: np.ndarray | None = None,
    ) -> tuple[RealTimeSolution, SolveStats]:
        """Solve intervals ``[position, T)``; arrays cover those intervals. Raises on failure."""
        start = time.perf_counter()
        steps = len(self.dt_h) - position
        if not 0 <= position < len(self.dt_h):
            raise InputError(f"position {position} outside the horizon of {len(self.dt_h)}")
        award = _vector(award_kw, steps, "award_kw")
        shortfall = _vector(
            price_shortfall if price_shortfall is not None else price_surplus, steps,
            "price_shortfall",
        )
        surplus = np.minimum(_vector(price_surplus, steps, "price_surplus"), shortfall)
        if self.reuse:
            compiled = self._compiled = self._day_model(position, state)
            offset = position
        else:
            compiled = self._compiled = self._window_model(position, state)
            offset = 0
        model = compiled.model
        horizon = len(model.dt_h)
        per_kw = model.dt_h[offset:] / KWH_PER_MWH
        compiled.award_kw.value = _pad(award, horizon)
        compiled.value_surplus.value = _pad(per_kw * (surplus - self.penalty), horizon)
        compiled.cost_shortfall.value = _pad(per_kw * (shortfall + self.penalty), horizon)
        model.builder.set_soft_penalty(
            soft_penalty_per_mwh(surplus, shortfall, self.penalty) / KWH_PER_MWH
        )
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
            stats = solve(compiled.problem, [model.builder], solver=self.solver,
                          time_limit_s=self.time_limit_s, build_s=build_s, context=context)
        relabel = {}
        hubs = _ev_block(model)
        if hubs is not None and hubs.energy_rows is not None and hubs.slot_labels:
            relabel[id(hubs.energy_rows)] = hubs.slot_labels
        shortfall_kwh = model.builder.soft_violations(labels=relabel)
        if shortfall_kwh:
            log.warning(
                "realtime_recovery_shortfall", park=self.park.id, position=position,
                total_kwh=round(sum(shortfall_kwh.values()), 3),
                rows={k: round(v, 3) for k, v in sorted(shortfall_kwh.items())[:10]},
            )
        solution = RealTimeSolution(
            {a: v[0, offset:] for a, v in model.asset_power_kw().items()},
            {a: v[0, offset:] for a, v in model.soc_kwh().items()},
            np.asarray(model.net_kw.value, dtype=float)[0, offset:],
            shortfall_kwh,
            model,
        )
        return solution, stats

    def _set_state(self, model: ParkModel, state: ParkState | None, position: int) -> None:
        model.set_position(state, position)


def _ev_block(model: ParkModel) -> EvBlock | None:
    """The EV hubs' block of ``model`` (slots in a day model), or None."""
    block: EvBlock | None = model.block(ev.ASSET_TYPE)
    return block


def _pad(values: np.ndarray, horizon: int) -> np.ndarray:
    """``values`` for the last intervals of ``horizon``, zero before them."""
    out = np.zeros(horizon)
    out[horizon - len(values):] = values
    return out


def _vector(values: np.ndarray | pd.Series | None, steps: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.shape != (steps,) or not np.isfinite(array).all():
        raise InputError(f"{name} needs {steps} finite values, got shape {array.shape}")
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
    compiled problem (:class:`RealTimePark`), made with the same ``options``.
    """

    def __init__(
        self,
        parks: Sequence[ParkConfig],
        inputs: Mapping[str, ParkInputs],
        interval_minutes: int,
        options: StrategyOptions | None = None,
        *,
        hot: bool = True,
        reuse: bool = True,
        settlement_rule: str = "two_settlement",
    ) -> None:
        if not parks:
            raise InputError("no parks to dispatch")
        self.parks = list(parks)
        #: the market's settlement rule: how the strategy prices planned deviations
        #: (:func:`strategies.imbalance.deviation_prices`)
        self.settlement_rule = settlement_rule
        self.inputs = inputs
        self.index = inputs[self.parks[0].id].index
        self.interval_minutes = interval_minutes
        self.dt_h = interval_hours(self.index, interval_minutes)
        self.park_problems = {
            p.id: RealTimePark(p, inputs[p.id], interval_minutes, options, hot=hot, reuse=reuse)
            for p in self.parks
        }

    def dispatch(
        self,
        position: int,
        states: Mapping[str, ParkState] | None,
        award: IntervalAward,
        price: pd.Series | np.ndarray,
        *,
        price_shortfall: pd.Series | np.ndarray | None = None,
        on_failure: str = "fallback",
    ) -> RealTimeResult:
        """Re-optimise ``[position, T)`` and return setpoints for interval ``position``.

        ``award``: the day-ahead award on every interval of the *whole* horizon;
        each park follows its share (:meth:`vpp.awards.IntervalAward.park`) [kW]. ``price``: the real-time price forecast
        [currency/MWh] for the remaining intervals (``T - position`` values,
        or a Series over the whole horizon / the remaining intervals);
        ``price_shortfall`` likewise when shortfalls settle at another price.
        """
        if not 0 <= position < len(self.index):
            raise InputError(f"position {position} outside the horizon of {len(self.index)}")
        remaining = self.index[position:]
        surplus = _remaining(price, self.index, position, "price")
        shortfall = (
            None if price_shortfall is None
            else _remaining(price_shortfall, self.index, position, "price_shortfall")
        )
        stats: list[SolveStats] = []
        errors: dict[str, str] = {}
        power_parts: dict[tuple[str, str], np.ndarray] = {}
        soc_parts: dict[tuple[str, str], np.ndarray] = {}
        park_net: dict[str, np.ndarray] = {}
        for park in self.parks:
            park_award = _vector(award.park(park.id), len(self.index), f"award[{park.id}]")
            state = (states or {}).get(park.id)
            try:
                solution, stat = self.park_problems[park.id].solve(
                    position, state, park_award[position:], surplus, shortfall
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
            stats.append(stat)
            for asset_id, values in solution.power_kw.items():
                power_parts[(park.id, asset_id)] = values
            for asset_id, values in solution.soc_kwh.items():
                soc_parts[(park.id, asset_id)] = values
            park_net[park.id] = solution.net_kw
        schedule = _schedule(remaining, power_parts, soc_parts, park_net, stats, bool(errors), errors)
        deviation = pd.DataFrame(
            {
                p.id: park_net[p.id] - _vector(
                    award.park(p.id), len(self.index), f"award[{p.id}]"
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


def _remaining(
    values: pd.Series | np.ndarray, index: pd.DatetimeIndex, position: int, name: str
) -> np.ndarray:
    if isinstance(values, pd.Series):
        if values.index.equals(index):
            return values.to_numpy(float)[position:]
        if values.index.equals(index[position:]):
            return values.to_numpy(float)
        raise InputError(f"{name} must be indexed by the horizon or its remaining intervals")
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

