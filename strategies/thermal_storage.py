"""Thermal storage model: a store (:func:`strategies.commodity.add_store`) on one heat level.

Content in kWh_th, measured from telemetry as ``soc x capacity_kwh``
(``AssetState.soc_kwh``). Passive at the grid: it only enters its level's
heat balance (discharge - charge).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies._model import ModelBuilder, Stack
from strategies.commodity import StoreBlock, add_store, store_soc
from strategies.state import AssetState, ParkInputs, ParkState, state_of
from vpp.config.models import ThermalStorageSpec

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "thermal_storage"


def measured_kwh(spec: ThermalStorageSpec, state: ParkState | None) -> float:
    value = state_of(state, spec.id).soc_kwh
    return spec.soc_initial * spec.capacity_kwh if value is None else float(value)


class ThermalStorageModel:
    asset_type = ASSET_TYPE
    build_rank = 6
    idle_after_others = False

    def add_block(
        self, builder: ModelBuilder, specs: Sequence[ThermalStorageSpec], stack: Stack,
        request: ParkModelRequest,
    ) -> StoreBlock:
        return add_store(
            builder, ASSET_TYPE, specs, [s.level for s in specs],
            np.array([s.capacity_kwh for s in specs]),
            np.array([s.charge_kw for s in specs]),
            np.array([s.discharge_kw for s in specs]),
            np.array([s.loss_per_h for s in specs]),
            np.array([measured_kwh(s, request.state) for s in specs]),
            request.dt_h, stack, dynamic=request.dynamic is not None,
        )

    def soc_kwh(self, block: StoreBlock, scenarios: int) -> dict[str, np.ndarray]:
        return store_soc(block, scenarios)

    def set_position(self, block: StoreBlock, state: ParkState | None, position: int) -> None:
        block.set_state(np.array([measured_kwh(s, state) for s in block.specs]), position)

    def idle_power_kw(
        self, specs: Sequence[ThermalStorageSpec], inputs: ParkInputs, state: ParkState | None,
        dt_h: np.ndarray, headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        steps = len(inputs.index)
        return (
            {s.id: np.zeros(steps) for s in specs},
            {s.id: np.full(steps, measured_kwh(s, state)) for s in specs},
        )

    def initial_state(self, spec: ThermalStorageSpec) -> AssetState:
        return AssetState(soc_kwh=spec.soc_initial * spec.capacity_kwh)

    def load_inputs(self, spec: ThermalStorageSpec, request: InputsRequest) -> Mapping[str, Any]:
        return {}

    def realized_state(
        self, spec: ThermalStorageSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = ThermalStorageModel()
