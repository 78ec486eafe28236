"""Simulated physics of ``hydrogen_storage``: a passive tank between electrolysers and offtake."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from adapters.simulated._store import PassiveStore
from adapters.simulated.base import SimulatedDevice, hours_between
from vpp.config.models import HydrogenStorageSpec, SimulatedAdapter
from vpp.types import Clock


class SimulatedHydrogenStorage(PassiveStore):
    """A hydrogen tank that floats on the park's hydrogen balance [kg].

    Supply is what the park's electrolysers produced (peers whose asset
    ``produces_hydrogen``, through their ``hydrogen_registers``), demand the
    steady offtake ``offtake_rate_kg_per_h``. No rate limit besides the
    fill limits; no losses. Registers [kg]: ``charged_kg``,
    ``discharged_kg``, ``unmet_kg`` (offtake the tank could not serve) and
    ``vented_kg`` (production it could not hold). The reading's soc is
    ``stored / capacity_kg``, its power 0.
    """

    registers = ("charged_kg", "discharged_kg", "unmet_kg", "vented_kg")
    stored_name = "stored_kg"

    def __init__(
        self,
        park_id: str,
        asset: HydrogenStorageSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        soc: float | None = None,
    ) -> None:
        self.tank = asset
        super().__init__(
            park_id,
            asset,
            spec,
            clock=clock,
            capacity=asset.capacity_kg,
            charge_rate=float("inf"),
            discharge_rate=float("inf"),
            soc=soc,
        )

    def _supplies(self, peers: Mapping[str, SimulatedDevice]) -> list[tuple[SimulatedDevice, str]]:
        return [
            (peer, peer.asset.hydrogen_registers[0])
            for peer in peers.values()
            if peer.asset.produces_hydrogen
        ]

    def _demand(self, start: dt.datetime, end: dt.datetime) -> float:
        return self.tank.offtake_rate_kg_per_h * hours_between(start, end)


DEVICE = SimulatedHydrogenStorage
"""The simulated device class of this asset type (found through the asset registry)."""
