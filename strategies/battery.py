"""Battery model: vectorised over all batteries of a park (rows) and intervals (columns).

Variables (rows = batteries x scenarios, columns = intervals):

* ``charge_kw``, ``discharge_kw`` >= 0, boxed by the charge/discharge limits [kW];
* ``soc_kwh``: stored energy at the END of each interval, boxed by
  ``soc_min``/``soc_max`` x ``energy_kwh`` [kWh].

Constraints (named ``"{asset}-{quantity}-{bound}"``):

* ``soc-balance``: ``soc[t] = soc[t-1] + eta_c * charge[t] * dt[t] - discharge[t] * dt[t] / eta_d``
  with ``soc[-1]`` the measured initial state (a :class:`cvxpy.Parameter`);
* ``soc-final`` (policy ``initial``): ``soc[T-1] >= target``, where the target is
  ``soc_initial x energy_kwh`` capped by what charging at full power can reach
  from the current state within the horizon (so a late re-solve stays feasible).

``soc-final`` carries measured state: in real time it is soft (see
:mod:`strategies._model`), so a battery that cannot reach its target any more
still gets a plan that comes as close as it can.

**Position (real time, ``dynamic=True``).** The charge/discharge limits and
the SoC box are Parameters: intervals before the current position are
pinned (no power, SoC free to sit at the measured value), so one compiled
model serves every interval of the day (:mod:`strategies.real_time`).

**Shared (``shared=True``).** Every number of the block (:func:`battery_numbers`)
is a Parameter, except the variable boxes, which a shared solve replaces in the
compiled problem (:meth:`BatteryBlock.variable_bounds`; CVXPY's DPP rules do not
let a variable with Parameter bounds be multiplied by a Parameter, as the
SoC balance needs), so parks whose batteries have the same structure
(:func:`battery_structure`: count, which go back to their initial SoC, whether
any has a degradation cost or a terminal value) reuse one compiled model
(:mod:`strategies.schedule`); :meth:`BatteryBlock.load` puts another park's
batteries in.

Objective terms: ``degradation_cost_per_mwh`` x throughput (charge + discharge)
[MWh]; policy ``valued`` credits the energy left at the horizon end at
``terminal_value_per_mwh``; policy ``free`` does neither.

Power at the grid (sign convention of :mod:`vpp.units`): ``discharge - charge``.

A linear model may charge and discharge in the same interval when prices are
negative (burning energy through the losses). Degradation cost makes that
unattractive; a positive degradation cost is recommended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np

from strategies._model import ModelBuilder, Stack, full, previous
from strategies.state import AssetState, ParkInputs, ParkState, state_of
from vpp.config.models import BatterySpec
from vpp.errors import InputError
from vpp.units import KWH_PER_MWH

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "battery"


@dataclass
class BatteryBlock:
    """The batteries of one park in one model."""

    stack: Stack
    specs: tuple[BatterySpec, ...]
    charge_kw: cp.Variable
    discharge_kw: cp.Variable
    soc_kwh: cp.Variable
    soc_initial_kwh: cp.Parameter
    soc_target_kwh: cp.Parameter
    dt_h: np.ndarray
    #: dynamic models only: box Parameters and the boxes they hold from the position on
    boxes: tuple[tuple[cp.Parameter, np.ndarray], ...] = ()
    soc_box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None
    #: shared models only: the Parameter holding each of :func:`battery_numbers` but the boxes
    numbers: dict[str, cp.Parameter] | None = None
    #: shared models only: (variable, lower, upper) of each boxed variable, names of the boxes
    bounded: tuple[tuple[cp.Variable, str | None, str], ...] = ()
    box_values: dict[str, np.ndarray] | None = None

    def variable_bounds(self) -> list[tuple[cp.Variable, np.ndarray | float, np.ndarray]]:
        """Shared models: the boxes of the loaded batteries, (variable, lower, upper)."""
        values = self.box_values or {}
        return [
            (variable, 0.0 if low is None else values[low], values[high])
            for variable, low, high in self.bounded
        ]

    def load(self, specs: Sequence[BatterySpec], stack: Stack, soc_kwh: np.ndarray) -> None:
        """A shared block (``shared=True``) takes the numbers of ``specs`` (same structure).

        ``stack`` names their rows; ``soc_kwh`` (n,) is their measured energy.
        """
        if self.numbers is None:
            raise InputError("only a shared battery block loads other batteries")
        specs = tuple(specs)
        values = battery_numbers(specs, stack, self.dt_h)
        for name, parameter in self.numbers.items():
            parameter.value = values[name]
        self.box_values = {name: values[name] for name in BOXES}
        self.specs, self.stack = specs, stack
        self.set_state(soc_kwh)

    @property
    def power_kw(self) -> cp.Expression:
        """Power into the grid [kW] (rows x intervals)."""
        return self.discharge_kw - self.charge_kw

    def set_state(self, soc_kwh: np.ndarray, position: int = 0) -> None:
        """Set the measured energy [kWh] per battery (n,) at the start of interval ``position``.

        Also sets the final targets and, in a dynamic model, pins the intervals
        before ``position``; a static model only accepts ``position=0``.
        """
        soc0 = np.asarray(soc_kwh, dtype=float)
        if soc0.shape != (self.stack.n,) or not np.isfinite(soc0).all():
            raise InputError(f"battery state needs {self.stack.n} finite SoC values, got {soc0}")
        if position and self.soc_box is None:
            raise InputError("a static battery model starts at position 0")
        self.soc_initial_kwh.value = self.stack.tile(soc0)
        if self.soc_box is not None:
            live = np.arange(len(self.dt_h))[None, :] >= position
            for parameter, upper in self.boxes:
                parameter.value = np.where(live, upper, 0.0)
            lower_p, upper_p, lower, upper = self.soc_box
            # Before the position SoC stays at the measured value, which may lie outside the box.
            start = self.stack.tile(soc0)[:, None]
            lower_p.value = np.where(live, lower, np.minimum(lower, start))
            upper_p.value = np.where(live, upper, np.maximum(upper, start))
        energy = np.array([s.energy_kwh for s in self.specs])
        eta_c = np.array([s.charge_efficiency for s in self.specs])
        limit = np.array([s.charge_limit_kw for s in self.specs])
        reachable = soc0 + eta_c * limit * float(self.dt_h[position:].sum())
        target = np.minimum(np.array([s.soc_initial for s in self.specs]) * energy, reachable)
        target = np.minimum(target, np.array([s.soc_max for s in self.specs]) * energy)
        self.soc_target_kwh.value = self.stack.tile(target)


#: The numbers of :func:`battery_numbers` that box a variable.
BOXES = (
    "battery_charge_max_kw", "battery_discharge_max_kw", "battery_soc_min_kwh",
    "battery_soc_max_kwh",
)


def battery_numbers(
    specs: Sequence[BatterySpec], stack: Stack, dt_h: np.ndarray
) -> dict[str, np.ndarray]:
    """The numbers of the battery rows of ``specs`` (rows x intervals unless said).

    Boxes [kW, kWh], SoC-balance gains [kWh per kW], degradation cost [currency
    per kW and interval] and terminal value [currency per kWh] (rows,); the two
    costs only when some battery has one (:func:`battery_structure`).
    """
    shape = (stack.rows, len(dt_h))

    def column(values: list[float]) -> np.ndarray:
        return stack.tile(np.asarray(values, dtype=float))[:, None]

    energy = column([s.energy_kwh for s in specs])
    out = {
        "battery_charge_max_kw": full(column([s.charge_limit_kw for s in specs]), shape),
        "battery_discharge_max_kw": full(column([s.discharge_limit_kw for s in specs]), shape),
        "battery_soc_min_kwh": full(column([s.soc_min for s in specs]) * energy, shape),
        "battery_soc_max_kwh": full(column([s.soc_max for s in specs]) * energy, shape),
        "battery_charge_gain": column([s.charge_efficiency for s in specs]) * dt_h[None, :],
        "battery_discharge_loss": dt_h[None, :] / column(
            [s.discharge_efficiency for s in specs]
        ),
    }
    weight = stack.row_weight
    degradation = stack.tile(np.array([s.degradation_cost_per_mwh for s in specs]))
    if degradation.any():
        out["battery_degradation_per_kw"] = (weight * degradation / KWH_PER_MWH)[:, None] * dt_h[
            None, :
        ]
    valued = stack.tile(
        np.array([s.terminal_value_per_mwh if s.soc_final == "valued" else 0.0 for s in specs])
    )
    if valued.any():
        out["battery_terminal_value_per_kwh"] = weight * valued / KWH_PER_MWH
    return out


def battery_structure(specs: Sequence[BatterySpec]) -> tuple[Any, ...]:
    """What fixes the rows of a battery block beyond its numbers (see :meth:`BatteryModel.structure`)."""
    return (
        len(specs),
        tuple(s.soc_final == "initial" for s in specs),
        any(s.degradation_cost_per_mwh for s in specs),
        any(s.terminal_value_per_mwh for s in specs if s.soc_final == "valued"),
    )


def add_batteries(
    builder: ModelBuilder,
    specs: Sequence[BatterySpec],
    initial_soc_kwh: np.ndarray,
    dt_h: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
    shared: bool = False,
) -> BatteryBlock:
    """Add every battery of a park to ``builder``; returns the block with its variables.

    ``dynamic=True``: boxes are Parameters so :meth:`BatteryBlock.set_state` can
    move the starting position without recompiling (real time). ``shared=True``
    (not with ``dynamic``): every number of :func:`battery_numbers` but the boxes
    is a Parameter, so one compiled model serves any batteries of the same
    structure (:meth:`BatteryBlock.load`, :meth:`BatteryBlock.variable_bounds`).
    """
    if dynamic and shared:
        raise InputError("a battery block is dynamic or shared, not both")
    specs = tuple(specs)
    rows, steps = stack.rows, len(dt_h)
    shape = (rows, steps)
    values = battery_numbers(specs, stack, dt_h)
    numbers: dict[str, np.ndarray | cp.Parameter] = dict(values)
    if shared:
        numbers = {
            name: value if name in BOXES else cp.Parameter(value.shape, name=name, value=value)
            for name, value in values.items()
        }

    params: dict[str, cp.Parameter] = {}

    def box(name: str) -> np.ndarray | cp.Parameter:
        if not dynamic:
            return numbers[name]
        params[name] = cp.Parameter(shape, name=name, value=values[name])
        return params[name]

    charge_box = box("battery_charge_max_kw")
    discharge_box = box("battery_discharge_max_kw")
    soc_low_box = box("battery_soc_min_kwh")
    soc_high_box = box("battery_soc_max_kwh")
    charge_kw = cp.Variable(
        shape,
        name="battery_charge_kw",
        bounds=builder.bounds("battery:charge-bounds", 0.0, charge_box),
    )
    discharge_kw = cp.Variable(
        shape,
        name="battery_discharge_kw",
        bounds=builder.bounds("battery:discharge-bounds", 0.0, discharge_box),
    )
    soc_kwh = cp.Variable(
        shape,
        name="battery_soc_kwh",
        bounds=builder.bounds("battery:soc-bounds", soc_low_box, soc_high_box),
    )
    soc0 = cp.Parameter(rows, name="battery_soc_initial_kwh")
    target = cp.Parameter(rows, name="battery_soc_target_kwh")
    block = BatteryBlock(stack, specs, charge_kw, discharge_kw, soc_kwh, soc0, target, dt_h)
    if dynamic:
        block.boxes = (
            (params["battery_charge_max_kw"], values["battery_charge_max_kw"]),
            (params["battery_discharge_max_kw"], values["battery_discharge_max_kw"]),
        )
        block.soc_box = (
            params["battery_soc_min_kwh"], params["battery_soc_max_kwh"],
            values["battery_soc_min_kwh"], values["battery_soc_max_kwh"],
        )
    if shared:
        block.numbers = {k: v for k, v in numbers.items() if isinstance(v, cp.Parameter)}
        block.box_values = {name: values[name] for name in BOXES}
        kept = [
            (charge_kw, None, "battery_charge_max_kw", "battery:charge-bounds"),
            (discharge_kw, None, "battery_discharge_max_kw", "battery:discharge-bounds"),
            (soc_kwh, "battery_soc_min_kwh", "battery_soc_max_kwh", "battery:soc-bounds"),
        ]
        block.bounded = tuple((v, low, high) for v, low, high, kind in kept if builder.keeps(kind))
    block.set_state(initial_soc_kwh)

    builder.add(
        ASSET_TYPE,
        "soc",
        "balance",
        stack.labels,
        soc_kwh
        - previous(soc0, soc_kwh)
        - cp.multiply(numbers["battery_charge_gain"], charge_kw)
        + cp.multiply(numbers["battery_discharge_loss"], discharge_kw),
        "==",
    )
    back_to_initial = np.flatnonzero(stack.tile(np.array([s.soc_final == "initial" for s in specs])))
    if back_to_initial.size:
        builder.add(
            ASSET_TYPE,
            "soc",
            "final",
            [stack.labels[i] for i in back_to_initial],
            target[back_to_initial] - soc_kwh[back_to_initial, steps - 1],
            "<=",
            soft=True,
        )

    if "battery_degradation_per_kw" in numbers:
        builder.add_cost(
            cp.sum(cp.multiply(numbers["battery_degradation_per_kw"], charge_kw + discharge_kw))
        )
    if "battery_terminal_value_per_kwh" in numbers:
        builder.add_cost(-numbers["battery_terminal_value_per_kwh"] @ soc_kwh[:, steps - 1])
    return block


def measured_soc_kwh(spec: BatterySpec, state: ParkState | None) -> float:
    """The battery's measured energy [kWh], or ``soc_initial x energy_kwh`` when unmeasured."""
    value = state_of(state, spec.id).soc_kwh
    return spec.soc_initial * spec.energy_kwh if value is None else float(value)


class BatteryModel:
    """The battery type in the strategy layer (:class:`strategies.assets.AssetModel`)."""

    asset_type = ASSET_TYPE
    build_rank = 0
    idle_after_others = False

    def add_block(
        self,
        builder: ModelBuilder,
        specs: Sequence[BatterySpec],
        stack: Stack,
        request: ParkModelRequest,
    ) -> BatteryBlock:
        soc0 = np.array([measured_soc_kwh(b, request.state) for b in specs], dtype=float)
        return add_batteries(
            builder, specs, soc0, request.dt_h, stack, dynamic=request.dynamic is not None,
            shared=request.shared,
        )

    def structure(self, specs: Sequence[BatterySpec], request: ParkModelRequest) -> Any:
        """Batteries of equal structure share a compiled model (:class:`strategies.assets.SharedModel`)."""
        return battery_structure(specs)

    def load_block(
        self, block: BatteryBlock, specs: Sequence[BatterySpec], stack: Stack,
        request: ParkModelRequest,
    ) -> None:
        soc0 = np.array([measured_soc_kwh(b, request.state) for b in specs], dtype=float)
        block.load(specs, stack, soc0)

    def variable_bounds(self, block: BatteryBlock) -> list[tuple[cp.Variable, Any, Any]]:
        return list(block.variable_bounds())

    def soc_kwh(self, block: BatteryBlock, scenarios: int) -> dict[str, np.ndarray]:
        ids = block.stack.ids
        value = np.asarray(block.soc_kwh.value).reshape(scenarios, len(ids), -1)
        return {a: value[:, i, :] for i, a in enumerate(ids)}

    def set_position(self, block: BatteryBlock, state: ParkState | None, position: int) -> None:
        block.set_state(np.array([measured_soc_kwh(b, state) for b in block.specs]), position)

    def idle_power_kw(
        self,
        specs: Sequence[BatterySpec],
        inputs: ParkInputs,
        state: ParkState | None,
        dt_h: np.ndarray,
        headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: no power, the energy stays where it is."""
        steps = len(inputs.index)
        power = {b.id: np.zeros(steps) for b in specs}
        soc = {b.id: np.full(steps, measured_soc_kwh(b, state)) for b in specs}
        return power, soc

    def initial_state(self, spec: BatterySpec) -> AssetState:
        return AssetState(soc_kwh=spec.soc_initial * spec.energy_kwh)

    def load_inputs(self, spec: BatterySpec, request: InputsRequest) -> Mapping[str, Any]:
        return {}

    def realized_state(
        self, spec: BatterySpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = BatteryModel()
