"""Simulated physics of ``electric_boiler``: electricity to heat at a fixed efficiency."""

from __future__ import annotations

import datetime as dt

from adapters.base import Reading
from adapters.simulated.base import SimulatedDevice, hours_between
from vpp.config.models import ElectricBoilerSpec, SimulatedAdapter
from vpp.types import Clock


class SimulatedBoiler(SimulatedDevice):
    """An electric boiler: draws the setpoint's magnitude within ``[0, power_kw]``.

    Heat delivered = draw x ``efficiency``. Registers ``consumed_kwh`` and
    ``heat_kwh`` [kWh]; no exogenous inputs.
    """

    registers = ("consumed_kwh", "heat_kwh")

    def __init__(
        self, park_id: str, asset: ElectricBoilerSpec, spec: SimulatedAdapter, *, clock: Clock
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.boiler = asset
        self.consumed_kwh = 0.0
        self.heat_kwh = 0.0

    def draw_kw(self) -> float:
        """Electric power drawn now (>= 0) [kW]: the setpoint clipped to the rating."""
        return min(max(-(self._setpoint_kw or 0.0), 0.0), self.boiler.power_kw)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        energy_kwh = self.draw_kw() * hours_between(start, end)
        self.consumed_kwh += energy_kwh
        self.heat_kwh += energy_kwh * self.boiler.efficiency

    def _reading(self, now: dt.datetime) -> Reading:
        draw = self.draw_kw()
        return Reading(
            now,
            -draw,
            None,
            {
                "consumed_kwh": self.consumed_kwh,
                "heat_kwh": self.heat_kwh,
                "heat_kw": draw * self.boiler.efficiency,
                "efficiency": self.boiler.efficiency,
            },
        )


DEVICE = SimulatedBoiler
"""The simulated device class of this asset type (found through the asset registry)."""
