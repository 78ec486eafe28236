"""The portfolio: what every enrolled asset can do, pooled per park and market.

Plain, typed values only (see docs/architecture.md): adapters report
capabilities, the portfolio aggregates them, strategies read them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpp.config.models import AssetSpec, ParkConfig


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
    """Describe what ``asset`` can do at nameplate (its type's spec says how)."""
    return AssetCapability(
        park_id,
        asset.id,
        asset.type,
        asset.max_export_kw,
        asset.max_import_kw,
        asset.usable_energy_kwh,
        asset.adapter.type,
        asset.describe(),
    )


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
