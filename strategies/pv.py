"""PV model: forecast output, curtailable down to zero when the inverter accepts a limit.

One variable ``output_kw`` (rows = PV plants x scenarios, columns = intervals)
boxed by ``[0, available]`` for a curtailable plant and fixed at
``available`` otherwise (``pv:output-bounds``). ``available`` is the forecast
[kW, >= 0] from :func:`vpp.profiles.pv_available_kw`. Power into the grid is
``+output_kw``. With ``dynamic=True`` (real time) the box is a Parameter and
:meth:`PvBlock.set_position` pins the intervals before the current one at zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
import pandas as pd

from strategies._model import ModelBuilder, Stack
from strategies.assets import input_series
from strategies.pv_forecast import PV_FORECAST_DAYS, clear_sky_forecast_kw
from strategies.state import AssetState, ParkInputs, ParkState
from vpp.config.models import PvSpec
from vpp.errors import InputError
from vpp.profiles import pv_available_kw, pv_clear_sky_kw

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "pv"


@dataclass
class PvBlock:
    stack: Stack
    specs: tuple[PvSpec, ...]
    output_kw: cp.Variable
    available_kw: np.ndarray  # (rows, T)
    box: tuple[cp.Parameter, cp.Parameter, np.ndarray, np.ndarray] | None = None

    @property
    def power_kw(self) -> cp.Expression:
        return self.output_kw

    def set_position(self, position: int) -> None:
        """Intervals before ``position`` produce nothing (dynamic models only)."""
        if self.box is None:
            if position:
                raise InputError("a static PV model starts at position 0")
            return
        lower_p, upper_p, lower, upper = self.box
        live = np.arange(lower.shape[1])[None, :] >= position
        lower_p.value = np.where(live, lower, 0.0)
        upper_p.value = np.where(live, upper, 0.0)


def add_pv(
    builder: ModelBuilder,
    specs: Sequence[PvSpec],
    available_kw: np.ndarray,
    stack: Stack,
    *,
    dynamic: bool = False,
) -> PvBlock:
    """Add every PV plant of a park; ``available_kw`` is (n, T) [kW, >= 0]."""
    specs = tuple(specs)
    available = np.asarray(available_kw, dtype=float)
    if available.ndim != 2 or available.shape[0] != len(specs):
        raise InputError(f"available_kw must be ({len(specs)}, T), got {available.shape}")
    if not np.isfinite(available).all() or (available < 0).any():
        raise InputError("PV available power must be finite and >= 0")
    upper = stack.tile(available)
    curtailable = stack.tile(np.array([float(s.curtailable) for s in specs]))[:, None]
    lower = upper * (1.0 - curtailable)
    if not dynamic:
        output_kw = cp.Variable(
            upper.shape, name="pv_output_kw", bounds=builder.bounds("pv:output-bounds", lower, upper)
        )
        return PvBlock(stack, specs, output_kw, upper)
    lower_p = cp.Parameter(upper.shape, name="pv_output_min_kw", value=lower)
    upper_p = cp.Parameter(upper.shape, name="pv_output_max_kw", value=upper)
    output_kw = cp.Variable(
        upper.shape, name="pv_output_kw", bounds=builder.bounds("pv:output-bounds", lower_p, upper_p)
    )
    return PvBlock(stack, specs, output_kw, upper, (lower_p, upper_p, lower, upper))


class PvModel:
    """The PV type in the strategy layer (:class:`strategies.assets.AssetModel`)."""

    asset_type = ASSET_TYPE
    build_rank = 2
    idle_after_others = True

    def add_block(
        self, builder: ModelBuilder, specs: Sequence[PvSpec], stack: Stack,
        request: ParkModelRequest,
    ) -> PvBlock:
        available = np.array(
            [
                input_series(request.inputs.pv_available_kw, p.id, request.park.id, "PV forecast")
                for p in specs
            ]
        )
        return add_pv(builder, specs, available, stack, dynamic=request.dynamic is not None)

    def soc_kwh(self, block: PvBlock, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(self, block: PvBlock, state: ParkState | None, position: int) -> None:
        block.set_position(position)

    def idle_power_kw(
        self,
        specs: Sequence[PvSpec],
        inputs: ParkInputs,
        state: ParkState | None,
        dt_h: np.ndarray,
        headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: all available output, curtailable plants scaled down to the export room left."""
        steps = len(inputs.index)
        available = {a.id: np.asarray(inputs.pv_available_kw[a.id], dtype=float) for a in specs}
        fixed = sum((available[a.id] for a in specs if not a.curtailable), np.zeros(steps))
        flexible = sum((available[a.id] for a in specs if a.curtailable), np.zeros(steps))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(flexible > 0, np.clip((headroom_kw - fixed) / flexible, 0.0, 1.0), 1.0)
        power = {a.id: available[a.id] * (scale if a.curtailable else 1.0) for a in specs}
        return power, {}

    def initial_state(self, spec: PvSpec) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: PvSpec, request: InputsRequest) -> Mapping[str, Any]:
        """Realized output, or (``decision_time`` set) the forecast made then.

        The forecast (``forecast_method``) uses the :data:`PV_FORECAST_DAYS`
        whole days before the decision day, never the delivery day's weather:
        ``recent_mean`` (default) is the average output at the same time of
        day over those days; ``clear_sky`` is pvlib's clear-sky output of the
        delivery intervals scaled by those days' realized over clear-sky
        energy (:mod:`strategies.pv_forecast`). The simulated plant runs on
        the realized profile, so PV errors become real deviations.
        """
        index, zone = request.index, request.timezone
        if request.decision_time is None:
            realized = pv_available_kw(spec, request.config_dir, index, zone)
            return {"pv_available_kw": realized.to_numpy(float)}
        decided = pd.Timestamp(request.decision_time).tz_convert(zone).date()
        first = pd.Timestamp(index[0]).tz_convert(zone).date()
        lead = (first - decided).days
        past = [index - pd.Timedelta(days=lead + k) for k in range(1, PV_FORECAST_DAYS + 1)]
        realized_past = np.array(
            [pv_available_kw(spec, request.config_dir, days, zone).to_numpy(float) for days in past]
        )
        if spec.forecast_method == "recent_mean":
            return {"pv_available_kw": np.mean(realized_past, axis=0)}
        clear_past = np.array(
            [pv_clear_sky_kw(spec, request.config_dir, days, zone).to_numpy(float) for days in past]
        )
        clear = pv_clear_sky_kw(spec, request.config_dir, index, zone).to_numpy(float)
        forecast = clear_sky_forecast_kw(realized_past, clear_past, clear, spec.max_export_kw)
        return {"pv_available_kw": forecast}

    def realized_state(
        self, spec: PvSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = PvModel()
