"""The portfolio: what every enrolled asset can do, pooled per park and market.

Plain, typed values only (see docs/architecture.md): adapters report
capabilities, the portfolio aggregates them, strategies read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpp.config.models import (
    AssetSpec,
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    ParkConfig,
    PvSpec,
)


@dataclass(frozen=True)
class AssetCapability:
    """Nameplate flexibility of one asset, in the sign convention of :mod:`vpp.units`.

    ``max_export_kw`` is the most the asset can push into the grid and
    ``max_import_kw`` the most it can draw (both >= 0); ``energy_kwh`` is its
    storage or shiftable energy where that applies.
    """

    park_id: str
    asset_id: str
    type: str
    max_export_kw: float
    max_import_kw: float
    energy_kwh: float | None
    adapter: str
    summary: str


def capability(park_id: str, asset: AssetSpec) -> AssetCapability:
    """Describe what ``asset`` can do at nameplate."""
    if isinstance(asset, BatterySpec):
        usable = asset.energy_kwh * (asset.soc_max - asset.soc_min)
        return AssetCapability(
            park_id,
            asset.id,
            asset.type,
            asset.discharge_limit_kw,
            asset.charge_limit_kw,
            usable,
            asset.adapter.type,
            f"{asset.power_kw:g} kW / {asset.energy_kwh:g} kWh, "
            f"SoC {asset.soc_min:g}-{asset.soc_max:g}",
        )
    if isinstance(asset, EvChargingSpec):
        return AssetCapability(
            park_id,
            asset.id,
            asset.type,
            0.0,
            asset.hub_limit_kw,
            None,
            asset.adapter.type,
            f"{asset.chargers} x {asset.charger_power_kw:g} kW, hub {asset.hub_limit_kw:g} kW",
        )
    if isinstance(asset, FlexibleProcessSpec):
        return AssetCapability(
            park_id,
            asset.id,
            asset.type,
            0.0,
            asset.max_power_kw,
            None,
            asset.adapter.type,
            f"-{asset.shift_down_kw:g}/+{asset.shift_up_kw:g} kW around baseline, "
            f"recover within {asset.recovery_window_h:g} h",
        )
    if isinstance(asset, PvSpec):
        ac = asset.inverter_kw or asset.capacity_kwp
        return AssetCapability(
            park_id,
            asset.id,
            asset.type,
            ac,
            0.0,
            None,
            asset.adapter.type,
            f"{asset.capacity_kwp:g} kWp{', curtailable' if asset.curtailable else ''}",
        )
    raise TypeError(f"unknown asset spec {type(asset).__name__}")


@dataclass(frozen=True)
class ParkCapability:
    park_id: str
    market: str
    assets: tuple[AssetCapability, ...]
    import_limit_kw: float
    export_limit_kw: float

    @property
    def max_export_kw(self) -> float:
        """Most the park can inject: its assets' sum, capped by the grid connection."""
        return min(self.export_limit_kw, sum(a.max_export_kw for a in self.assets))

    @property
    def max_import_kw(self) -> float:
        return min(self.import_limit_kw, sum(a.max_import_kw for a in self.assets))


def park_capability(park: ParkConfig) -> ParkCapability:
    return ParkCapability(
        park.id,
        park.market,
        tuple(capability(park.id, a) for a in park.assets),
        park.grid.import_limit_kw,
        park.grid.export_limit_kw,
    )
