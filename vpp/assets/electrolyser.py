"""``electrolyser``: electricity to hydrogen, with a minimum load and stand-by power."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from vpp.assets.base import MULTI_ENERGY_ADAPTERS, AssetBase, SetpointKind
from vpp.assets.commodities import H2_HHV_KWH_PER_KG
from vpp.errors import ConfigIssue


class ElectrolyserSpec(AssetBase):
    """A PEM, alkaline or solid-oxide electrolyser stack with its balance of plant.

    Hydrogen produced ``= power x dt / kwh_per_kg`` (the system figure at
    rated load, 50-83 kWh/kg PEM, 50-78 alkaline). Above zero minimum load
    (PEM ~5 %, alkaline ~15 % of rated) running is an on/off decision: off
    (drawing ``standby_kw`` to stay warm) or between the minimum and rated
    power, never in between -- a MILP through HiGHS; at zero minimum load a
    plain LP. ``heat_recovery_fraction`` of the electricity comes back as
    low-temperature heat into ``heat_recovery_level`` (at most
    ``heat_recovery_temperature_c``).
    """

    type: Literal["electrolyser"]
    technology: Literal["pem", "alkaline", "soec"] = "pem"
    power_kw: float = Field(gt=0, description="Rated electric input of the stack [kW]")
    kwh_per_kg: float = Field(
        gt=H2_HHV_KWH_PER_KG, le=150, description="System consumption at rated load [kWh/kg H2]"
    )
    min_load_fraction: float = Field(
        0.1, ge=0, lt=1, description="Lowest load when running [fraction of power_kw]"
    )
    standby_kw: float = Field(0.0, ge=0, description="Drawn while off (hot stand-by) [kW]")
    ramp_limit_kw_per_min: float | None = Field(
        None, gt=0, description="Largest change of power per minute; leave out for none [kW/min]"
    )
    heat_recovery_fraction: float = Field(
        0.0, ge=0, le=0.5, description="Electricity recovered as usable heat [fraction]"
    )
    heat_recovery_level: str | None = Field(
        None, description="Heat level the recovered heat goes to (park heat_levels)"
    )
    heat_recovery_temperature_c: float = Field(
        60.0, gt=0, le=900, description="Temperature the recovered heat is available at [degC]"
    )

    adapter_types: ClassVar[tuple[str, ...]] = MULTI_ENERGY_ADAPTERS
    meter_registers: ClassVar[tuple[str, ...]] = ("consumed_kwh",)
    heat_registers: ClassVar[tuple[str, ...]] = ("heat_kwh",)
    hydrogen_registers: ClassVar[tuple[str, ...]] = ("hydrogen_kg",)

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return self.power_kw + self.standby_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "power"

    @property
    def min_power_kw(self) -> float:
        return self.min_load_fraction * self.power_kw

    @property
    def on_off(self) -> bool:
        """Running is an on/off decision (a MILP): a minimum load above zero."""
        return self.min_load_fraction > 0

    def heat_outputs(self) -> dict[str, str]:
        if self.heat_recovery_level is None or self.heat_recovery_fraction == 0:
            return {}
        return {self.heat_recovery_level: "heat_kwh"}

    @property
    def supply_temperature_limit_c(self) -> float:
        return self.heat_recovery_temperature_c

    def describe(self) -> str:
        return (
            f"{self.power_kw:g} kW {self.technology}, {self.kwh_per_kg:g} kWh/kg, "
            f"min {self.min_load_fraction:.0%}"
        )

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        if self.heat_recovery_fraction > 0 and self.heat_recovery_level is None:
            yield ConfigIssue(
                file, f"{where}.heat_recovery_level", None,
                "heat_recovery_fraction > 0 needs the level the heat goes to",
            )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["consumed_kwh"]
