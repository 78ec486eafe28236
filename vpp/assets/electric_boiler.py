"""``electric_boiler``: an electric (electrode or resistance) boiler, any level up to its rating."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from vpp.assets.base import MULTI_ENERGY_ADAPTERS, AssetBase, SetpointKind


class ElectricBoilerSpec(AssetBase):
    """An electric boiler: heat = efficiency x electric power, at one level up to its rating."""

    type: Literal["electric_boiler"]
    power_kw: float = Field(gt=0, description="Rated electric input [kW]")
    level: str = Field(description="Id of the heat level it supplies (park heat_levels)")
    max_temperature_c: float = Field(
        gt=0, le=600, description="Hottest steam or water it delivers [degC]"
    )
    efficiency: float = Field(0.99, gt=0, le=1, description="Heat out per electricity in")

    adapter_types: ClassVar[tuple[str, ...]] = MULTI_ENERGY_ADAPTERS
    meter_registers: ClassVar[tuple[str, ...]] = ("consumed_kwh",)
    heat_registers: ClassVar[tuple[str, ...]] = ("heat_kwh",)

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return self.power_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "power"

    def heat_outputs(self) -> dict[str, str]:
        return {self.level: "heat_kwh"}

    @property
    def supply_temperature_limit_c(self) -> float:
        return self.max_temperature_c

    def describe(self) -> str:
        return (
            f"{self.power_kw:g} kW_el -> {self.level} (up to {self.max_temperature_c:g} C, "
            f"eff {self.efficiency:g})"
        )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["consumed_kwh"]
