"""Power-to-heat converters (heat pumps, electric boilers): electricity in, heat out on one level.

One variable ``draw_kw`` (rows = converters x scenarios, columns =
intervals) in ``[0, power_kw]`` (``{type}:draw-bounds``); heat delivered to
the converter's level ``gain[t] x draw_kw`` with ``gain`` the COP of each
interval (heat pump) or the efficiency (boiler). Power into the grid:
``-draw_kw``. With ``dynamic=True`` (real time) the box is a Parameter pinned
at zero before the current position, like PV. The heat enters the level's
balance (:mod:`strategies.commodity`); the idle fallback draws what the
merit order gives it (:func:`strategies.commodity.with_idle_conversion`).
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
from vpp.errors import InputError

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest


@dataclass
class ConverterBlock:
    stack: Stack
    specs: tuple[Any, ...]
    draw_kw: cp.Variable
    gain: np.ndarray  # (rows, T) heat per electricity
    levels: tuple[str, ...]
    box: tuple[cp.Parameter, np.ndarray] | None = None

    @property
    def power_kw(self) -> cp.Expression:
        return -self.draw_kw

    @property
    def heat_kw(self) -> cp.Expression:
        return cp.multiply(self.gain, self.draw_kw)

    @property
    def flows(self) -> dict[str, cp.Expression]:
        out: dict[str, cp.Expression] = {}
        for level in dict.fromkeys(self.levels):
            mask = np.array(
                [[1.0] if self.levels[r % self.stack.n] == level else [0.0]
                 for r in range(self.stack.rows)]
            )
            out[level] = cp.multiply(mask, self.heat_kw)
        return out

    def heat_flows_kw(self, scenarios: int) -> dict[str, np.ndarray]:
        """Solved heat delivered per converter (scenarios, T) [kW_th]."""
        value = np.asarray(self.heat_kw.value, dtype=float).reshape(scenarios, self.stack.n, -1)
        return {a: value[:, i, :] for i, a in enumerate(self.stack.ids)}

    def set_position(self, position: int) -> None:
        if self.box is None:
            if position:
                raise InputError("a static converter model starts at position 0")
            return
        parameter, upper = self.box
        live = np.arange(upper.shape[1])[None, :] >= position
        parameter.value = np.where(live, upper, 0.0)


def add_converters(
    builder: ModelBuilder,
    asset_type: str,
    specs: Sequence[Any],
    gain: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> ConverterBlock:
    """Add converters with heat per electricity ``gain`` (n, T) to ``builder``."""
    specs = tuple(specs)
    steps = gain.shape[1]
    values = np.asarray(gain, dtype=float)
    if values.shape[0] != len(specs) or not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(f"{asset_type}: heat per electricity must be finite and > 0")
    shape = (stack.rows, steps)
    upper = full(stack.tile(np.array([float(s.power_kw) for s in specs]))[:, None], shape)
    bound: np.ndarray | cp.Parameter = upper
    box = None
    if dynamic:
        parameter = cp.Parameter(shape, name=f"{asset_type}_draw_max_kw", value=upper)
        bound, box = parameter, (parameter, upper)
    draw = cp.Variable(
        shape, name=f"{asset_type}_draw_kw",
        bounds=builder.bounds(f"{asset_type}:draw-bounds", 0.0, bound),
    )
    return ConverterBlock(
        stack, specs, draw, stack.tile(values), tuple(s.level for s in specs), box
    )


class ConverterModel:
    """Shared :class:`strategies.assets.AssetModel` behaviour of heat pumps and boilers."""

    asset_type = "converter"
    build_rank = 99  # set by each converter type
    idle_after_others = False

    def gain(self, specs: Sequence[Any], request: ParkModelRequest) -> np.ndarray:
        raise NotImplementedError

    def add_block(
        self, builder: ModelBuilder, specs: Sequence[Any], stack: Stack,
        request: ParkModelRequest,
    ) -> ConverterBlock:
        return add_converters(
            builder, self.asset_type, specs, self.gain(specs, request), stack,
            dynamic=request.dynamic is not None,
        )

    def soc_kwh(self, block: ConverterBlock, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(self, block: ConverterBlock, state: ParkState | None, position: int) -> None:
        block.set_position(position)

    def idle_power_kw(
        self, specs: Sequence[Any], inputs: ParkInputs, state: ParkState | None,
        dt_h: np.ndarray, headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: the merit order's draw serving the demand (see module doc)."""
        return {s.id: -idle_draw(inputs, s.id) for s in specs}, {}

    def initial_state(self, spec: Any) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: Any, request: InputsRequest) -> Mapping[str, Any]:
        return {}

    def realized_state(
        self, spec: Any, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None
