"""The devices an operator dispatches: simulated physics or the park files' adapters.

:func:`simulated_devices` is what the backtest and ``vpp run --simulate``
use: every asset becomes a simulated device fed with the park's real
profiles (PV availability, process baseline, EV sessions), driven by the
injected clock. :func:`configured_devices` is what ``vpp run`` uses: the
adapter each park file names (Modbus/SunSpec, OCPP, HTTP), with assets
whose adapter is ``simulated`` simulated as above.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from adapters import SimulatedDevice, create, simulated_device
from vpp.config.models import SimulatedAdapter
from vpp.runtime.operator import AssetKey, MarketPortfolio
from vpp.types import Clock, Device


def simulated_devices(
    portfolio: MarketPortfolio,
    clock: Clock,
    index: pd.DatetimeIndex,
    soc: Mapping[AssetKey, float] | None = None,
    *,
    only: set[AssetKey] | None = None,
) -> tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]:
    """Connected simulated devices fed with the parks' real profiles over ``index``.

    The series reach one interval past ``index`` so the closing meter
    reading at its end is inside the data. ``soc`` gives stores (batteries,
    thermal and hydrogen storage: a ``state_kind`` of ``soc`` or ``soc_kg``)
    their starting state of charge (else the configured ``soc_initial``);
    ``only`` restricts the result to some assets. Once a park's devices
    exist, each is coupled to the others of its park
    (:meth:`~adapters.SimulatedDevice.couple`: a passive store reads the
    registers of the converters feeding its node). Returns the devices and, per EV
    hub, the sessions as the drivers stated them.
    """
    soc = soc or {}
    devices: dict[AssetKey, Device] = {}
    sessions: dict[AssetKey, pd.DataFrame] = {}
    step = index[1] - index[0]
    start = index[0].to_pydatetime()
    end = (index[-1] + step).to_pydatetime()
    index = index.append(pd.DatetimeIndex([index[-1] + step]))
    for park in portfolio.parks:
        folder = portfolio.config_dirs[park.id]
        of_park: dict[str, SimulatedDevice] = {}
        for asset in park.assets:
            key = (park.id, asset.id)
            if only is not None and key not in only:
                continue
            spec = (
                asset.adapter if isinstance(asset.adapter, SimulatedAdapter) else SimulatedAdapter()
            )
            inputs = asset.simulation_inputs(folder, index, park.timezone, start, end, park=park)
            if "sessions" in inputs:
                sessions[key] = inputs["sessions"]
            if asset.state_kind in ("soc", "soc_kg"):
                inputs["soc"] = soc.get(key)
            device = simulated_device(park.id, asset, spec, clock=clock, **inputs)
            device.connect()
            devices[key] = device
            of_park[asset.id] = device
        for device in of_park.values():
            device.couple(of_park)
    return devices, sessions


def configured_devices(
    portfolio: MarketPortfolio,
    clock: Clock,
    index: pd.DatetimeIndex,
    soc: Mapping[AssetKey, float] | None = None,
) -> tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]:
    """The adapters the park files name, connected; ``simulated`` ones as in :func:`simulated_devices`.

    Protocol adapters never raise on connect for device faults: an
    unreachable device is marked unavailable and reconnects in the
    background (``docs/adapters.md``).
    """
    simulated = {
        (p.id, a.id)
        for p in portfolio.parks
        for a in p.assets
        if isinstance(a.adapter, SimulatedAdapter)
    }
    devices, sessions = simulated_devices(portfolio, clock, index, soc, only=simulated)
    for park in portfolio.parks:
        for asset in park.assets:
            key = (park.id, asset.id)
            if key in simulated:
                continue
            adapter = create(park, asset, clock=clock)
            adapter.connect()
            devices[key] = adapter
    return devices, sessions
