"""Hydrogen storage model: a store (:func:`strategies.commodity.add_store`) in kg, with offtake.

Content in kg (``AssetState.stored_kg``, from telemetry as ``soc x
capacity_kg``); no standing losses and no rate limits beyond what the
electrolysers produce and the offtake draws. The offtake is a fixed draw on
the park's hydrogen node (the block's ``demand``) that must be met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies._model import ModelBuilder, Stack
from strategies.commodity import StoreBlock, add_store, store_soc
from strategies.state import AssetState, ParkInputs, ParkState, state_of
from vpp.assets.commodities import HYDROGEN
from vpp.config.models import HydrogenStorageSpec

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "hydrogen_storage"


def measured_kg(spec: HydrogenStorageSpec, state: ParkState | None) -> float:
    value = state_of(state, spec.id).stored_kg
    return spec.soc_initial * spec.capacity_kg if value is None else float(value)


@dataclass
class HydrogenStoreBlock(StoreBlock):
    offtake_kg_per_h: np.ndarray | None = None  # (T,) summed over the stores

    @property
    def demand(self) -> dict[str, np.ndarray]:
        return {} if self.offtake_kg_per_h is None else {HYDROGEN: self.offtake_kg_per_h}


class HydrogenStorageModel:
    asset_type = ASSET_TYPE
    build_rank = 8
    idle_after_others = False

    def add_block(
        self, builder: ModelBuilder, specs: Sequence[HydrogenStorageSpec], stack: Stack,
        request: ParkModelRequest,
    ) -> HydrogenStoreBlock:
        capacity = np.array([s.capacity_kg for s in specs])
        unlimited = capacity / np.maximum(request.dt_h.min(), 1e-9)  # empty to full in a step
        base = add_store(
            builder, ASSET_TYPE, specs, [HYDROGEN] * len(specs), capacity, unlimited, unlimited,
            np.zeros(len(specs)), np.array([measured_kg(s, request.state) for s in specs]),
            request.dt_h, stack, dynamic=request.dynamic is not None,
        )
        offtake = np.full(len(request.index), sum(s.offtake_rate_kg_per_h for s in specs))
        return HydrogenStoreBlock(**{**base.__dict__, "offtake_kg_per_h": offtake})

    def soc_kwh(self, block: StoreBlock, scenarios: int) -> dict[str, np.ndarray]:
        return store_soc(block, scenarios)

    def set_position(self, block: StoreBlock, state: ParkState | None, position: int) -> None:
        block.set_state(np.array([measured_kg(s, state) for s in block.specs]), position)

    def idle_power_kw(
        self, specs: Sequence[HydrogenStorageSpec], inputs: ParkInputs, state: ParkState | None,
        dt_h: np.ndarray, headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        steps = len(inputs.index)
        return (
            {s.id: np.zeros(steps) for s in specs},
            {s.id: np.full(steps, measured_kg(s, state)) for s in specs},
        )

    def initial_state(self, spec: HydrogenStorageSpec) -> AssetState:
        return AssetState(stored_kg=spec.soc_initial * spec.capacity_kg)

    def load_inputs(self, spec: HydrogenStorageSpec, request: InputsRequest) -> Mapping[str, Any]:
        return {}

    def realized_state(
        self, spec: HydrogenStorageSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        return None


MODEL = HydrogenStorageModel()
