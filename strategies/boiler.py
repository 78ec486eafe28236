"""Electric boiler model: a converter (:mod:`strategies.converter`) with a constant efficiency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from strategies.converter import ConverterModel
from vpp.config.models import ElectricBoilerSpec

if TYPE_CHECKING:
    from strategies.park import ParkModelRequest

ASSET_TYPE = "boiler"


class BoilerModel(ConverterModel):
    asset_type = ASSET_TYPE
    build_rank = 5

    def gain(self, specs: Sequence[ElectricBoilerSpec], request: ParkModelRequest) -> np.ndarray:
        steps = len(request.index)
        return np.array([np.full(steps, s.efficiency) for s in specs])


MODEL = BoilerModel()
