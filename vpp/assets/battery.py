"""``battery``: a stationary battery, its spec and its type behaviour."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field

from vpp.assets.base import AssetBase, SetpointKind, StateKind, soc_issues
from vpp.errors import ConfigIssue


class BatterySpec(AssetBase):
    """A stationary battery."""

    type: Literal["battery"]
    power_kw: float = Field(gt=0, description="Rated charge and discharge power [kW]")
    charge_power_kw: float | None = Field(
        None, gt=0, description="Charge limit if not power_kw [kW]"
    )
    discharge_power_kw: float | None = Field(
        None, gt=0, description="Discharge limit if not power_kw [kW]"
    )
    energy_kwh: float = Field(gt=0, description="Usable nameplate energy [kWh]")
    charge_efficiency: float = Field(0.95, gt=0, le=1, description="Charging efficiency (0, 1]")
    discharge_efficiency: float = Field(0.95, gt=0, le=1, description="Discharge efficiency (0, 1]")
    soc_min: float = Field(0.0, ge=0, le=1, description="Lowest state of charge [fraction]")
    soc_max: float = Field(1.0, ge=0, le=1, description="Highest state of charge [fraction]")
    soc_initial: float = Field(0.5, ge=0, le=1, description="State of charge at start [fraction]")
    soc_final: Literal["initial", "free", "valued"] = Field(
        "initial",
        description="End-of-horizon policy: back to at least soc_initial, free, or stored energy "
        "valued at terminal_value_per_mwh",
    )
    terminal_value_per_mwh: float = Field(
        0.0, ge=0, description="Value of energy left at the horizon end [currency/MWh]"
    )
    degradation_cost_per_mwh: float = Field(
        0.0, ge=0, description="Wear cost per MWh of throughput (charge + discharge) [currency/MWh]"
    )

    adapter_types: ClassVar[tuple[str, ...]] = ("simulated", "modbus-sunspec")
    meter_registers: ClassVar[tuple[str, ...]] = ("charged_kwh", "discharged_kwh")
    throughput_registers: ClassVar[tuple[str, ...]] = ("charged_kwh", "discharged_kwh")
    state_kind: ClassVar[StateKind | None] = "soc"

    @property
    def charge_limit_kw(self) -> float:
        return self.charge_power_kw or self.power_kw

    @property
    def discharge_limit_kw(self) -> float:
        return self.discharge_power_kw or self.power_kw

    @property
    def max_export_kw(self) -> float:
        return self.discharge_limit_kw

    @property
    def max_import_kw(self) -> float:
        return self.charge_limit_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "power"

    @property
    def usable_energy_kwh(self) -> float:
        return self.energy_kwh * (self.soc_max - self.soc_min)

    @property
    def soc_capacity_kwh(self) -> float:
        return self.energy_kwh

    @property
    def soc_limits(self) -> tuple[float, float]:
        return (self.soc_min, self.soc_max)

    @property
    def wear_cost_per_mwh(self) -> float:
        return self.degradation_cost_per_mwh

    def without_wear(self) -> BatterySpec:
        return self.model_copy(update={"degradation_cost_per_mwh": 0.0})

    def describe(self) -> str:
        return (
            f"{self.power_kw:g} kW / {self.energy_kwh:g} kWh, "
            f"SoC {self.soc_min:g}-{self.soc_max:g}"
        )

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        return soc_issues(file, where, self.soc_min, self.soc_max, self.soc_initial)

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return registers["discharged_kwh"] - registers["charged_kwh"]
