"""Electrolyser model: stack power, on/off above a minimum load (a MILP), hydrogen and heat.

Variables (rows = electrolysers x scenarios, columns = intervals):

* ``stack_kw`` in ``[0, power_kw]`` (``electrolyser:stack-bounds``);
* ``on`` -- boolean when ``min_load_fraction > 0`` (the model becomes a
  MILP, solved by HiGHS), else continuous in ``[0, 1]`` (a plain LP);
* ``recovered_kw`` >= 0, heat recovered into ``heat_recovery_level``.

Constraints: ``stack <= power_kw x on`` (``stack-on``), ``stack >= min x on``
(``stack-min``: off, or at least the minimum load -- never in between),
``recovered <= heat_recovery_fraction x stack`` (``recovery-max``), and with
a ramp limit ``|stack[t] - stack[t-1]| <= ramp x minutes`` (``ramp-up`` /
``ramp-down``; the horizon's first interval is free: the model does not
carry the stack power in from telemetry). Electricity drawn: ``stack +
standby_kw x (1 - on)``; power into the grid is minus that. Hydrogen into
the park's hydrogen node: ``stack / kwh_per_kg`` [kg/h].

In real time (``dynamic``) the stack box and the stand-by draw are
Parameters pinned at zero before the current position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np

from strategies._model import ModelBuilder, Stack, full
from strategies.commodity import idle_draw
from strategies.state import AssetState, ParkInputs, ParkState
from vpp.assets.commodities import HYDROGEN
from vpp.config.models import ElectrolyserSpec
from vpp.errors import InputError

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "electrolyser"


@dataclass
class ElectrolyserBlock:
    stack: Stack
    specs: tuple[ElectrolyserSpec, ...]
    stack_kw: cp.Variable
    on: cp.Variable
    recovered_kw: cp.Variable | None
    standby: np.ndarray | cp.Parameter  # (rows, T) stand-by draw when off
    box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None

    @property
    def draw_kw(self) -> cp.Expression:
        return self.stack_kw + cp.multiply(self.standby, 1 - self.on)

    @property
    def power_kw(self) -> cp.Expression:
        return -self.draw_kw

    @property
    def hydrogen_kg_per_h(self) -> cp.Expression:
        per_kg = self.stack.tile(np.array([s.kwh_per_kg for s in self.specs]))[:, None]
        return cp.multiply(1.0 / per_kg, self.stack_kw)

    @property
    def flows(self) -> dict[str, cp.Expression]:
        out: dict[str, cp.Expression] = {HYDROGEN: self.hydrogen_kg_per_h}
        if self.recovered_kw is not None:
            levels = [s.heat_recovery_level for s in self.specs]
            for level in dict.fromkeys(lv for lv in levels if lv is not None):
                mask = np.array(
                    [[1.0] if levels[r % self.stack.n] == level else [0.0]
                     for r in range(self.stack.rows)]
                )
                out[level] = cp.multiply(mask, self.recovered_kw)
        return out

    def set_position(self, position: int) -> None:
        if self.box is None:
            if position:
                raise InputError("a static electrolyser model starts at position 0")
            return
        stack_p, standby_p, stack_max, standby = self.box
        live = np.arange(stack_max.shape[1])[None, :] >= position
        stack_p.value = np.where(live, stack_max, 0.0)
        standby_p.value = np.where(live, standby, 0.0)


def add_electrolysers(
    builder: ModelBuilder,
    specs: Sequence[ElectrolyserSpec],
    dt_h: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> ElectrolyserBlock:
    """Add every electrolyser of a park (see module doc)."""
    specs = tuple(specs)
    rows, steps = stack.rows, len(dt_h)
    shape = (rows, steps)

    def column(values: list[float]) -> np.ndarray:
        return stack.tile(np.asarray(values, dtype=float))[:, None]

    rated = full(column([s.power_kw for s in specs]), shape)
    standby = full(column([s.standby_kw for s in specs]), shape)
    # "electrolyser:on-integrality" in omit: the LP relaxation (benchmarks, diagnostics)
    on_off = any(s.on_off for s in specs) and builder.keeps("electrolyser:on-integrality")
    box = None
    stack_bound: np.ndarray | cp.Parameter = rated
    standby_term: np.ndarray | cp.Parameter = standby
    if dynamic:
        stack_p = cp.Parameter(shape, name="electrolyser_stack_max_kw", value=rated)
        standby_p = cp.Parameter(shape, name="electrolyser_standby_kw", value=standby)
        stack_bound, standby_term = stack_p, standby_p
        box = (stack_p, standby_p, rated, standby)
    stack_kw = cp.Variable(
        shape, name="electrolyser_stack_kw",
        bounds=builder.bounds("electrolyser:stack-bounds", 0.0, stack_bound),
    )
    on = (
        cp.Variable(shape, name="electrolyser_on", boolean=True) if on_off
        else cp.Variable(shape, name="electrolyser_on", bounds=[np.zeros(shape), np.ones(shape)])
    )
    builder.add(ASSET_TYPE, "stack", "on", stack.labels, stack_kw - cp.multiply(rated, on), "<=")
    minimum = column([s.min_power_kw for s in specs])
    if (minimum > 0).any():
        builder.add(
            ASSET_TYPE, "stack", "min", stack.labels, cp.multiply(minimum, on) - stack_kw, "<="
        )
    recovered = None
    fraction = column([s.heat_recovery_fraction if s.heat_outputs() else 0.0 for s in specs])
    if (fraction > 0).any():
        recovered = cp.Variable(shape, name="electrolyser_recovered_kw", nonneg=True)
        builder.add(
            ASSET_TYPE, "recovery", "max", stack.labels,
            recovered - cp.multiply(fraction, stack_kw), "<=",
        )
    limits = [s.ramp_limit_kw_per_min for s in specs]
    ramped = [i for i, limit in enumerate(limits) if limit is not None]
    if ramped and steps > 1:
        rows_r = np.array([s * len(specs) + i for s in range(stack.scenarios) for i in ramped])
        per_min = np.array([limits[r % len(specs)] for r in rows_r], dtype=float)[:, None]
        step_max = per_min * (dt_h[1:] * 60.0)[None, :]
        change = stack_kw[rows_r, 1:] - stack_kw[rows_r, :-1]
        labels = [stack.labels[r] for r in rows_r]
        builder.add(ASSET_TYPE, "ramp", "up", labels, change - step_max, "<=")
        builder.add(ASSET_TYPE, "ramp", "down", labels, -change - step_max, "<=")
    return ElectrolyserBlock(stack, specs, stack_kw, on, recovered, standby_term, box)


class ElectrolyserModel:
    """The electrolyser type in the strategy layer (:class:`strategies.assets.AssetModel`)."""

    asset_type = ASSET_TYPE
    build_rank = 7
    idle_after_others = False

    def add_block(
        self, builder: ModelBuilder, specs: Sequence[ElectrolyserSpec], stack: Stack,
        request: ParkModelRequest,
    ) -> ElectrolyserBlock:
        return add_electrolysers(
            builder, specs, request.dt_h, stack, dynamic=request.dynamic is not None
        )

    def soc_kwh(self, block: ElectrolyserBlock, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(
        self, block: ElectrolyserBlock, state: ParkState | None, position: int
    ) -> None:
        block.set_position(position)

    def idle_power_kw(
        self, specs: Sequence[ElectrolyserSpec], inputs: ParkInputs, state: ParkState | None,
        dt_h: np.ndarray, headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: the stack at the hydrogen offtake rate (see :mod:`strategies.commodity`)."""
        return {s.id: -idle_draw(inputs, s.id) for s in specs}, {}

    def initial_state(self, spec: ElectrolyserSpec) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: ElectrolyserSpec, request: InputsRequest) -> Mapping[str, Any]:
        return {}

    def realized_state(
        self, spec: ElectrolyserSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = ElectrolyserModel()
