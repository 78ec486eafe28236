"""A park's model: its assets' blocks and the grid connection they share.

``net_kw`` (scenarios x intervals) is the park's power at the grid
connection, positive into the grid (sold), negative drawn (bought) -- the
sign convention of :mod:`vpp.units` -- and is bounded by the connection:
``net_kw <= export_limit_kw`` (``{park}-grid-export-max``) and
``-net_kw <= import_limit_kw`` (``{park}-grid-import-max``).

Parks that share nothing but the market never share a model: each park is
optimised on its own (see :func:`strategies.schedule.solve_parks`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pandas as pd

from strategies._model import ModelBuilder, Stack
from strategies.battery import BatteryBlock, add_batteries
from strategies.ev import EvBlock, add_ev_hubs, add_ev_slots
from strategies.process import ProcessBlock, add_processes
from strategies.pv import PvBlock, add_pv
from strategies.state import (
    EnergyPolicy,
    ParkInputs,
    ParkState,
    SessionWindow,
    session_table,
    state_of,
)
from vpp.config.models import (
    AssetSpec,
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    ParkConfig,
    PvSpec,
)
from vpp.errors import InputError
from vpp.timeutil import require_aware_index

ASSET_TYPE = "park"


def interval_hours(index: pd.DatetimeIndex, interval_minutes: int) -> np.ndarray:
    """Length [h] of each interval of ``index`` (UTC starts) with products of ``interval_minutes``.

    Checks the index is evenly spaced at ``interval_minutes`` so energy is
    never computed from a wrong step.
    """
    require_aware_index(index, "index")
    if len(index) == 0:
        raise InputError("empty horizon")
    if len(index) > 1:
        steps = np.diff(index.as_unit("ns").asi8) / 60e9
        if not np.allclose(steps, interval_minutes):
            raise InputError(
                f"index must be evenly spaced at {interval_minutes} min; got steps "
                f"{sorted(set(steps.tolist()))} min"
            )
    return np.full(len(index), interval_minutes / 60.0)


@dataclass(frozen=True)
class DynamicLayout:
    """A real-time model that one compile serves for every position of the horizon.

    Asset boxes, the process baseline and the ramp start become Parameters set
    per position (``set_state(..., position)``), and EV hubs become slot tables
    (:func:`strategies.ev.add_ev_slots`): ``expected`` holds each hub's expected
    sessions seen from the start of the horizon, ``capacity`` its (lanes, slots
    per lane) for plugged-in cars.
    """

    expected: Mapping[str, SessionWindow]
    capacity: Mapping[str, tuple[int, int]]


@dataclass(frozen=True)
class ParkModelRequest:
    """Everything one park model is built from (the arguments of :func:`build_park_model`).

    ``dt_h`` (T,) are the interval lengths [h] of ``inputs.index``; ``scenarios``
    copies of the park are stacked with probabilities ``weights`` (default
    equal). The asset types' blocks (:class:`strategies.assets.AssetModel`)
    read what they need from it.
    """

    park: ParkConfig
    inputs: ParkInputs
    state: ParkState | None
    dt_h: np.ndarray
    scenarios: int = 1
    weights: np.ndarray | None = None
    omit: frozenset[str] = frozenset()
    energy_policy: EnergyPolicy = "cap"
    session_tables: Mapping[str, pd.DataFrame] | None = None
    soft: bool = False
    dynamic: DynamicLayout | None = None

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.inputs.index


@dataclass
class ParkModel:
    """The variables and constraints of one park over one horizon."""

    park: ParkConfig
    index: pd.DatetimeIndex
    dt_h: np.ndarray
    scenarios: int
    weights: np.ndarray
    builder: ModelBuilder
    batteries: BatteryBlock | None
    processes: ProcessBlock | None
    pv: PvBlock | None
    ev: EvBlock | None
    net_kw: cp.Expression

    def blocks(self) -> list[tuple[tuple[str, ...], cp.Expression]]:
        """(asset ids, power_kw expression with rows scenario-major) per asset block."""
        out = []
        for block in (self.batteries, self.processes, self.pv, self.ev):
            if block is not None:
                out.append((block.stack.ids, block.power_kw))
        return out

    def asset_power_kw(self) -> dict[str, np.ndarray]:
        """Solved power into the grid [kW] per asset id, shape (scenarios, T)."""
        out: dict[str, np.ndarray] = {}
        for ids, expr in self.blocks():
            value = np.asarray(expr.value, dtype=float).reshape(self.scenarios, len(ids), -1)
            for i, asset_id in enumerate(ids):
                out[asset_id] = value[:, i, :]
        return out

    def soc_kwh(self) -> dict[str, np.ndarray]:
        """Solved battery energy at the end of each interval [kWh], (scenarios, T)."""
        if self.batteries is None:
            return {}
        ids = self.batteries.stack.ids
        value = np.asarray(self.batteries.soc_kwh.value).reshape(self.scenarios, len(ids), -1)
        return {a: value[:, i, :] for i, a in enumerate(ids)}


def build_park_model(
    park: ParkConfig,
    inputs: ParkInputs,
    state: ParkState | None,
    dt_h: np.ndarray,
    *,
    scenarios: int = 1,
    weights: np.ndarray | None = None,
    omit: frozenset[str] = frozenset(),
    energy_policy: EnergyPolicy = "cap",
    session_tables: Mapping[str, pd.DataFrame] | None = None,
    soft: bool = False,
    dynamic: DynamicLayout | None = None,
) -> ParkModel:
    """Build the constraints of ``park`` over ``inputs.index`` with ``scenarios`` copies.

    ``weights`` are the scenario probabilities (default equal); asset costs
    (degradation, terminal value) are weighted by them. ``session_tables``
    (hub id -> :func:`strategies.state.session_table`) overrides the tables
    otherwise built from ``state`` and ``inputs``. ``soft=True`` (real time):
    rows carrying measured state get penalised slack (:mod:`strategies._model`).
    ``dynamic`` (real time, one scenario): the model's position can move without
    recompiling (:class:`DynamicLayout`); it implies ``soft``.
    """
    index = inputs.index
    dt_h = np.asarray(dt_h, dtype=float)
    if dt_h.shape != (len(index),):
        raise InputError(f"dt_h has shape {dt_h.shape}, want ({len(index)},)")
    weights = np.full(scenarios, 1.0 / scenarios) if weights is None else np.asarray(weights, float)
    if weights.shape != (scenarios,) or not np.isclose(weights.sum(), 1.0) or (weights < 0).any():
        raise InputError(f"weights must be {scenarios} probabilities summing to 1, got {weights}")
    if dynamic is not None and scenarios != 1:
        raise InputError("a dynamic (real-time) model has one scenario")
    builder = ModelBuilder(omit=omit, soft=soft or dynamic is not None)
    moving = dynamic is not None

    def stack(specs: Sequence[AssetSpec]) -> Stack:
        return Stack(tuple(s.id for s in specs), scenarios, weights)

    batteries = [a for a in park.assets if isinstance(a, BatterySpec)]
    processes = [a for a in park.assets if isinstance(a, FlexibleProcessSpec)]
    pvs = [a for a in park.assets if isinstance(a, PvSpec)]
    hubs = [a for a in park.assets if isinstance(a, EvChargingSpec)]

    battery_block = None
    if batteries:
        soc0 = np.array(
            [
                state_of(state, b.id).soc_kwh
                if state_of(state, b.id).soc_kwh is not None
                else b.soc_initial * b.energy_kwh
                for b in batteries
            ],
            dtype=float,
        )
        battery_block = add_batteries(
            builder, batteries, soc0, dt_h, stack(batteries), dynamic=moving
        )
    process_block = None
    if processes:
        process_block = add_processes(
            builder,
            processes,
            np.array([_series(inputs.baseline_kw, p.id, park.id, "baseline") for p in processes]),
            np.array([state_of(state, p.id).energy_offset_kwh for p in processes]),
            np.array([state_of(state, p.id).shift_kw for p in processes]),
            index,
            park.timezone,
            dt_h,
            stack(processes),
            dynamic=moving,
        )
    pv_block = None
    if pvs:
        pv_block = add_pv(
            builder,
            pvs,
            np.array([_series(inputs.pv_available_kw, p.id, park.id, "PV forecast") for p in pvs]),
            stack(pvs),
            dynamic=moving,
        )
    ev_block = None
    if hubs and dynamic is not None:
        ev_block = add_ev_slots(
            builder, hubs, [dynamic.expected[h.id] for h in hubs],
            [dynamic.capacity[h.id] for h in hubs], index, dt_h, stack(hubs),
        )
    elif hubs:
        tables = [
            session_tables[hub.id]
            if session_tables is not None
            else session_table(
                hub,
                state_of(state, hub.id).sessions,
                inputs.expected_sessions.get(hub.id),
                index,
                dt_h,
                energy_policy=energy_policy,
            )
            for hub in hubs
        ]
        ev_block = add_ev_hubs(builder, hubs, tables, index, dt_h, stack(hubs))

    net_kw: cp.Expression = cp.Constant(np.zeros((scenarios, len(index))))
    model = ParkModel(
        park, index, dt_h, scenarios, weights, builder,
        battery_block, process_block, pv_block, ev_block, net_kw,
    )
    terms = []
    for ids, power in model.blocks():
        terms.append(Stack(ids, scenarios, weights).to_scenarios() @ power)
    model.net_kw = cp.sum(terms) if len(terms) > 1 else terms[0]
    labels = (
        (park.id,) if scenarios == 1 else tuple(f"{park.id}@s{s}" for s in range(scenarios))
    )
    builder.add(
        ASSET_TYPE, "grid-export", "max", labels, model.net_kw - park.grid.export_limit_kw, "<="
    )
    builder.add(
        ASSET_TYPE, "grid-import", "max", labels, -model.net_kw - park.grid.import_limit_kw, "<="
    )
    return model


def _series(values: dict | object, asset_id: str, park_id: str, what: str) -> np.ndarray:
    try:
        return np.asarray(values[asset_id], dtype=float)  # type: ignore[index]
    except KeyError:
        raise InputError(f"{park_id}/{asset_id}: no {what} in the inputs") from None


def decision_index(index: pd.DatetimeIndex, now: dt.datetime) -> int:
    """Position of the interval containing ``now`` (the first one still open)."""
    stamp = pd.Timestamp(now).tz_convert("UTC")
    position = int(index.searchsorted(stamp, side="right")) - 1
    return max(position, 0)
