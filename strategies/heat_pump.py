"""Heat pump model: a converter (:mod:`strategies.converter`) whose gain is its COP per interval.

The COP comes from the inputs (``ParkInputs.cop``): the lift from the
source (fixed, or the weather file's air temperature -- realized, or
forecast from the days before the decision) to the level's temperature
(:func:`vpp.assets.commodities.cop_from_lift`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies.assets import input_series
from strategies.commodity_inputs import cop_inputs
from strategies.converter import ConverterModel
from vpp.config.models import HeatPumpSpec
from vpp.errors import InputError

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

ASSET_TYPE = "heat_pump"


class HeatPumpModel(ConverterModel):
    asset_type = ASSET_TYPE
    build_rank = 4

    def gain(self, specs: Sequence[HeatPumpSpec], request: ParkModelRequest) -> np.ndarray:
        return np.array(
            [input_series(request.inputs.cop, s.id, request.park.id, "heat pump COP") for s in specs]
        )

    def load_inputs(self, spec: HeatPumpSpec, request: InputsRequest) -> Mapping[str, Any]:
        level = None if request.park is None else request.park.heat_level(spec.level)
        if level is None:
            raise InputError(f"heat pump {spec.id}: no heat level {spec.level!r} in its park")
        return {"cop": cop_inputs(spec, level.temperature_c, request)}


MODEL = HeatPumpModel()
