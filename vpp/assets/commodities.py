"""Heat levels and hydrogen: the commodities a park converts electricity into.

A park's heat system is a set of named **temperature levels**
(:class:`HeatLevel`, e.g. ``hot_water_55c``, ``steam_300c``), each a
balance node: in every interval the heat supplied to it by the converters
(heat pumps, electric boilers, electrolyser heat recovery) plus what its
thermal storage discharges equals its demand plus what the storage charges
(storage losses are inside the storage). Hydrogen is one node per park
(:data:`HYDROGEN`): electrolysers produce into it, the hydrogen storage
holds it and its offtake takes from it.

Units: heat in kW_th / kWh_th (the names say ``kw``/``kwh``, the level says
it is heat), hydrogen in kg and kg/h.

Heat demand of a level comes from real data, summed over what the level
declares: a constant process demand (``demand_kw``, e.g. recovery steam that
runs around the clock), a measured profile file (``demand_profile``) and/or
space heating derived from an hourly weather file through demandlib's BDEW
standard load profiles (``space_heating``; Hellwig's sigmoid heat-demand
curves of the German gas industry, from daily mean temperature, weekday and
building type -- the maintained implementation of the standard used by
German utilities; see ``docs/multi_energy.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from vpp.assets.base import AssetBase, FileSource, LoadProfileSource
from vpp.errors import ConfigIssue
from vpp.spec import Id, Spec

#: The hydrogen balance node of a park (one per park).
HYDROGEN = "hydrogen"

#: Absolute zero offset [K].
KELVIN = 273.15

#: Lifts [K] the Staffell regressions are evaluated within (fit range 15-60 K, falling to 80 K).
STAFFELL_LIFT_K = (15.0, 80.0)

#: Higher heating value of hydrogen [kWh/kg]: no electrolyser can need less per kg.
H2_HHV_KWH_PER_KG = 39.4


class WeatherSource(FileSource):
    """An hourly weather file with dry-bulb air temperature (TMY3)."""

    format: Literal["tmy3"] = "tmy3"
    align: Literal["weekday", "day-of-year"] = "day-of-year"


class SpaceHeating(Spec):
    """Space heating from outdoor temperature through demandlib's BDEW heat profiles."""

    weather: WeatherSource = Field(description="Hourly weather file with the air temperature")
    annual_kwh: float = Field(gt=0, description="Space and hot-water heat per year [kWh_th]")
    building_type: Literal[
        "GHD", "EFH", "MFH", "GKO", "GHA", "GMK", "GBD", "GBH", "GWA", "GGA", "GBA", "GGB", "GPD",
        "GMF",
    ] = Field(
        "GHD",
        description="BDEW profile: GHD commerce/industry aggregate (default), EFH/MFH homes, "
        "G** trade sectors",
    )
    building_class: int = Field(
        0, ge=0, le=11, description="BDEW building class (age/insulation) for EFH/MFH; 0 else"
    )
    wind_class: Literal[0, 1] = Field(0, description="BDEW wind class: 0 sheltered, 1 windy")


class HeatLevel(Spec):
    """A temperature level of the park's heat system: a balance node with its demand."""

    id: Id = Field(description="Level name, e.g. hot_water_55c or steam_300c")
    temperature_c: float = Field(
        gt=-50, le=1000, description="Supply temperature the level needs [degC]"
    )
    demand_kw: float = Field(
        0.0, ge=0, description="Constant process demand, around the clock [kW_th]"
    )
    demand_profile: LoadProfileSource | None = Field(
        None, description="Measured heat demand profile (energy per interval, like a load file)"
    )
    space_heating: SpaceHeating | None = Field(
        None, description="Space heating from outdoor temperature (demandlib BDEW)"
    )

    @property
    def has_demand(self) -> bool:
        return self.demand_kw > 0 or self.demand_profile is not None or self.space_heating is not None


class HeatPumpCop(Spec):
    """How a heat pump's COP follows its temperature lift (sink minus source)."""

    model: Literal["carnot", "staffell-air", "staffell-ground", "curve"] = Field(
        "carnot",
        description="carnot: efficiency x T_sink / lift; staffell-air/-ground: Staffell et al. "
        "2012 regressions (air 6.81 - 0.121 dT + 0.00063 dT^2); curve: manufacturer points",
    )
    carnot_efficiency: float = Field(
        0.45, gt=0, le=1, description="Fraction of the Carnot COP reached (carnot model)"
    )
    lift_k: list[float] = Field(
        default_factory=list, description="Curve: temperature lifts [K], increasing"
    )
    cop: list[float] = Field(default_factory=list, description="Curve: COP at each lift")
    cop_max: float = Field(8.0, gt=1, le=30, description="Upper bound of the COP (small lifts)")

    @model_validator(mode="after")
    def _curve(self) -> HeatPumpCop:
        if self.model == "curve":
            if len(self.lift_k) < 2 or len(self.lift_k) != len(self.cop):
                raise ValueError("curve needs lift_k and cop of the same length >= 2")
            if any(b <= a for a, b in zip(self.lift_k, self.lift_k[1:], strict=False)):
                raise ValueError("curve lift_k must be strictly increasing")
            if any(c < 1 for c in self.cop):
                raise ValueError("curve cop values must be >= 1")
        return self


__all__ = [
    "H2_HHV_KWH_PER_KG",
    "HYDROGEN",
    "KELVIN",
    "HeatLevel",
    "HeatPumpCop",
    "SpaceHeating",
    "WeatherSource",
    "cop_from_lift",
    "heat_system_issues",
]


def cop_from_lift(
    cop: HeatPumpCop, sink_temperature_c: float, source_temperature_c: np.ndarray
) -> np.ndarray:
    """COP per interval for a sink at ``sink_temperature_c`` and the given source temperatures.

    ``lift = sink - source`` [K]. ``carnot``: ``efficiency x (sink + 273.15) / lift``;
    ``staffell-air``: ``6.81 - 0.121 lift + 0.00063 lift^2`` and ``staffell-ground``:
    ``8.77 - 0.150 lift + 0.000734 lift^2`` (Staffell et al. 2012, Energy Environ. Sci.
    5, 9291, fitted for lifts of 15-60 K; held at the ends of :data:`STAFFELL_LIFT_K`
    outside it, where the quadratics would turn up again); ``curve``: the manufacturer points,
    linear between them and flat beyond. Always within ``[1, cop_max]``: a heat
    pump is never worse than a resistance heater (it would be run as one).
    """
    source = np.asarray(source_temperature_c, dtype=float)
    lift = np.maximum(sink_temperature_c - source, 1.0)
    if cop.model == "carnot":
        value = cop.carnot_efficiency * (sink_temperature_c + KELVIN) / lift
    elif cop.model == "staffell-air":
        fit = np.clip(lift, *STAFFELL_LIFT_K)
        value = 6.81 - 0.121 * fit + 0.00063 * fit**2
    elif cop.model == "staffell-ground":
        fit = np.clip(lift, *STAFFELL_LIFT_K)
        value = 8.77 - 0.150 * fit + 0.000734 * fit**2
    else:
        value = np.interp(lift, np.asarray(cop.lift_k), np.asarray(cop.cop))
    return np.clip(value, 1.0, cop.cop_max)


def heat_system_issues(
    file: str, assets: Sequence[AssetBase], heat_levels: Sequence[HeatLevel]
) -> Iterator[ConfigIssue]:
    """Cross-checks of a park's heat and hydrogen system (levels, suppliers, stores)."""
    levels: dict[str, int] = {}
    for i, level in enumerate(heat_levels):
        if level.id in levels:
            yield ConfigIssue(
                file, f"heat_levels[{i}].id", level.id,
                f"duplicate heat level (also heat_levels[{levels[level.id]}])",
            )
        levels.setdefault(level.id, i)
    known = ", ".join(levels) or "none declared"
    supplied: set[str] = set()
    stores: dict[str, int] = {}
    hydrogen_producers = 0
    for i, asset in enumerate(assets):
        where = f"assets[{i}]"
        nodes = [(node, "level") for node in asset.heat_outputs()]
        if asset.storage_node is not None and asset.storage_node != HYDROGEN:
            nodes.append((asset.storage_node, "level"))
        for node, _ in nodes:
            field = _level_field(asset, node)
            found = next((lv for lv in heat_levels if lv.id == node), None)
            if found is None:
                yield ConfigIssue(
                    file, f"{where}.{field}", node, f"no such heat level (park heat_levels: {known})"
                )
                continue
            limit = asset.supply_temperature_limit_c
            if limit is not None and found.temperature_c > limit:
                yield ConfigIssue(
                    file, f"{where}.{field}", node,
                    f"level is {found.temperature_c:g} C, above this asset's limit of {limit:g} C",
                )
            source = getattr(asset, "source_temperature_c", None)
            if source is not None and source >= found.temperature_c:
                yield ConfigIssue(
                    file, f"{where}.source_temperature_c", source,
                    f"must be below the level's {found.temperature_c:g} C (a heat pump lifts heat)",
                )
        supplied.update(asset.heat_outputs())
        hydrogen_producers += int(asset.produces_hydrogen)
        store = asset.storage_node
        if store is not None:
            if store in stores:
                yield ConfigIssue(
                    file, f"{where}.id", asset.id,
                    f"a second store on {store} (also assets[{stores[store]}]); one per node",
                )
            stores.setdefault(store, i)
    for i, level in enumerate(heat_levels):
        if level.has_demand and level.id not in supplied:
            yield ConfigIssue(
                file, f"heat_levels[{i}].id", level.id,
                "has heat demand but no heat pump, boiler or heat recovery supplies it",
            )
    if hydrogen_producers and HYDROGEN not in stores:
        yield ConfigIssue(
            file, "assets", "electrolyser",
            "an electrolyser needs a hydrogen_storage in the park (its hydrogen goes there)",
        )
    if HYDROGEN in stores and not hydrogen_producers:
        yield ConfigIssue(
            file, f"assets[{stores[HYDROGEN]}].type", "hydrogen_storage",
            "a hydrogen storage needs an electrolyser in the park to fill it",
        )


def _level_field(asset: AssetBase, node: str) -> str:
    """The field of ``asset`` that names the level ``node`` (for error paths)."""
    for name in ("level", "heat_recovery_level"):
        if getattr(asset, name, None) == node:
            return name
    return "level"
