"""The asset-type registry: one entry per ``type`` string of a park file.

An asset type brings everything about itself, each part in the layer it
belongs to, one module per type in each layer:

- its **config spec** (fields with unit, default and description) and the
  type's foundation-level behaviour on the spec -- here in ``vpp``, one
  module per type (:mod:`vpp.assets.battery`, ``ev_charging``,
  ``flexible_process``, ``pv``, ``heat_pump``, ``electric_boiler``,
  ``thermal_storage``, ``electrolyser``, ``hydrogen_storage``; the heat levels
  and hydrogen node they share in :mod:`vpp.assets.commodities`) on
  :class:`~vpp.assets.base.AssetBase`:
  nameplate capability (``max_export_kw``, ``max_import_kw``,
  ``usable_energy_kwh``), the one-line ``describe()`` of ``vpp parks`` and
  ``vpp status``, ``config_issues()`` (cross-field checks of the loader),
  metering (``meter_registers``, ``exported_kwh()`` with its sign,
  ``throughput_registers``, ``wear_cost_per_mwh``), setpoints
  (``setpoint_limits_kw``, ``setpoint_kind``), state of charge
  (``soc_capacity_kwh``, ``soc_capacity_kg``, ``soc_limits``), the kind of
  state the operator reads from telemetry (``state_kind``), what it converts
  or stores (``heat_outputs()``, ``produces_hydrogen``, ``storage_node``, the
  heat/hydrogen/storage registers) and the exogenous inputs of its
  simulation (``simulation_inputs()``);
- its **vectorised constraint builder** and its state from telemetry --
  in ``strategies`` (module named by :attr:`AssetType.model`);
- its **simulated physics** -- in ``adapters`` (module named by
  :attr:`AssetType.physics`, exposing its device class as ``DEVICE``).

The layer parts are named by module path and imported on first use, so this
foundation module never imports the layers above it (the import rules in
``docs/architecture.md``); ``tests/test_asset_registry.py`` checks every entry
resolves. Adding an asset type is its three modules, its tests, one line in
:data:`ASSET_TYPES` and its member in :data:`AssetSpec` for the type checker.
Nothing outside this registry dispatches on the type (:func:`assets_of_type`
picks the assets of one spec class where a caller needs them typed).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, TypeVar, Union

from pydantic import Field

from vpp.assets.base import AssetBase
from vpp.assets.battery import BatterySpec
from vpp.assets.electric_boiler import ElectricBoilerSpec
from vpp.assets.electrolyser import ElectrolyserSpec
from vpp.assets.ev_charging import EvChargingSpec
from vpp.assets.flexible_process import FlexibleProcessSpec
from vpp.assets.heat_pump import HeatPumpSpec
from vpp.assets.hydrogen_storage import HydrogenStorageSpec
from vpp.assets.pv import PvSpec
from vpp.assets.thermal_storage import ThermalStorageSpec

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
    AssetType("heat_pump", HeatPumpSpec, "strategies.heat_pump", "adapters.simulated.heat_pump"),
    AssetType(
        "electric_boiler", ElectricBoilerSpec, "strategies.boiler", "adapters.simulated.boiler"
    ),
    AssetType(
        "thermal_storage", ThermalStorageSpec, "strategies.thermal_storage",
        "adapters.simulated.thermal_storage",
    ),
    AssetType(
        "electrolyser", ElectrolyserSpec, "strategies.electrolyser",
        "adapters.simulated.electrolyser",
    ),
    AssetType(
        "hydrogen_storage", HydrogenStorageSpec, "strategies.hydrogen_storage",
        "adapters.simulated.hydrogen_storage",
    ),
)


if TYPE_CHECKING:  # the type checker needs the members spelled out: one per registry entry
    AssetSpec = Annotated[
        BatterySpec | EvChargingSpec | FlexibleProcessSpec | PvSpec | HeatPumpSpec
        | ElectricBoilerSpec | ThermalStorageSpec | ElectrolyserSpec | HydrogenStorageSpec,
        Field(discriminator="type"),
    ]
else:
    AssetSpec = Annotated[
        Union[tuple(entry.spec for entry in ASSET_TYPES.values())],  # noqa: UP007 - built at run time
        Field(discriminator="type"),
    ]
"""Any asset spec of a park file, told apart by its ``type`` (a pydantic discriminated union)."""


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
    "AssetSpec",
    "AssetType",
    "BatterySpec",
    "ElectricBoilerSpec",
    "ElectrolyserSpec",
    "EvChargingSpec",
    "FlexibleProcessSpec",
    "HeatPumpSpec",
    "HydrogenStorageSpec",
    "PvSpec",
    "ThermalStorageSpec",
    "asset_type",
    "assets_of_type",
]
