"""``simulated``: devices with physics for the backtest and the demo.

One module per asset type holds its physics -- :mod:`adapters.simulated.battery`,
:mod:`~adapters.simulated.ev`, :mod:`~adapters.simulated.process`,
:mod:`~adapters.simulated.pv`, and the multi-energy ones
:mod:`~adapters.simulated.heat_pump`, :mod:`~adapters.simulated.boiler`,
:mod:`~adapters.simulated.electrolyser`, :mod:`~adapters.simulated.thermal_storage`
and :mod:`~adapters.simulated.hydrogen_storage` -- each exposing its device class as ``DEVICE``;
the asset registry (:mod:`vpp.assets`, an entry's ``physics``) names the
module, so :func:`simulated_device` never dispatches on the asset's class.
The shared machinery (lazy, exact integration up to ``clock.now()``, step
profiles) is in :mod:`adapters.simulated.base`; passive stores couple to the
converters of their park (:meth:`SimulatedDevice.couple`) and float on the
balance of their node (:mod:`adapters.simulated._store`).
"""

from __future__ import annotations

from typing import Any

from adapters.simulated.base import SimulatedDevice
from adapters.simulated.battery import SimulatedBattery
from adapters.simulated.boiler import SimulatedBoiler
from adapters.simulated.electrolyser import SimulatedElectrolyser
from adapters.simulated.ev import SESSION_REQUIRED, SimulatedEvHub
from adapters.simulated.heat_pump import SimulatedHeatPump
from adapters.simulated.hydrogen_storage import SimulatedHydrogenStorage
from adapters.simulated.process import SimulatedProcess
from adapters.simulated.pv import SimulatedPv
from adapters.simulated.thermal_storage import SimulatedThermalStorage
from vpp.assets import asset_type
from vpp.config.models import AssetSpec, SimulatedAdapter
from vpp.types import Clock


def simulated_class(asset: AssetSpec) -> type[SimulatedDevice]:
    """The simulated device class of ``asset``'s type, from its registry entry's physics module."""
    device: type[SimulatedDevice] = asset_type(asset.type).physics_module().DEVICE
    return device


def simulated_device(
    park_id: str,
    asset: AssetSpec,
    adapter: SimulatedAdapter,
    *,
    clock: Clock,
    **inputs: Any,
) -> SimulatedDevice:
    """A simulated device for ``asset`` (not connected), fed with its exogenous ``inputs``.

    ``inputs`` are the keyword arguments of the type's device class: its
    data series (``available_kw``, ``baseline_kw``, ``sessions``, ``cop``,
    ``demand_kw``; see the class's ``inputs``) and, for a store, its starting ``soc``.
    """
    return simulated_class(asset)(park_id, asset, adapter, clock=clock, **inputs)


__all__ = [
    "SESSION_REQUIRED",
    "SimulatedBattery",
    "SimulatedBoiler",
    "SimulatedDevice",
    "SimulatedElectrolyser",
    "SimulatedEvHub",
    "SimulatedHeatPump",
    "SimulatedHydrogenStorage",
    "SimulatedProcess",
    "SimulatedPv",
    "SimulatedThermalStorage",
    "simulated_class",
    "simulated_device",
]
