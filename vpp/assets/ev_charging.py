"""``ev_charging``: an EV charging hub, its spec and its type behaviour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from pydantic import Field

from vpp.assets.base import AssetBase, SessionsSource, SetpointKind, StateKind
from vpp.errors import ConfigIssue


class EvChargingSpec(AssetBase):
    """An EV charging hub: sessions arrive, state energy and departure, and must be served."""

    type: Literal["ev_charging"]
    chargers: int = Field(gt=0, description="Number of charge points")
    charger_power_kw: float = Field(gt=0, description="Maximum power of each charge point [kW]")
    hub_power_kw: float | None = Field(
        None,
        gt=0,
        description="Limit of the hub's connection; default chargers x charger power [kW]",
    )
    sessions: SessionsSource = Field(description="Sessions replayed in simulation")

    adapter_types: ClassVar[tuple[str, ...]] = ("simulated", "ocpp")
    meter_registers: ClassVar[tuple[str, ...]] = ("delivered_kwh",)
    state_kind: ClassVar[StateKind | None] = "sessions"

    @property
    def hub_limit_kw(self) -> float:
        return self.hub_power_kw or self.chargers * self.charger_power_kw

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return self.hub_limit_kw

    @property
    def setpoint_kind(self) -> SetpointKind:
        return "import_cap"

    def describe(self) -> str:
        return f"{self.chargers} x {self.charger_power_kw:g} kW, hub {self.hub_limit_kw:g} kW"

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        if self.hub_limit_kw > (self.chargers * self.charger_power_kw):
            yield ConfigIssue(
                file,
                f"{where}.hub_power_kw",
                self.hub_power_kw,
                f"must be <= chargers x charger_power_kw "
                f"({self.chargers * self.charger_power_kw})",
            )

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["delivered_kwh"]

    def simulation_inputs(
        self,
        config_dir: Path,
        index: pd.DatetimeIndex,
        timezone: str,
        start: dt.datetime,
        end: dt.datetime,
        park: Any = None,
    ) -> dict[str, Any]:
        from vpp.profiles import ev_sessions  # profiles reads config: imported when used

        return {"sessions": ev_sessions(self, config_dir, start, end, timezone)}
