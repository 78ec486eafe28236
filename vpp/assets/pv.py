"""``pv``: a PV plant, its spec and its type behaviour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from vpp.assets.base import AssetBase, PvProfileSource, SetpointKind
from vpp.errors import ConfigIssue


class PvSpec(AssetBase):
    """A PV plant; curtailable if its inverters accept a limit."""

    type: Literal["pv"]
    capacity_kwp: float = Field(gt=0, description="DC nameplate [kWp]")
    inverter_kw: float | None = Field(None, gt=0, description="AC limit; default capacity_kwp [kW]")
    performance_ratio: float = Field(0.85, gt=0, le=1, description="System losses factor")
    curtailable: bool = True
    profile: PvProfileSource = Field(description="Irradiance source for simulation and forecasts")
    forecast_method: Literal["recent_mean", "clear_sky"] = Field(
        "recent_mean",
        description="How the strategy forecasts the output at a decision time: the mean output "
        "at that time of day over the 7 days before ('recent_mean'), or pvlib clear-sky output "
        "at the profile's site scaled by those days' clearness ('clear_sky'); "
        "docs/forecasting.md",
    )

    meter_registers: ClassVar[tuple[str, ...]] = ("produced_kwh",)
    onsite_renewable: ClassVar[bool] = True

    @property
    def max_export_kw(self) -> float:
        return self.inverter_kw or self.capacity_kwp

    @property
    def max_import_kw(self) -> float:
        return 0.0

    @property
    def setpoint_limits_kw(self) -> tuple[float, float]:
        return 0.0, self.max_export_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "export_cap" if self.curtailable else "none"

    def describe(self) -> str:
        return f"{self.capacity_kwp:g} kWp{', curtailable' if self.curtailable else ''}"

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        if self.inverter_kw and self.inverter_kw > 2 * (self.capacity_kwp):
            yield ConfigIssue(
                file,
                f"{where}.inverter_kw",
                self.inverter_kw,
                "must be <= 2 x capacity_kwp (an inverter this oversized is a typo)",
            )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return registers["produced_kwh"]

    def simulation_inputs(
        self,
        config_dir: Path,
        index: pd.DatetimeIndex,
        timezone: str,
        start: dt.datetime,
        end: dt.datetime,
        park: Any = None,
    ) -> dict[str, Any]:
        from vpp.profiles import pv_available_kw  # profiles reads config: imported when used

        return {"available_kw": pv_available_kw(self, config_dir, index, timezone)}
