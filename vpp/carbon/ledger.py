"""The carbon ledger's values and its certificate-file importer.

The ledger lives in the store (:class:`vpp.store.Store`: ``add_instruments``,
``instruments``, ``retire``, ``retirements``); this module holds what the
store hands back and what reads a certificate file, so both stay in the
foundation layer and the accounting can use them without the store.

* :class:`Retirement` -- one instrument retired against one park's month.
* :class:`LedgerEntry` -- an :class:`~vpp.carbon.instruments.Instrument` as the
  ledger holds it: when it was imported and its retirement, if any.
* :func:`read_certificates` -- a CSV file of instruments, validated whole
  before anything is written: every bad row is one ``FILE:LINE: field =
  value: what is allowed`` issue of one :class:`~vpp.errors.ConfigError`.

The file format (``docs/carbon-ledger.md``): UTF-8 (a BOM, as spreadsheet
exports write it, is accepted), a header row naming the columns, one
instrument per row, lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vpp.carbon.instruments import INSTRUMENT_KINDS, QUANTITY_UNIT, Instrument, InstrumentKind
from vpp.errors import ConfigError, ConfigIssue, InputError

#: Columns a certificate file must have (a cell may not be empty).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "vintage",
    "quantity",
    "price_per_unit",
    "currency",
    "source",
)
#: Columns a certificate file may have (a cell may be empty).
OPTIONAL_COLUMNS: tuple[str, ...] = ("park_id", "delivery_start", "delivery_end")
COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^\S+$")


def check_period(period: str, name: str = "period") -> str:
    """``period`` if it is a month ``YYYY-MM`` (2000..2100), else :class:`InputError`."""
    match = _PERIOD.match(period)
    if match is None or not 2000 <= int(match.group(1)) <= 2100:
        raise InputError(f"{name} = {period!r}: a month YYYY-MM (e.g. 2025-03), year 2000..2100")
    return period


@dataclass(frozen=True)
class Retirement:
    """One instrument retired against one park's emissions of one month.

    ``quantity`` is the whole instrument's (an instrument is retired once and
    whole), in ``unit`` (MWh for ``gec``/``green_power``, tCO2 for ``ccer``).
    """

    instrument_id: str
    park_id: str
    period: str  # "YYYY-MM"
    quantity: float
    unit: str
    retired_at: dt.datetime  # UTC
    note: str = ""


@dataclass(frozen=True)
class LedgerEntry:
    """An instrument as the ledger holds it."""

    instrument: Instrument
    imported_at: dt.datetime  # UTC
    retirement: Retirement | None = None

    @property
    def retired(self) -> bool:
        return self.retirement is not None


# --------------------------------------------------------------------------- importer


class _Row:
    """Parses one row's cells, collecting one issue per bad field."""

    def __init__(self, file: str, line: int, cells: dict[str, str]) -> None:
        self.where = f"{file}:{line}"
        self.cells = cells
        self.issues: list[ConfigIssue] = []

    def issue(self, field: str, value: object, message: str) -> None:
        self.issues.append(ConfigIssue(self.where, field, value, message))

    def text(self, field: str) -> str:
        return (self.cells.get(field) or "").strip()

    def required(self, field: str, allowed: str) -> str | None:
        value = self.text(field)
        if not value:
            self.issue(field, "", f"empty; {allowed}")
            return None
        return value

    def number(self, field: str, allowed: str) -> float | None:
        value = self.required(field, allowed)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.issue(field, value, f"not a number; {allowed}")
            return None
        if not math.isfinite(number):
            self.issue(field, value, f"not finite; {allowed}")
            return None
        return number

    def timestamp(self, field: str) -> dt.datetime | None:
        value = self.text(field)
        if not value:
            return None
        allowed = "ISO 8601 with a UTC offset, e.g. 2025-03-01T00:00+08:00"
        try:
            stamp = dt.datetime.fromisoformat(value)
        except ValueError:
            self.issue(field, value, f"not a timestamp; {allowed}")
            return None
        if stamp.tzinfo is None or stamp.utcoffset() is None:
            self.issue(field, value, f"naive (no UTC offset); {allowed}")
            return None
        return stamp


def _parse_row(row: _Row) -> Instrument | None:
    """The row's instrument, or ``None`` with ``row.issues`` saying why."""
    ident = row.required("id", "every instrument needs its registry id")
    if ident is not None and not _ID.match(ident):
        row.issue("id", ident, "contains white space; an id is one word (the registry's serial)")
        ident = None
    kind = row.required("kind", f"one of {', '.join(INSTRUMENT_KINDS)}")
    if kind is not None and kind not in INSTRUMENT_KINDS:
        row.issue("kind", kind, f"one of {', '.join(INSTRUMENT_KINDS)}")
        kind = None
    vintage: int | None = None
    vintage_text = row.required(
        "vintage", "the production year (GEC, green power) or the reduction year (CCER), 2000..2100"
    )
    if vintage_text is not None:
        if not vintage_text.isdigit() or not 2000 <= int(vintage_text) <= 2100:
            row.issue("vintage", vintage_text, "a year 2000..2100")
        else:
            vintage = int(vintage_text)
    unit = QUANTITY_UNIT.get(kind or "", "MWh or tCO2")
    quantity = row.number("quantity", f"a number > 0 [{unit}]")
    if quantity is not None and quantity <= 0:
        row.issue("quantity", row.text("quantity"), f"must be > 0 [{unit}]")
        quantity = None
    if quantity is not None and kind == "gec" and quantity != int(quantity):
        row.issue("quantity", row.text("quantity"), "whole certificates only (1 GEC = 1 MWh)")
        quantity = None
    price = row.number("price_per_unit", f"a number >= 0 [currency/{unit}]; write 0 if it was free")
    if price is not None and price < 0:
        row.issue("price_per_unit", row.text("price_per_unit"), f"must be >= 0 [currency/{unit}]")
        price = None
    currency = row.required("currency", "an ISO 4217 code, e.g. CNY")
    if currency is not None and not _CURRENCY.match(currency):
        row.issue("currency", currency, "an ISO 4217 code in capitals, e.g. CNY")
        currency = None
    source = row.required("source", "where the instrument comes from (registry, contract, seller)")
    park_id = row.text("park_id") or None
    if park_id is not None and not _ID.match(park_id):
        row.issue("park_id", park_id, "contains white space; an enrolled park's id, or empty")
    start = row.timestamp("delivery_start")
    end = row.timestamp("delivery_end")
    # Cross-field rules, each named by the field a reader should look at.
    if (row.text("delivery_start") == "") != (row.text("delivery_end") == ""):
        missing = "delivery_end" if row.text("delivery_end") == "" else "delivery_start"
        row.issue(
            missing,
            "",
            "give both delivery_start and delivery_end (hourly matching), or neither (annual)",
        )
    if start is not None and end is not None:
        if end <= start:
            row.issue(
                "delivery_end",
                row.text("delivery_end"),
                f"must be after delivery_start ({row.text('delivery_start')})",
            )
        if kind == "ccer":
            row.issue(
                "delivery_start",
                row.text("delivery_start"),
                "an offset (ccer) has no delivery hours; leave empty",
            )
        if vintage is not None and start.year != vintage:
            row.issue(
                "delivery_start",
                row.text("delivery_start"),
                f"lies outside vintage {vintage}; the production year must match",
            )
    if row.issues:
        return None
    assert ident is not None
    assert kind is not None
    assert vintage is not None
    assert quantity is not None
    assert price is not None
    assert currency is not None
    assert source is not None
    try:
        return Instrument(
            id=ident,
            kind=_kind(kind),
            vintage=vintage,
            quantity=quantity,
            price_per_unit=price,
            currency=currency,
            source=source,
            park_id=park_id,
            delivery_start=start,
            delivery_end=end,
        )
    except InputError as exc:  # a rule of Instrument this parser does not repeat
        row.issue("", None, str(exc))
        return None


def _kind(value: str) -> InstrumentKind:
    for kind in INSTRUMENT_KINDS:
        if value == kind:
            return kind
    raise InputError(f"kind = {value!r}: one of {', '.join(INSTRUMENT_KINDS)}")


def _lines(text: str) -> Iterator[str]:
    """The file's lines with comment lines blanked, so line numbers stay the file's."""
    for line in text.splitlines(keepends=True):
        yield "\n" if line.lstrip().startswith("#") else line


def read_certificates(path: Path) -> list[Instrument]:
    """Every instrument of a certificate CSV file, or one :class:`ConfigError` listing every bad row.

    Nothing is half-read: the whole file is checked (header, each row, ids
    unique within the file) before any instrument is returned. Whether an id
    is already in the ledger, or a park is enrolled, is the store's check
    (:meth:`vpp.store.Store.add_instruments`).
    """
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    name,
                    "",
                    None,
                    f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8 CSV",
                )
            ]
        ) from None
    reader = csv.reader(_lines(text))
    header: list[str] = []
    header_line = 0
    for cells in reader:
        if any(cell.strip() for cell in cells):
            header = [cell.strip() for cell in cells]
            header_line = reader.line_num
            break
    if not header:
        raise ConfigError(
            [
                ConfigIssue(
                    name,
                    "",
                    None,
                    f"no header row; the first line names the columns: {', '.join(COLUMNS)}",
                )
            ]
        )
    issues: list[ConfigIssue] = []
    where = f"{name}:{header_line}"
    shown = ",".join(header)
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    unknown = [column for column in header if column not in COLUMNS]
    doubled = sorted({column for column in header if header.count(column) > 1})
    if missing:
        issues.append(
            ConfigIssue(
                where,
                "header",
                shown,
                f"lacks column(s) {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}",
            )
        )
    if unknown:
        issues.append(
            ConfigIssue(
                where,
                "header",
                shown,
                f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}",
            )
        )
    if doubled:
        issues.append(
            ConfigIssue(where, "header", shown, f"column(s) {', '.join(doubled)} appear twice")
        )
    if issues:
        raise ConfigError(issues)
    instruments: list[Instrument] = []
    first_line: dict[str, int] = {}
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # a blank or comment line
        line = reader.line_num
        row = _Row(name, line, dict(zip(header, cells, strict=False)))
        if len(cells) > len(header):
            row.issue(
                "",
                None,
                f"{len(cells)} cells but the header has {len(header)} columns; quote a value that holds a comma",
            )
            issues.extend(row.issues)
            continue
        instrument = _parse_row(row)
        ident = row.text("id")
        if ident and ident in first_line:
            row.issue("id", ident, f"duplicate; already on line {first_line[ident]}, every id once")
            instrument = None
        elif ident:
            first_line[ident] = line
        issues.extend(row.issues)
        if instrument is not None:
            instruments.append(instrument)
    if issues:
        raise ConfigError(issues)
    if not instruments:
        raise ConfigError(
            [
                ConfigIssue(
                    name,
                    "",
                    None,
                    "no instruments; one row per certificate, contract or offset after the header",
                )
            ]
        )
    return instruments


__all__ = [
    "COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "LedgerEntry",
    "Retirement",
    "check_period",
    "read_certificates",
]
