"""Simulated physics of ``battery``: SoC with charge/discharge efficiencies."""

from __future__ import annotations

import datetime as dt

from adapters.base import Reading
from adapters.simulated.base import EPS, SimulatedDevice, hours_between
from vpp.config.models import BatterySpec, SimulatedAdapter
from vpp.errors import InputError
from vpp.types import Clock


class SimulatedBattery(SimulatedDevice):
    """A battery: SoC with charge/discharge efficiencies within power and SoC limits.

    Stored energy changes by ``eta_c * charged_kwh - discharged_kwh / eta_d``
    where both counters are measured at the grid. When the SoC reaches a
    limit, power drops to 0 at that instant (the setpoint stays; it resumes
    if reversed).
    """

    registers = ("charged_kwh", "discharged_kwh")

    def __init__(
        self,
        park_id: str,
        asset: BatterySpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        soc: float | None = None,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.battery = asset
        start = asset.soc_initial if soc is None else soc
        if not asset.soc_min - EPS <= start <= asset.soc_max + EPS:
            raise InputError(f"soc {start} outside [{asset.soc_min}, {asset.soc_max}]")
        self.stored_kwh = start * asset.energy_kwh
        self.charged_kwh = 0.0
        self.discharged_kwh = 0.0
        self._power_kw = 0.0

    @property
    def soc(self) -> float:
        return self.stored_kwh / self.battery.energy_kwh

    def _feasible(self, power_kw: float) -> float:
        """``power_kw`` if the SoC allows that direction now, else 0."""
        b = self.battery
        if power_kw > 0 and self.stored_kwh <= b.soc_min * b.energy_kwh + EPS:
            return 0.0
        if power_kw < 0 and self.stored_kwh >= b.soc_max * b.energy_kwh - EPS:
            return 0.0
        return power_kw

    def _on_setpoint(self) -> None:
        self._power_kw = self._feasible(self._setpoint_kw or 0.0)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        b = self.battery
        power = self._feasible(self._setpoint_kw or 0.0)
        dt_h = hours_between(start, end)
        if power < 0:
            rate = -power * b.charge_efficiency  # into storage [kW]
            room = b.soc_max * b.energy_kwh - self.stored_kwh
            run_h = dt_h if rate * dt_h <= room else max(room, 0.0) / rate
            self.stored_kwh = min(self.stored_kwh + rate * run_h, b.soc_max * b.energy_kwh)
            self.charged_kwh += -power * run_h
        elif power > 0:
            rate = power / b.discharge_efficiency  # out of storage [kW]
            room = self.stored_kwh - b.soc_min * b.energy_kwh
            run_h = dt_h if rate * dt_h <= room else max(room, 0.0) / rate
            self.stored_kwh = max(self.stored_kwh - rate * run_h, b.soc_min * b.energy_kwh)
            self.discharged_kwh += power * run_h
        else:
            run_h = dt_h
        self._power_kw = power if run_h >= dt_h else 0.0
        self._power_kw = self._feasible(self._power_kw)

    def _reading(self, now: dt.datetime) -> Reading:
        return Reading(
            now,
            self._power_kw,
            self.soc,
            {"charged_kwh": self.charged_kwh, "discharged_kwh": self.discharged_kwh},
        )


DEVICE = SimulatedBattery
"""The simulated device class of this asset type (found through the asset registry)."""
