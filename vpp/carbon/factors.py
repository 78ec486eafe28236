"""Grid emission factors as versioned data: one file per carbon region, the factor in force by date.

A carbon region file, ``config/carbon/<region>.toml``, lists every published
factor of one grid (China's MEE/NBS factors, Germany's UBA Strommix, ...)
with its value, unit, data year, scope, area, ``source`` and
``effective_date`` (the day it was published, hence could be used). A market
file names its region with ``carbon_region`` (and, optionally, the area of
its location-based factor with ``carbon_area``; the national average
otherwise). Values from secondary sources carry "(verify)" in their
``source``, as market rules do.

Scopes (``scope``):

=========================== ===============================================================
``national_average``        all generation of the country: the location-based annual factor
``residual``                the average after removing non-fossil power sold with its
                            attributes (China: 不包括市场化交易的非化石能源电量; Europe: the AIB
                            residual mix): the market-based factor for the rest of import
``fossil_only``             fossil-fired generation only: the factor of the fossil share of
                            an interval (:mod:`vpp.carbon.intensity`)
``regional_average``        a regional grid (华北, 华东, ...)
``provincial_average``      one province
=========================== ===============================================================

Versioning: :meth:`FactorSet.factor` picks, among the factors of one scope
and area, the one with the latest ``effective_date`` on or before the given
day -- what an accountant could have used that day (a factor for 2023
published in 2026 is not in force in 2025; the 2022 factor is). Units are
converted to tCO2/MWh once, on entry (``kgCO2/kWh`` is the same number,
``gCO2/kWh`` divided by 1000, ``lbCO2/MWh`` times 0.45359237e-3).

A missing factor is said, not invented: ``missing`` maps a scope to the
reason it is absent (``residual = "AIB residual mix not sourced"``), and a
claim that needs it is refused naming the file and the reason
(:meth:`FactorSet.require`).

Files are read and validated by :func:`vpp.config.load_carbon_region` (every
problem as ``file: field = value: what is allowed``), and with every other
config file by :func:`vpp.config.load_config` and ``vpp validate``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from vpp.errors import InputError
from vpp.spec import Id, Spec

Scope = Literal[
    "national_average", "residual", "fossil_only", "regional_average", "provincial_average"
]
SCOPES: tuple[str, ...] = (
    "national_average",
    "residual",
    "fossil_only",
    "regional_average",
    "provincial_average",
)
#: Scopes whose factor is for a sub-national area (``area`` must not be the country).
AREA_SCOPES = ("regional_average", "provincial_average")
#: Accepted units and their factor to tCO2/MWh.
UNITS: dict[str, float] = {
    "tCO2/MWh": 1.0,
    "kgCO2/kWh": 1.0,
    "gCO2/kWh": 1e-3,
    "kgCO2/MWh": 1e-3,
    "lbCO2/MWh": 0.45359237e-3,
}
#: Sanity bound on a grid factor [tCO2/MWh]: lignite plants emit about 1.1-1.2.
MAX_FACTOR_TCO2_PER_MWH = 1.5
VERIFY_MARK = "(verify)"


class Factor(Spec):
    """One published emission factor (one row of a carbon region file)."""

    scope: Scope = Field(description="What the factor averages over (see vpp.carbon.factors)")
    area: str = Field(min_length=1, description="Country, regional grid or province it is for")
    year: int = Field(ge=1990, le=2100, description="The data year the factor describes")
    value: float = Field(ge=0, description="The factor in `unit`")
    unit: str = Field("tCO2/MWh", description="One of " + ", ".join(UNITS))
    source: str = Field(min_length=3, description="Publication; '(verify)' if secondary")
    effective_date: dt.date = Field(description="Day it was published (usable from)")
    note: str = ""

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, value: str) -> str:
        if value not in UNITS:
            raise ValueError(f"must be one of {', '.join(UNITS)}")
        return value

    @model_validator(mode="after")
    def _sane(self) -> Factor:
        if self.tco2_per_mwh > MAX_FACTOR_TCO2_PER_MWH:
            raise ValueError(
                f"value = {self.value} {self.unit} is {self.tco2_per_mwh:g} tCO2/MWh, above "
                f"{MAX_FACTOR_TCO2_PER_MWH} (no grid emits more): check the value and unit"
            )
        if self.effective_date.year <= self.year:
            raise ValueError(
                f"effective_date {self.effective_date} is not after the data year {self.year}: "
                "a year's factor is published after the year ends"
            )
        return self

    @property
    def tco2_per_mwh(self) -> float:
        """The factor [tCO2/MWh]."""
        return self.value * UNITS[self.unit]

    @property
    def needs_verification(self) -> bool:
        """The value comes from a secondary source ("(verify)" in its source)."""
        return VERIFY_MARK in self.source or VERIFY_MARK in self.note

    def label(self) -> str:
        """``national_average China 2022 = 0.5366 tCO2/MWh (MEE+NBS ..., from 2024-12-20)``."""
        return (
            f"{self.scope} {self.area} {self.year} = {self.tco2_per_mwh:.4g} tCO2/MWh "
            f"({self.source}; in force from {self.effective_date})"
        )


class FactorSet(Spec):
    """A carbon region file: the published factors of one grid, versioned by date."""

    region: Id = Field(description="Id named by a market file's carbon_region")
    name: str
    country: str = Field(description="The `area` of the national factors, e.g. China")
    factors: list[Factor] = Field(default_factory=list)
    missing: dict[str, str] = Field(
        default_factory=dict,
        description="Scope -> why no factor of that scope is given (refused claims say it)",
    )
    notes: str = ""
    #: The file it was read from (set by the loader with :meth:`read_from`; for messages).
    _file: str = PrivateAttr("")

    @field_validator("missing")
    @classmethod
    def _missing_scopes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in value if k not in SCOPES]
        if unknown:
            raise ValueError(f"unknown scope {unknown[0]!r}; allowed: {', '.join(SCOPES)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FactorSet:
        seen: set[tuple[str, str, int]] = set()
        for i, factor in enumerate(self.factors):
            key = (factor.scope, factor.area, factor.year)
            if key in seen:
                raise ValueError(
                    f"factors[{i}]: a second {factor.scope} factor for {factor.area} {factor.year}"
                )
            seen.add(key)
            national = factor.area == self.country
            if factor.scope in AREA_SCOPES and national:
                raise ValueError(f"factors[{i}]: a {factor.scope} factor needs a sub-national area")
            if factor.scope not in AREA_SCOPES and not national:
                raise ValueError(
                    f"factors[{i}]: area = {factor.area!r}: a {factor.scope} factor is for the "
                    f"country ({self.country!r})"
                )
        given = {f.scope for f in self.factors}
        both = given & set(self.missing)
        if both:
            raise ValueError(f"scope {sorted(both)[0]!r} is both given and listed as missing")
        return self

    def read_from(self, file: str) -> FactorSet:
        """Remember the file this set was read from (named in messages); returns self."""
        self._file = file
        return self

    def where(self) -> str:
        """The file (or region) named in messages."""
        return self._file or f"carbon region {self.region}"

    def factor(self, scope: str, on: dt.date, area: str | None = None) -> Factor | None:
        """The factor of ``scope`` (for ``area``; the country by default) in force on ``on``.

        In force: the latest ``effective_date`` on or before ``on`` (on a tie, the
        later data year). None if there is none (see :meth:`why_missing`).
        """
        wanted = area or self.country
        candidates = [
            f
            for f in self.factors
            if f.scope == scope and f.area == wanted and f.effective_date <= on
        ]
        if not candidates:
            return None
        return max(candidates, key=lambda f: (f.effective_date, f.year))

    def why_missing(self, scope: str, on: dt.date, area: str | None = None) -> str:
        """One line: why :meth:`factor` gives None for these arguments."""
        wanted = area or self.country
        rows = [f for f in self.factors if f.scope == scope and f.area == wanted]
        if rows:
            first = min(rows, key=lambda f: f.effective_date)
            return (
                f"{self.where()}: no {scope} factor for {wanted} in force on {on}; the first "
                f"({first.year}) is in force from {first.effective_date}"
            )
        reason = self.missing.get(scope)
        if reason:
            return f"{self.where()}: no {scope} factor for {wanted}: {reason}"
        return f"{self.where()}: no {scope} factor for {wanted} is given"

    def require(self, scope: str, on: dt.date, area: str | None = None) -> Factor:
        """:meth:`factor`, or :class:`~vpp.InputError` saying why there is none."""
        found = self.factor(scope, on, area)
        if found is None:
            raise InputError(self.why_missing(scope, on, area))
        return found


def load_factors(path: Path | str) -> FactorSet:
    """Read and validate one carbon region file (see :func:`vpp.config.load_carbon_region`)."""
    from vpp.config.loader import load_carbon_region  # the loader imports this module

    return load_carbon_region(Path(path))


__all__ = [
    "AREA_SCOPES",
    "MAX_FACTOR_TCO2_PER_MWH",
    "SCOPES",
    "UNITS",
    "Factor",
    "FactorSet",
    "Scope",
    "load_factors",
]
