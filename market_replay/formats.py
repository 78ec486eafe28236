"""Vendor price-file formats, described as data.

Each format is one TOML file in ``market_replay/formats/``: which column
holds the time and how to read it (interval start or end label, local time
zone, DST flag column), and which source column becomes which canonical
column. A new vendor format is a new TOML file; ``--format`` also accepts a
path to one. Example (``ercot-dam.toml``)::

    name = "ercot-dam"
    description = "ERCOT DAM settlement point prices, hourly, hour-ENDING labels"
    default_market = "ercot-houston"
    default_zone = "HB_HOUSTON"
    timezone = "America/Chicago"      # or "market": the market's time zone

    [time]
    column = "datetime_col"
    format = "%Y-%m-%d %H:%M:%S"      # strptime; a time of 24:00 means the next midnight
    label = "end"                     # the label is the END of the interval
    interval_minutes = 60             # required with label = "end"

    [columns]                         # canonical name = source column
    da_price = "{zone}"               # {zone} is replaced by --zone
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from market_replay.canonical import _column_kind, is_price_column
from vpp.errors import ConfigError, ConfigIssue
from vpp.timeutil import zone


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeSpec(_Spec):
    """How a row's time is written in the source."""

    column: str = Field(description="Column with the date-time, or the time of day")
    format: str = Field(description="strptime format of `column`; 24:00 means next midnight")
    date_column: str | None = Field(None, description="Separate date column, if any")
    date_format: str | None = Field(None, description="strptime format of `date_column`")
    label: Literal["start", "end"] = Field(description="The label marks the interval start/end")
    interval_minutes: int | None = Field(
        None, gt=0, le=1440, description="Row resolution; inferred from the data when absent [min]"
    )
    dst_flag_column: str | None = Field(
        None, description="Column marking the repeated (second) hour of the fall-back day"
    )
    dst_repeat_value: str = Field("1", description="Value of `dst_flag_column` on the repeat")

    @model_validator(mode="after")
    def _consistent(self) -> TimeSpec:
        if self.label == "end" and self.interval_minutes is None:
            raise ValueError("label = 'end' needs interval_minutes to find the interval start")
        if (self.date_column is None) != (self.date_format is None):
            raise ValueError("date_column and date_format go together")
        if self.interval_minutes is not None and 1440 % self.interval_minutes:
            raise ValueError("interval_minutes must divide a day")
        return self


class FormatSpec(_Spec):
    """One vendor format: time convention and column mapping."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    default_market: str = Field(description="Market id used when --market is not given")
    default_zone: str | None = Field(None, description="Zone used when --zone is not given")
    timezone: str = Field(description="IANA zone of the local times, or 'market'")
    rt_companion: str | None = Field(
        None, description="Format of a real-time file that may be joined with --rt"
    )
    time: TimeSpec
    columns: dict[str, str] = Field(min_length=1, description="canonical column = source column")
    optional_columns: dict[str, str] = Field(
        default_factory=dict, description="Imported when the source has them"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != "market":
            zone(value)
        return value

    @field_validator("columns", "optional_columns")
    @classmethod
    def _canonical_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if _column_kind(name) != "value":
                raise ValueError(
                    f"{name!r} is not a canonical value column (da_price, rt_price, "
                    "rt_price_up, rt_price_down, *_mw)"
                )
        return value

    @model_validator(mode="after")
    def _has_price(self) -> FormatSpec:
        if not any(is_price_column(c) for c in self.columns):
            raise ValueError("columns must map at least one price column")
        if self.uses_zone and self.default_zone is None:
            raise ValueError("columns use {zone}: set default_zone")
        return self

    @property
    def uses_zone(self) -> bool:
        return any("{zone}" in c for c in [*self.columns.values(), *self.optional_columns.values()])

    def resolve(self, zone_name: str | None) -> tuple[dict[str, str], dict[str, str]]:
        """(required, optional) maps canonical -> source column for ``zone_name``."""
        chosen = zone_name or self.default_zone or ""

        def fill(mapping: dict[str, str]) -> dict[str, str]:
            return {k: v.replace("{zone}", chosen) for k, v in mapping.items()}

        return fill(self.columns), fill(self.optional_columns)

    def zones_in(self, header: list[str]) -> list[str]:
        """Zones the source offers, read from its header through the ``{zone}`` templates."""
        templates = [v for v in self.columns.values() if "{zone}" in v]
        if not templates:
            return []
        found: list[str] | None = None
        for template in templates:
            pattern = re.compile(
                "^" + re.escape(template).replace(re.escape("{zone}"), "(?P<zone>.+)") + "$"
            )
            zones = [m["zone"] for c in header if (m := pattern.match(c))]
            found = zones if found is None else [z for z in found if z in zones]
        excluded = {self.time.column, self.time.date_column, self.time.dst_flag_column}
        return [z for z in (found or []) if z not in excluded]


def _load(path_name: str, data: dict[str, object]) -> FormatSpec:
    try:
        return FormatSpec.model_validate(data)
    except ValidationError as exc:
        issues = [
            ConfigIssue(path_name, ".".join(str(p) for p in e["loc"]), e.get("input"), e["msg"])
            for e in exc.errors()
        ]
        raise ConfigError(issues) from None


@cache
def builtin_formats() -> dict[str, FormatSpec]:
    """The formats shipped in ``market_replay/formats/*.toml``, by name."""
    out: dict[str, FormatSpec] = {}
    folder = resources.files("market_replay") / "formats"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            spec = _load(
                f"market_replay/formats/{entry.name}", tomllib.loads(entry.read_text("utf-8"))
            )
            out[spec.name] = spec
    return out


def get_format(name: str) -> FormatSpec:
    """A built-in format by name, or a format TOML file given by path."""
    formats = builtin_formats()
    if name in formats:
        return formats[name]
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([ConfigIssue(str(path), "", None, f"invalid TOML: {exc}")]) from None
        return _load(str(path), data)
    raise ConfigError(
        [
            ConfigIssue(
                "--format",
                "format",
                name,
                f"unknown format; choose one of {', '.join(formats)} or give a .toml file",
            )
        ]
    )
