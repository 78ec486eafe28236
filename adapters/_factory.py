"""``create``: the adapter a park file names for an asset, and the portfolio health registry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import httpx
import pandas as pd

from adapters._http import HttpProcessController
from adapters._modbus import ModbusSunSpecDevice
from adapters._ocpp import OcppHub
from adapters._simulated import SimulatedBattery, SimulatedEvHub, SimulatedProcess, SimulatedPv
from adapters.base import Adapter, HealthStatus, ReconnectPolicy
from vpp.config.models import (
    AssetSpec,
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    HttpAdapter,
    ModbusSunSpecAdapter,
    OcppAdapter,
    ParkConfig,
    PvSpec,
    SimulatedAdapter,
)
from vpp.errors import AdapterError
from vpp.portfolio import AssetCapability
from vpp.types import Clock, Telemetry

_PROTOCOL_ASSETS: dict[str, tuple[type, str]] = {
    "modbus-sunspec": (BatterySpec, "battery"),
    "http": (FlexibleProcessSpec, "flexible_process"),
    "ocpp": (EvChargingSpec, "ev_charging"),
}


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
) -> Adapter:
    """Instantiate (not connect) the adapter named in ``asset``'s park-file entry.

    Simulated devices take their exogenous inputs here: ``available_kw``
    (PV), ``baseline_kw`` (flexible process) and ``sessions`` (EV hub), each
    with a tz-aware UTC index or timestamps. ``http_client`` is injected into
    HTTP adapters (one is created with the configured timeout otherwise).
    Raises :class:`AdapterError` when the combination cannot work.
    """
    spec = _find(park, asset)
    adapter = spec.adapter
    policy = reconnect or ReconnectPolicy()
    where = f"{park.id}/{spec.id}"
    allowed = _PROTOCOL_ASSETS.get(adapter.type)
    if allowed is not None and not isinstance(spec, allowed[0]):
        raise AdapterError(
            f"{where}: adapter {adapter.type!r} is implemented for {allowed[1]} assets, "
            f"not {spec.type!r}; use another adapter type in the park file"
        )
    if isinstance(adapter, ModbusSunSpecAdapter):
        assert isinstance(spec, BatterySpec)
        return ModbusSunSpecDevice(park.id, spec, adapter, clock=clock, reconnect=policy)
    if isinstance(adapter, HttpAdapter):
        assert isinstance(spec, FlexibleProcessSpec)
        return HttpProcessController(
            park.id, spec, adapter, clock=clock, reconnect=policy, client=http_client
        )
    if isinstance(adapter, OcppAdapter):
        assert isinstance(spec, EvChargingSpec)
        return OcppHub(park.id, spec, adapter, clock=clock, reconnect=policy)
    assert isinstance(adapter, SimulatedAdapter)
    return _simulated(park, spec, adapter, clock, available_kw, baseline_kw, sessions)


def _simulated(
    park: ParkConfig,
    spec: AssetSpec,
    adapter: SimulatedAdapter,
    clock: Clock,
    available_kw: pd.Series | None,
    baseline_kw: pd.Series | None,
    sessions: pd.DataFrame | None,
) -> Adapter:
    where = f"{park.id}/{spec.id}"

    def need(name: str) -> AdapterError:
        return AdapterError(f"{where}: a simulated {spec.type} needs {name}= (its exogenous data)")

    try:
        if isinstance(spec, BatterySpec):
            return SimulatedBattery(park.id, spec, adapter, clock=clock)
        if isinstance(spec, PvSpec):
            if available_kw is None:
                raise need("available_kw")
            return SimulatedPv(park.id, spec, adapter, clock=clock, available_kw=available_kw)
        if isinstance(spec, FlexibleProcessSpec):
            if baseline_kw is None:
                raise need("baseline_kw")
            return SimulatedProcess(park.id, spec, adapter, clock=clock, baseline_kw=baseline_kw)
        if sessions is None:
            raise need("sessions")
        return SimulatedEvHub(park.id, spec, adapter, clock=clock, sessions=sessions)
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
            raise ValueError(f"{key[0]}/{key[1]} is registered twice")
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
