"""``hydrogen_storage``: a hydrogen tank with the park's hydrogen offtake."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from vpp.assets.base import MULTI_ENERGY_ADAPTERS, AssetBase, SetpointKind, StateKind, soc_issues
from vpp.assets.commodities import HYDROGEN
from vpp.errors import ConfigIssue


class HydrogenStorageSpec(AssetBase):
    """Hydrogen storage of a park and the offtake it serves (kg).

    Passive at the grid, like thermal storage: it takes what the
    electrolysers produce and gives the offtake what it draws, within its
    limits. The offtake must be met: ``offtake_kg_per_h`` (a pipeline or a
    consumer drawing at a steady rate) or ``offtake_kg_per_day`` (the same
    daily quantity drawn at a steady rate over the day).
    """

    type: Literal["hydrogen_storage"]
    capacity_kg: float = Field(gt=0, description="Hydrogen held between empty and full [kg]")
    soc_min: float = Field(0.05, ge=0, le=1, description="Lowest fill [fraction]")
    soc_max: float = Field(1.0, ge=0, le=1, description="Highest fill [fraction]")
    soc_initial: float = Field(0.5, ge=0, le=1, description="Fill at start [fraction]")
    soc_final: Literal["initial", "free"] = Field(
        "initial", description="End of horizon: back to at least soc_initial, or free"
    )
    offtake_kg_per_h: float | None = Field(None, ge=0, description="Steady offtake [kg/h]")
    offtake_kg_per_day: float | None = Field(
        None, ge=0, description="Daily offtake drawn at a steady rate [kg/day]"
    )

    adapter_types: ClassVar[tuple[str, ...]] = MULTI_ENERGY_ADAPTERS
    state_kind: ClassVar[StateKind | None] = "soc_kg"
    storage_registers: ClassVar[tuple[str, str]] = ("charged_kg", "discharged_kg")

    @model_validator(mode="after")
    def _one_offtake(self) -> HydrogenStorageSpec:
        if self.offtake_kg_per_h is not None and self.offtake_kg_per_day is not None:
            raise ValueError("give offtake_kg_per_h or offtake_kg_per_day, not both")
        return self

    @property
    def offtake_rate_kg_per_h(self) -> float:
        if self.offtake_kg_per_h is not None:
            return self.offtake_kg_per_h
        return (self.offtake_kg_per_day or 0.0) / 24.0

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
    def soc_capacity_kg(self) -> float:
        return self.capacity_kg

    @property
    def storage_node(self) -> str:
        return HYDROGEN

    @property
    def soc_limits(self) -> tuple[float, float]:
        return (self.soc_min, self.soc_max)

    def describe(self) -> str:
        return f"{self.capacity_kg:g} kg H2, offtake {self.offtake_rate_kg_per_h:g} kg/h"

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        return soc_issues(file, where, self.soc_min, self.soc_max, self.soc_initial)
