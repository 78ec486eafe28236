"""The base of every config spec: unknown keys rejected, numbers finite and written as numbers.

Foundation for :mod:`vpp.config.models` (parks, markets, settings) and
:mod:`vpp.assets` (one spec module per asset type); it imports nothing of
the project above :mod:`vpp.timeutil`, so both can build on it without an
import cycle.
"""

from __future__ import annotations

import math
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from vpp.timeutil import zone

Id = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="Identifier: lower-case letters, digits, '-' and '_', at most 63 characters",
    ),
]


class Spec(BaseModel):
    """Base of every config spec: unknown keys are rejected, numbers must be finite.

    ``inf``/``-inf``/``nan`` (which TOML accepts) are refused in every numeric
    field: no field means "unlimited" by an infinite value. Where a limit is
    optional, leaving it out (``None``) is the documented way to say "no limit"
    or "the default", as each field's description states.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False
    )

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_written_as_numbers(cls, data: Any) -> Any:
        """``power_kw = true`` (1 kW) or ``power_kw = "2000"`` is a mistake, not a number.

        pydantic's lax mode would convert both; a numeric field takes a TOML number.
        """
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if (
                isinstance(value, bool | str)
                and field is not None
                and _numeric_only(field.annotation)
            ):
                kind = "true/false" if isinstance(value, bool) else "a quoted string"
                raise PydanticCustomError(
                    "number_written_as_text",
                    "must be a number written without quotes, not {kind}",
                    {"kind": kind, "field": name, "value": value},
                )
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and field is not None
                and _numeric_only(field.annotation, float)
                and LARGEST_NUMBER < abs(value) < math.inf  # inf/nan: "must be finite"
            ):
                raise PydanticCustomError(
                    "number_too_large",
                    "must be within ±1e9: a number this large is a typo or a wrong unit",
                    {"field": name, "value": value},
                )
        return data


LARGEST_NUMBER = 1e9
"""Bound on every float config field: 1e9 kW, kWh, s or per MWh is beyond any park or market,
and values past it (``power_kw = 1e300``) wreck the solver's scaling."""


def _numeric_only(annotation: Any, needs: type | None = None) -> bool:
    """True if ``annotation`` is int or float, optionally ``| None`` (and includes ``needs``)."""
    members = [m for m in get_args(annotation) if m is not type(None)] if get_origin(
        annotation
    ) in (Union, UnionType) else [annotation]
    numeric = bool(members) and all(m in (int, float) for m in members)
    return numeric and (needs is None or needs in members)


def _check_timezone(value: str) -> str:
    zone(value)  # raises ValueError with the allowed form
    return value


def _divides_day(value: int) -> int:
    if value <= 0 or 1440 % value:
        raise ValueError("must divide a day into whole intervals (5, 15, 30, 60, ...)")
    return value


def _check_env_name(value: str | None) -> str | None:
    if value is not None and not value.replace("_", "").isalnum():
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, '_'), "
            "never the secret itself"
        )
    return value

