"""Simulated physics of ``heat_pump``: electricity to heat at a COP that follows the data."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from adapters.base import DeviceFaultError, Reading, Reason
from adapters.simulated.base import Profile, SimulatedDevice, hours_between
from vpp.config.models import HeatPumpSpec, SimulatedAdapter
from vpp.types import Clock


class SimulatedHeatPump(SimulatedDevice):
    """A heat pump: draws the setpoint's magnitude within ``[0, power_kw]``, heat = draw x COP.

    The COP is an exogenous step series (one value per interval, from the
    lift between source and the level's temperature; see
    :meth:`vpp.assets.HeatPumpSpec.simulation_inputs`). Registers:
    ``consumed_kwh`` (electricity) and ``heat_kwh`` (heat delivered to its
    level, the integral of draw x COP) [kWh].
    """

    registers = ("consumed_kwh", "heat_kwh")
    inputs = ("cop",)

    def __init__(
        self,
        park_id: str,
        asset: HeatPumpSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        cop: pd.Series,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.heat_pump = asset
        self.cop = Profile(cop, f"{asset.id} cop")
        self.consumed_kwh = 0.0
        self.heat_kwh = 0.0

    def draw_kw(self) -> float:
        """Electric power drawn now (>= 0) [kW]: the setpoint clipped to the rating."""
        return min(max(-(self._setpoint_kw or 0.0), 0.0), self.heat_pump.power_kw)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        draw = self.draw_kw()
        for a, b, cop in self.cop.segments(start, end):
            energy_kwh = draw * hours_between(a, b)
            self.consumed_kwh += energy_kwh
            self.heat_kwh += energy_kwh * cop

    def supply_shape(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
        """Heat follows the COP steps (the draw is constant between setpoints)."""
        try:
            return [(a, cop) for a, _, cop in self.cop.segments(start, end)]
        except DeviceFaultError:
            return [(start, 1.0)]

    def _reading(self, now: dt.datetime) -> Reading:
        cop = self.cop.at(now)
        if cop is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no cop data at {now}")
        draw = self.draw_kw()
        return Reading(
            now,
            -draw,
            None,
            {
                "consumed_kwh": self.consumed_kwh,
                "heat_kwh": self.heat_kwh,
                "heat_kw": draw * cop,
                "cop": cop,
            },
        )


DEVICE = SimulatedHeatPump
"""The simulated device class of this asset type (found through the asset registry)."""
