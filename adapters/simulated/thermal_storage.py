"""Simulated physics of ``thermal_storage``: a passive heat store on its level's balance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd

from adapters.base import DeviceFaultError, Reading, Reason
from adapters.simulated._store import PassiveStore
from adapters.simulated.base import Profile, SimulatedDevice, hours_between
from vpp.config.models import SimulatedAdapter, ThermalStorageSpec
from vpp.types import Clock


class SimulatedThermalStorage(PassiveStore):
    """Heat storage that floats on its level: surplus heat charges it, a deficit drains it.

    Supply is the heat its level's converters delivered (each peer whose
    ``asset.heat_outputs()`` names this level, through the register named
    there), demand the level's realized heat demand ``demand_kw`` [kW_th]
    (a step series). Standing losses take ``stored x (1 - (1 - loss_per_h)^h)``
    per step of ``h`` hours. ``soc_min`` is the plan's reserve, not a physical
    floor: a deficit the converters leave drains the tank down to empty (it
    cools), before any heat goes unmet. Registers [kWh_th]: ``charged_kwh``,
    ``discharged_kwh``, ``unmet_kwh`` (demand the storage could not cover),
    ``dumped_kwh`` (surplus it could not take) and ``lost_kwh``. No
    setpoint; the reading's power is 0 and its soc ``stored / capacity_kwh``.
    See :mod:`adapters.simulated._store` for the balance and its identities.
    """

    registers = ("charged_kwh", "discharged_kwh", "unmet_kwh", "dumped_kwh", "lost_kwh")
    inputs = ("demand_kw",)
    stored_name = "stored_kwh"
    drain_floor = 0.0

    def __init__(
        self,
        park_id: str,
        asset: ThermalStorageSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        demand_kw: pd.Series,
        soc: float | None = None,
    ) -> None:
        self.storage = asset
        self.demand = Profile(demand_kw, f"{asset.id} demand_kw")
        super().__init__(
            park_id,
            asset,
            spec,
            clock=clock,
            capacity=asset.capacity_kwh,
            charge_rate=asset.charge_kw,
            discharge_rate=asset.discharge_kw,
            soc=soc,
        )

    def _supplies(self, peers: Mapping[str, SimulatedDevice]) -> list[tuple[SimulatedDevice, str]]:
        level = self.storage.level
        return [
            (peer, peer.asset.heat_outputs()[level])
            for peer in peers.values()
            if level in peer.asset.heat_outputs()
        ]

    def _demand(self, start: dt.datetime, end: dt.datetime) -> float:
        return sum(kw * hours_between(a, b) for a, b, kw in self.demand.segments(start, end))

    def _demand_cuts(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        try:
            return [a for a, _, _ in self.demand.segments(start, end)[1:]]
        except DeviceFaultError:
            return []

    def _loss(self, dt_h: float) -> float:
        return 1.0 - (1.0 - self.storage.loss_per_h) ** dt_h

    def _reading(self, now: dt.datetime) -> Reading:
        demand = self.demand.at(now)
        if demand is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no heat demand data at {now}")
        reading = super()._reading(now)
        reading.extra["demand_kw"] = demand
        return reading


DEVICE = SimulatedThermalStorage
"""The simulated device class of this asset type (found through the asset registry)."""
