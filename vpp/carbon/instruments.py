"""Certificates, green-power contracts and offsets: the instruments a park can retire.

One record type for all three kinds, shared by the ledger (the store) and the
accounting (market-based scope 2, offsets):

* ``gec`` -- a green electricity certificate (绿证, GEC): 1 certificate = 1 MWh
  (发改能源〔2023〕1044号); ``quantity`` in MWh.
* ``green_power`` -- a green-power contract (绿电交易): energy bought with its
  attributes; ``quantity`` in MWh.
* ``ccer`` -- an offset (China Certified Emission Reduction); ``quantity`` in tCO2.

``delivery_start``/``delivery_end`` (tz-aware, UTC inside) bound the hours the
energy was produced: set, the instrument can be matched hour by hour (GHG
Protocol Scope 2 revision proposal; EnergyTag granular certificates, at most
one hour per production interval); unset, only annually (its ``vintage`` year).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from vpp.errors import InputError

InstrumentKind = Literal["gec", "green_power", "ccer"]
INSTRUMENT_KINDS: tuple[InstrumentKind, ...] = ("gec", "green_power", "ccer")
#: Unit of ``quantity`` per kind.
QUANTITY_UNIT: dict[str, str] = {"gec": "MWh", "green_power": "MWh", "ccer": "tCO2"}


@dataclass(frozen=True)
class Instrument:
    """One certificate, contract or offset (see module doc)."""

    id: str
    kind: InstrumentKind
    vintage: int
    quantity: float
    price_per_unit: float = 0.0
    currency: str = "CNY"
    source: str = ""
    park_id: str | None = None
    delivery_start: dt.datetime | None = None
    delivery_end: dt.datetime | None = None

    def __post_init__(self) -> None:
        where = f"instrument {self.id!r}"
        if not self.id:
            raise InputError("instrument id: empty; every certificate, contract and offset needs one")
        if self.kind not in INSTRUMENT_KINDS:
            raise InputError(f"{where}: kind = {self.kind!r}: allowed {', '.join(INSTRUMENT_KINDS)}")
        if not (self.quantity > 0):
            raise InputError(f"{where}: quantity = {self.quantity!r}: must be > 0 ({self.unit})")
        if self.price_per_unit < 0:
            raise InputError(f"{where}: price_per_unit = {self.price_per_unit!r}: must be >= 0")
        if not 2000 <= self.vintage <= 2100:
            raise InputError(f"{where}: vintage = {self.vintage!r}: a year 2000..2100")
        for name in ("delivery_start", "delivery_end"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise InputError(f"{where}: {name} = {value}: naive; timestamps must be tz-aware")
        if (self.delivery_start is None) != (self.delivery_end is None):
            raise InputError(f"{where}: give both delivery_start and delivery_end, or neither")
        if self.delivery_start is not None and self.delivery_end is not None:
            if self.delivery_end <= self.delivery_start:
                raise InputError(f"{where}: delivery_end must be after delivery_start")
            if self.kind == "ccer":
                raise InputError(f"{where}: an offset (ccer) has no delivery hours")

    @property
    def unit(self) -> str:
        return QUANTITY_UNIT.get(self.kind, "?")

    @property
    def hourly(self) -> bool:
        """Can be matched hour by hour (its production hours are known)."""
        return self.delivery_start is not None


__all__ = ["INSTRUMENT_KINDS", "QUANTITY_UNIT", "Instrument", "InstrumentKind"]
