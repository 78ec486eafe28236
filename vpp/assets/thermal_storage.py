"""``thermal_storage``: a hot-water tank, steam accumulator or molten-salt store on one level."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from vpp.assets.base import MULTI_ENERGY_ADAPTERS, AssetBase, SetpointKind, StateKind, soc_issues
from vpp.errors import ConfigIssue


class ThermalStorageSpec(AssetBase):
    """Heat storage on one level: it takes what the level's supply exceeds its demand by.

    Passive at the grid (no electricity, no setpoint): the storage floats on
    its level's balance, charged by surplus heat and discharged into a
    deficit within its limits, as a buffer between converters and
    consumers does. Its state of charge is read from telemetry. Standing
    losses: a fraction of the stored heat per hour (large hot-water tanks
    ~0.01 %/h, small tanks ~2 %/h).
    """

    type: Literal["thermal_storage"]
    level: str = Field(description="Id of the heat level it buffers (park heat_levels)")
    capacity_kwh: float = Field(gt=0, description="Heat held between empty and full [kWh_th]")
    charge_kw: float = Field(gt=0, description="Most heat it takes in [kW_th]")
    discharge_kw: float = Field(gt=0, description="Most heat it gives out [kW_th]")
    standing_loss_pct_per_h: float = Field(
        0.5, ge=0, le=10, description="Stored heat lost per hour [% of content]"
    )
    max_temperature_c: float | None = Field(
        None, gt=0, le=1000, description="Hottest level the medium holds [degC]; none: any"
    )
    soc_min: float = Field(0.0, ge=0, le=1, description="Lowest state of charge [fraction]")
    soc_max: float = Field(1.0, ge=0, le=1, description="Highest state of charge [fraction]")
    soc_initial: float = Field(0.5, ge=0, le=1, description="State of charge at start [fraction]")
    soc_final: Literal["initial", "free"] = Field(
        "initial", description="End of horizon: back to at least soc_initial, or free"
    )

    adapter_types: ClassVar[tuple[str, ...]] = MULTI_ENERGY_ADAPTERS
    state_kind: ClassVar[StateKind | None] = "soc"
    storage_registers: ClassVar[tuple[str, str]] = ("charged_kwh", "discharged_kwh")

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return 0.0

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "none"

    @property
    def soc_capacity_kwh(self) -> float:
        return self.capacity_kwh

    @property
    def soc_limits(self) -> tuple[float, float]:
        return (self.soc_min, self.soc_max)

    @property
    def loss_per_h(self) -> float:
        """Fraction of the stored heat lost per hour."""
        return self.standing_loss_pct_per_h / 100.0

    @property
    def storage_node(self) -> str:
        return self.level

    @property
    def supply_temperature_limit_c(self) -> float | None:
        return self.max_temperature_c

    def describe(self) -> str:
        return (
            f"{self.capacity_kwh:g} kWh_th on {self.level}, +{self.charge_kw:g}/-"
            f"{self.discharge_kw:g} kW_th, loss {self.standing_loss_pct_per_h:g} %/h"
        )

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        return soc_issues(file, where, self.soc_min, self.soc_max, self.soc_initial)

    def simulation_inputs(
        self, config_dir: Path, index: pd.DatetimeIndex, timezone: str,
        start: dt.datetime, end: dt.datetime, park: Any = None,
    ) -> dict[str, Any]:
        """The realized heat demand of its level [kW_th] (the storage floats on the balance)."""
        from vpp.profiles import heat_demand_kw  # profiles reads config: imported when used

        level = None if park is None else park.heat_level(self.level)
        if level is None:
            raise KeyError(f"thermal storage {self.id}: its park has no heat level {self.level!r}")
        demand = heat_demand_kw(level, config_dir, index, timezone)
        return {"demand_kw": pd.Series(demand, index=index, name=f"{self.level}_demand_kw")}
