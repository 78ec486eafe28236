"""The asset-type registry: one entry per ``type`` string of a park file.

An asset type brings everything about itself, each part in the layer it
belongs to, one module per type in each layer:

- its **config spec** (fields with unit, default and description), and the
  type's foundation-level behaviour on the spec: capability, metering sign
  and counters, one-line description -- here in ``vpp``;
- its **vectorised constraint builder** and its state from telemetry --
  in ``strategies`` (module named by :attr:`AssetType.model`);
- its **simulated physics** -- in ``adapters`` (module named by
  :attr:`AssetType.physics`).

The layer parts are named by module path and imported on first use, so this
foundation module never imports the layers above it (the import rules in
``docs/architecture.md``); ``tests/test_architecture.py`` checks every entry
resolves. Adding an asset type is its modules, its tests and one line in
:data:`ASSET_TYPES`. Nothing outside this registry dispatches on the type.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from vpp.assets.base import AssetBase
from vpp.assets.battery import BatterySpec
from vpp.assets.ev_charging import EvChargingSpec
from vpp.assets.flexible_process import FlexibleProcessSpec
from vpp.assets.pv import PvSpec

if TYPE_CHECKING:
    from collections.abc import Iterable

S = TypeVar("S", bound=AssetBase)


@dataclass(frozen=True)
class AssetType:
    """Everything about one asset type, by layer."""

    name: str
    """The ``type`` string in park files."""
    spec: type[AssetBase]
    """The config spec class (``vpp`` layer)."""
    model: str
    """Module of the vectorised constraint builder and state (``strategies`` layer)."""
    physics: str
    """Module of the simulated physics (``adapters`` layer)."""

    def model_module(self) -> ModuleType:
        return importlib.import_module(self.model)

    def physics_module(self) -> ModuleType:
        return importlib.import_module(self.physics)


def _registry(*entries: AssetType) -> dict[str, AssetType]:
    return {entry.name: entry for entry in entries}


ASSET_TYPES: dict[str, AssetType] = _registry(
    AssetType("battery", BatterySpec, "strategies.battery", "adapters.simulated.battery"),
    AssetType("ev_charging", EvChargingSpec, "strategies.ev", "adapters.simulated.ev"),
    AssetType(
        "flexible_process", FlexibleProcessSpec, "strategies.process", "adapters.simulated.process"
    ),
    AssetType("pv", PvSpec, "strategies.pv", "adapters.simulated.pv"),
)


def asset_type(name: str) -> AssetType:
    """The registry entry of a ``type`` string (a ``KeyError`` names the known types)."""
    try:
        return ASSET_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown asset type {name!r}; known: {', '.join(ASSET_TYPES)}") from None


def assets_of_type(assets: Iterable[AssetBase], spec: type[S]) -> list[S]:
    """The assets whose spec is ``spec`` (a registry entry's class), in their order."""
    return [asset for asset in assets if isinstance(asset, spec)]


__all__ = [
    "ASSET_TYPES",
    "AssetBase",
    "AssetType",
    "BatterySpec",
    "EvChargingSpec",
    "FlexibleProcessSpec",
    "PvSpec",
    "asset_type",
    "assets_of_type",
]
