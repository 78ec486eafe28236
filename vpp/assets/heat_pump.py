"""``heat_pump``: electricity to heat at one temperature level, COP from the temperature lift."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field, model_validator

from vpp.assets.base import MULTI_ENERGY_ADAPTERS, AssetBase, SetpointKind
from vpp.assets.commodities import HeatPumpCop, WeatherSource


class HeatPumpSpec(AssetBase):
    """A heat pump serving one heat level; its COP follows source and sink temperature.

    The heat delivered is ``COP[t] x electric power`` with the sink at the
    level's temperature and the source either fixed (waste heat, ground:
    ``source_temperature_c``) or the air temperature of a weather file
    (``source_weather``). It can never serve a level hotter than
    ``max_sink_temperature_c`` (a config error).
    """

    type: Literal["heat_pump"]
    power_kw: float = Field(gt=0, description="Rated electric input [kW]")
    level: str = Field(description="Id of the heat level it supplies (park heat_levels)")
    max_sink_temperature_c: float = Field(
        gt=0, le=250, description="Hottest supply temperature it reaches [degC]"
    )
    source_temperature_c: float | None = Field(
        None, ge=-40, le=200, description="Fixed source temperature (waste heat, ground) [degC]"
    )
    source_weather: WeatherSource | None = Field(
        None, description="Air source: weather file whose air temperature is the source"
    )
    cop: HeatPumpCop = Field(default_factory=HeatPumpCop, description="COP against the lift")

    adapter_types: ClassVar[tuple[str, ...]] = MULTI_ENERGY_ADAPTERS
    meter_registers: ClassVar[tuple[str, ...]] = ("consumed_kwh",)
    heat_registers: ClassVar[tuple[str, ...]] = ("heat_kwh",)

    @model_validator(mode="after")
    def _one_source(self) -> HeatPumpSpec:
        if (self.source_temperature_c is None) == (self.source_weather is None):
            raise ValueError("give exactly one of source_temperature_c or source_weather")
        return self

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
        """Heat level -> register of the heat it delivers there."""
        return {self.level: "heat_kwh"}

    @property
    def supply_temperature_limit_c(self) -> float:
        return self.max_sink_temperature_c

    def describe(self) -> str:
        source = (
            f"source {self.source_temperature_c:g} C" if self.source_temperature_c is not None
            else "air source"
        )
        return f"{self.power_kw:g} kW_el -> {self.level} ({source}, COP {self.cop.model})"

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["consumed_kwh"]

    def simulation_inputs(
        self, config_dir: Path, index: pd.DatetimeIndex, timezone: str,
        start: dt.datetime, end: dt.datetime, park: Any = None,
    ) -> dict[str, Any]:
        from vpp.profiles import heat_pump_cop  # profiles reads config: imported when used

        level = None if park is None else park.heat_level(self.level)
        if level is None:
            raise KeyError(f"heat pump {self.id}: its park has no heat level {self.level!r}")
        cop = heat_pump_cop(self, level.temperature_c, config_dir, index, timezone)
        return {"cop": pd.Series(cop, index=index, name=f"{self.id}_cop")}
