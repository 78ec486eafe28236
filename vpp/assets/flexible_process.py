"""``flexible_process``: an industrial load that shifts consumption, its spec and behaviour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from vpp.assets.base import AssetBase, LoadProfileSource, SetpointKind, StateKind
from vpp.errors import ConfigIssue


class FlexibleProcessSpec(AssetBase):
    """An industrial load that can shift consumption within limits."""

    type: Literal["flexible_process"]
    baseline: LoadProfileSource = Field(description="Baseline consumption profile")
    max_power_kw: float = Field(gt=0, description="Highest consumption the process can draw [kW]")
    shift_up_kw: float = Field(ge=0, description="Most consumption can rise above baseline [kW]")
    shift_down_kw: float = Field(ge=0, description="Most consumption can fall below baseline [kW]")
    recovery_window_h: float = Field(
        gt=0, le=24, description="Energy shifted must be recovered within this window [h]"
    )
    ramp_limit_kw_per_min: float | None = Field(
        None,
        gt=0,
        description="Largest change of consumption per minute; leave out for no ramp limit "
        "(unlimited) [kW/min]",
    )

    adapter_types: ClassVar[tuple[str, ...]] = ("simulated", "http", "modbus")
    meter_registers: ClassVar[tuple[str, ...]] = ("consumed_kwh",)
    state_kind: ClassVar[StateKind | None] = "shift"

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return self.max_power_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "power"

    def describe(self) -> str:
        return (
            f"-{self.shift_down_kw:g}/+{self.shift_up_kw:g} kW around baseline, "
            f"recover within {self.recovery_window_h:g} h"
        )

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        if self.shift_up_kw + self.shift_down_kw == 0:
            yield ConfigIssue(
                file,
                f"{where}.shift_up_kw",
                0,
                "a flexible process needs shift_up_kw or shift_down_kw > 0",
            )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["consumed_kwh"]

    def simulation_inputs(
        self,
        config_dir: Path,
        index: pd.DatetimeIndex,
        timezone: str,
        start: dt.datetime,
        end: dt.datetime,
        park: Any = None,
    ) -> dict[str, Any]:
        from vpp.profiles import load_kw  # profiles reads config: imported when used

        return {"baseline_kw": load_kw(self, config_dir, index, timezone)}
