"""Simulated physics of ``pv``: available AC power, capped by a curtailment setpoint."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from adapters.base import DeviceFaultError, Reading, Reason
from adapters.simulated.base import Profile, SimulatedDevice, hours_between
from vpp.config.models import PvSpec, SimulatedAdapter
from vpp.types import Clock


class SimulatedPv(SimulatedDevice):
    """A PV plant following its available AC power, capped by a curtailment setpoint."""

    registers = ("produced_kwh", "curtailed_kwh")
    inputs = ("available_kw",)

    def __init__(
        self,
        park_id: str,
        asset: PvSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        available_kw: pd.Series,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.pv = asset
        self.available = Profile(available_kw, f"{asset.id} available_kw")
        self.inverter_kw = asset.inverter_kw or asset.capacity_kwp
        self.produced_kwh = 0.0
        self.curtailed_kwh = 0.0

    def _output(self, available_kw: float) -> float:
        cap = self.inverter_kw if self._setpoint_kw is None else self._setpoint_kw
        return min(available_kw, self.inverter_kw, cap)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        for a, b, available in self.available.segments(start, end):
            out = self._output(available)
            self.produced_kwh += out * hours_between(a, b)
            self.curtailed_kwh += (min(available, self.inverter_kw) - out) * hours_between(a, b)

    def _reading(self, now: dt.datetime) -> Reading:
        available = self.available.at(now)
        if available is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no available-power data at {now}")
        return Reading(
            now,
            self._output(available),
            None,
            {
                "available_kw": min(available, self.inverter_kw),
                "produced_kwh": self.produced_kwh,
                "curtailed_kwh": self.curtailed_kwh,
            },
        )


DEVICE = SimulatedPv
"""The simulated device class of this asset type (found through the asset registry)."""
