"""``create``: the adapter a park file names for an asset, and the portfolio health registry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

import httpx
import pandas as pd

from adapters._http import HttpController
from adapters._modbus import ModbusSunSpecDevice
from adapters._modbus_map import ModbusDevice
from adapters._ocpp import OcppHub
from adapters.base import Adapter, HealthStatus, ReconnectPolicy
from adapters.simulated import simulated_class
from vpp.assets import ASSET_TYPES
from vpp.config.models import (
    AssetSpec,
    BatterySpec,
    EvChargingSpec,
    HttpAdapter,
    ModbusAdapter,
    ModbusSunSpecAdapter,
    OcppAdapter,
    ParkConfig,
    SimulatedAdapter,
)
from vpp.errors import AdapterError, InputError
from vpp.portfolio import AssetCapability
from vpp.types import Clock, Telemetry


def _implemented_for(adapter_type: str) -> list[str]:
    """The asset types (registry ``type`` strings) an adapter type is implemented for."""
    return [n for n, entry in ASSET_TYPES.items() if adapter_type in entry.spec.adapter_types]


def _find(park: ParkConfig, asset: AssetSpec | str) -> AssetSpec:
    if not isinstance(asset, str):
        return asset
    for candidate in park.assets:
        if candidate.id == asset:
            return candidate
    known = ", ".join(a.id for a in park.assets)
    raise AdapterError(f"park {park.id} has no asset {asset!r}; its assets: {known}")


def create(
    park: ParkConfig,
    asset: AssetSpec | str,
    *,
    clock: Clock,
    reconnect: ReconnectPolicy | None = None,
    http_client: httpx.Client | None = None,
    available_kw: pd.Series | None = None,
    baseline_kw: pd.Series | None = None,
    sessions: pd.DataFrame | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> Adapter:
    """Instantiate (not connect) the adapter named in ``asset``'s park-file entry.

    Simulated devices take their exogenous inputs here: ``available_kw``
    (PV), ``baseline_kw`` (flexible process) and ``sessions`` (EV hub), each
    with a tz-aware UTC index or timestamps; other inputs by name in
    ``inputs`` (``cop`` of a heat pump, ``demand_kw`` of a thermal storage).
    ``http_client`` is injected into HTTP adapters (one is created with the
    configured timeout otherwise).
    Raises :class:`AdapterError` when the combination cannot work.
    """
    spec = _find(park, asset)
    adapter = spec.adapter
    policy = reconnect or ReconnectPolicy()
    where = f"{park.id}/{spec.id}"
    if adapter.type not in spec.adapter_types:  # the loader reports it too, naming the file
        allowed = ", ".join(_implemented_for(adapter.type))
        raise AdapterError(
            f"{where}: adapter {adapter.type!r} is implemented for {allowed} assets, "
            f"not {spec.type!r}; use one of {', '.join(spec.adapter_types)} in the park file"
        )
    issues = list(spec.adapter_issues(park.id, f"assets.{spec.id}"))
    if issues:
        raise AdapterError(f"{where}: {issues[0]}")
    if isinstance(adapter, ModbusSunSpecAdapter):
        battery = cast(BatterySpec, spec)  # checked above: the adapter's asset type
        return ModbusSunSpecDevice(park.id, battery, adapter, clock=clock, reconnect=policy)
    if isinstance(adapter, HttpAdapter):
        return HttpController(
            park.id, spec, adapter, clock=clock, reconnect=policy, client=http_client
        )
    if isinstance(adapter, ModbusAdapter):
        return ModbusDevice(park.id, spec, adapter, clock=clock, reconnect=policy)
    if isinstance(adapter, OcppAdapter):
        hub = cast(EvChargingSpec, spec)
        return OcppHub(park.id, hub, adapter, clock=clock, reconnect=policy)
    assert isinstance(adapter, SimulatedAdapter)
    given: dict[str, Any] = {
        "available_kw": available_kw,
        "baseline_kw": baseline_kw,
        "sessions": sessions,
        **(inputs or {}),
    }
    return _simulated(park, spec, adapter, clock, given)


def _simulated(
    park: ParkConfig,
    spec: AssetSpec,
    adapter: SimulatedAdapter,
    clock: Clock,
    given: Mapping[str, Any],
) -> Adapter:
    where = f"{park.id}/{spec.id}"

    def need(name: str) -> AdapterError:
        return AdapterError(f"{where}: a simulated {spec.type} needs {name}= (its exogenous data)")

    try:
        device = simulated_class(spec)
        for name in device.inputs:
            if given.get(name) is None:
                raise need(name)
        return device(park.id, spec, adapter, clock=clock, **{n: given[n] for n in device.inputs})
    except (TypeError, ValueError) as exc:
        raise AdapterError(f"{where}: {exc}") from exc


class HealthRegistry:
    """The portfolio's view of which assets are available right now.

    Holds the adapters of the enrolled assets; ``read_all()`` refreshes
    every asset's telemetry (which is also what re-evaluates staleness),
    and ``exclude_unavailable`` drops the capabilities of unavailable
    assets so strategies never count on them.
    """

    def __init__(self, adapters: Iterable[Adapter] = ()) -> None:
        self._adapters: dict[tuple[str, str], Adapter] = {}
        for adapter in adapters:
            self.add(adapter)

    def add(self, adapter: Adapter) -> None:
        key = (adapter.park_id, adapter.asset_id)
        if key in self._adapters:
            raise InputError(f"{key[0]}/{key[1]} is registered twice")
        self._adapters[key] = adapter

    def __iter__(self) -> Iterator[Adapter]:
        return iter(self._adapters.values())

    def __len__(self) -> int:
        return len(self._adapters)

    def get(self, park_id: str, asset_id: str) -> Adapter:
        return self._adapters[(park_id, asset_id)]

    def read_all(self) -> list[Telemetry]:
        return [adapter.read() for adapter in self._adapters.values()]

    def status(self) -> dict[tuple[str, str], HealthStatus]:
        return {key: adapter.health() for key, adapter in self._adapters.items()}

    def is_available(self, park_id: str, asset_id: str) -> bool:
        adapter = self._adapters.get((park_id, asset_id))
        return adapter is not None and adapter.health().available

    def unavailable(self) -> dict[tuple[str, str], HealthStatus]:
        return {key: s for key, s in self.status().items() if not s.available}

    def exclude_unavailable(self, capabilities: Iterable[AssetCapability]) -> list[AssetCapability]:
        """Keep only the capabilities of registered, available assets."""
        return [c for c in capabilities if self.is_available(c.park_id, c.asset_id)]

    def close_all(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()
