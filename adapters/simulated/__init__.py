"""``simulated``: devices with physics for the backtest and the demo.

One module per asset type holds its physics -- :mod:`adapters.simulated.battery`,
:mod:`~adapters.simulated.ev`, :mod:`~adapters.simulated.process`,
:mod:`~adapters.simulated.pv` -- each exposing its device class as ``DEVICE``;
the asset registry (:mod:`vpp.assets`, an entry's ``physics``) names the
module, so :func:`simulated_device` never dispatches on the asset's class.
The shared machinery (lazy, exact integration up to ``clock.now()``, step
profiles) is in :mod:`adapters.simulated.base`.
"""

from __future__ import annotations

from typing import Any

from adapters.simulated.base import SimulatedDevice
from adapters.simulated.battery import SimulatedBattery
from adapters.simulated.ev import SESSION_REQUIRED, SimulatedEvHub
from adapters.simulated.process import SimulatedProcess
from adapters.simulated.pv import SimulatedPv
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
    data series (``available_kw``, ``baseline_kw``, ``sessions``; see the
    class's ``inputs``) and, for a battery, its starting ``soc``.
    """
    return simulated_class(asset)(park_id, asset, adapter, clock=clock, **inputs)


__all__ = [
    "SESSION_REQUIRED",
    "SimulatedBattery",
    "SimulatedDevice",
    "SimulatedEvHub",
    "SimulatedProcess",
    "SimulatedPv",
    "simulated_class",
    "simulated_device",
]
