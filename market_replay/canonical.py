"""The canonical price file and its in-memory form, :class:`PriceFrame`.

Every importer produces a :class:`PriceFrame`; the backtest and the daemon
only ever read this form. See ``docs/market-data.md`` for the file spec.

In memory
    ``frame`` is a pandas DataFrame indexed by a tz-aware UTC
    ``DatetimeIndex`` named ``interval_start`` (nanosecond unit), strictly
    increasing. Every gap between two rows is a whole multiple of
    ``interval_minutes`` and the most common gap equals it: rows sit on one
    constant grid. Whole local days may be absent (policy ``drop-day``);
    :meth:`PriceFrame.days` lists the days that are complete.

Columns
    * ``da_price`` (required) day-ahead price [currency/MWh];
    * ``rt_price``, ``rt_price_up``, ``rt_price_down`` (optional) real-time
      price and the two-price imbalance (up/down regulating) prices
      [currency/MWh]; more ``da_price_*``/``rt_price_*`` names are allowed;
    * published fundamentals in MW, any name ending ``_mw``
      (``load_forecast_mw``, ``renewable_forecast_mw``, ``bidding_space_mw``,
      ``pv_forecast_mw``, ``wind_forecast_mw``, ...) [MW];
    * when the import policy was ``flag``: ``quality_flag`` (bool, True when
      any check flagged the interval) and one ``flag_<check>`` bool column
      per check that fired (``flag_gap``, ``flag_zero_day``, ...). A flagged
      value that was missing in the source (gap, NaN, zero-coded day,
      ambiguous DST hour, conflicting duplicate) is NaN, never a guess.

On disk
    UTF-8 CSV. First come ``# key=value`` header lines (``vpp_prices``,
    ``market_id``, ``currency``, ``interval_minutes``, ``source``,
    ``created_by``, maybe ``quality_policy``/``quality``), then a header row
    ``interval_start,da_price,...`` and one row per interval.
    ``interval_start`` is ISO 8601 with ``+00:00``; floats are written in
    their shortest exact form (``repr``) and read with the round-trip
    parser, so ``read_prices(p) == prices`` after ``write_prices(prices, p)``;
    missing values are empty cells; flags are ``true``/``false``. Writes go
    to a temporary file renamed into place, so a failed run leaves no
    partial file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from vpp import files
from vpp.errors import DataQualityError, InputError, InputFormatError
from vpp.timeutil import day_bounds_utc, require_aware, zone

log = structlog.get_logger(__name__)

FORMAT_VERSION = "1"
INDEX_NAME = "interval_start"
REQUIRED_COLUMN = "da_price"
PRICE_COLUMNS = ("da_price", "rt_price", "rt_price_up", "rt_price_down")
QUALITY_FLAG = "quality_flag"
FLAG_PREFIX = "flag_"
_REQUIRED_HEADERS = ("market_id", "currency", "interval_minutes")

_PRICE_RE = re.compile(r"^(da|rt)_price(_[a-z0-9]+)*$")
_MW_RE = re.compile(r"^[a-z][a-z0-9_]*_mw$")
_FLAG_RE = re.compile(r"^flag_[a-z0-9_]+$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_ALLOWED = (
    "da_price, rt_price, rt_price_up, rt_price_down (or other da_price_*/rt_price_*), "
    "*_mw fundamentals, quality_flag, flag_*"
)
_TRUE = {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}


def is_price_column(name: str) -> bool:
    """True for ``da_price``, ``rt_price``, ``rt_price_up``... [currency/MWh]."""
    return bool(_PRICE_RE.match(name))


def is_flag_column(name: str) -> bool:
    return name == QUALITY_FLAG or bool(_FLAG_RE.match(name))


def _column_kind(name: str) -> str | None:
    if is_flag_column(name):
        return "flag"
    if is_price_column(name) or _MW_RE.match(name):
        return "value"
    return None


@dataclass(frozen=True, eq=False)
class PriceFrame:
    """Prices of one market on a constant UTC grid. See the module docstring.

    Construction validates and normalises ``frame`` (a copy is kept): the
    index is converted to UTC at nanosecond resolution and named
    ``interval_start``, value columns become float64, flag columns bool.
    A naive index raises ``TypeError``; other problems raise
    :class:`vpp.DataQualityError`. Equality compares metadata and the frame
    exactly (NaN equals NaN, column order matters).
    """

    frame: pd.DataFrame
    market_id: str
    currency: str
    interval_minutes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", _normalise(self.frame, self.interval_minutes))
        if not self.market_id or "\n" in self.market_id:
            raise DataQualityError(f"market_id must be a non-empty line, got {self.market_id!r}")
        if not _CURRENCY_RE.match(self.currency):
            raise DataQualityError(f"currency must be an ISO 4217 code, got {self.currency!r}")

    # ------------------------------------------------------------------ values

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceFrame):
            return NotImplemented
        return (
            self.market_id == other.market_id
            and self.currency == other.currency
            and self.interval_minutes == other.interval_minutes
            and list(self.frame.columns) == list(other.frame.columns)
            and self.frame.index.equals(other.frame.index)
            and self.frame.equals(other.frame)
        )

    __hash__ = None  # type: ignore[assignment]  # holds a mutable DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        span = (
            f"{self.frame.index[0].isoformat()} .. {self.frame.index[-1].isoformat()}"
            if len(self.frame)
            else "empty"
        )
        return (
            f"PriceFrame(market_id={self.market_id!r}, currency={self.currency!r}, "
            f"interval_minutes={self.interval_minutes}, intervals={len(self.frame)}, {span}, "
            f"columns={list(self.frame.columns)})"
        )

    @property
    def price_columns(self) -> list[str]:
        """The price columns present [currency/MWh]."""
        return [c for c in self.frame.columns if is_price_column(c)]

    @property
    def flagged(self) -> pd.Series:
        """Bool series: True where any quality flag is set (all False without flags)."""
        flags = [c for c in self.frame.columns if is_flag_column(c)]
        if not flags:
            return pd.Series(False, index=self.frame.index, name=QUALITY_FLAG)
        return self.frame[flags].any(axis=1).rename(QUALITY_FLAG)

    def _with(self, frame: pd.DataFrame) -> PriceFrame:
        return PriceFrame(frame, self.market_id, self.currency, self.interval_minutes)

    # ------------------------------------------------------------------ slicing

    def between(
        self, start_utc: datetime | pd.Timestamp, end_utc: datetime | pd.Timestamp
    ) -> PriceFrame:
        """Intervals starting in ``[start_utc, end_utc)``; both must be tz-aware."""
        require_aware(start_utc, "start_utc")
        require_aware(end_utc, "end_utc")
        start = pd.Timestamp(start_utc).tz_convert("UTC")
        end = pd.Timestamp(end_utc).tz_convert("UTC")
        index = self.frame.index
        return self._with(self.frame.iloc[index.searchsorted(start) : index.searchsorted(end)])

    def day(self, delivery_day: date, timezone: str) -> PriceFrame:
        """The intervals of one local market day (92, 96 or 100 quarter-hours across DST)."""
        start, end = day_bounds_utc(delivery_day, timezone)
        return self.between(start, end)

    def days(self, timezone: str) -> list[date]:
        """Local days fully covered: every interval of the day has a row and no price is NaN."""
        if self.frame.empty:
            return []
        zone(timezone)
        complete = self.frame[self.price_columns].notna().all(axis=1)
        local = self.frame.index[complete.to_numpy()].tz_convert(timezone)
        counts = pd.Series(1, index=local.date).groupby(level=0).sum()
        step = pd.Timedelta(minutes=self.interval_minutes)
        out = []
        for day, count in counts.items():
            start, end = day_bounds_utc(day, timezone)
            if count == (end - start) // step:
                out.append(day)
        return out


def _normalise(frame: pd.DataFrame, interval_minutes: int) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, int | np.integer):
        raise TypeError(f"interval_minutes must be an int, got {interval_minutes!r}")
    if interval_minutes <= 0 or 1440 % interval_minutes:
        raise DataQualityError(
            f"interval_minutes = {interval_minutes}: must divide a day (5, 15, 30, 60, ...)"
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise TypeError(
            f"frame index must be a tz-aware DatetimeIndex, got {type(index).__name__}"
            f" with tz={getattr(index, 'tz', None)}"
        )
    out = frame.copy()
    out.index = index.tz_convert("UTC").as_unit("ns").rename(INDEX_NAME)
    out.index.freq = None
    out.columns = [str(c) for c in out.columns]
    if REQUIRED_COLUMN not in out.columns:
        raise DataQualityError(f"frame needs a {REQUIRED_COLUMN!r} column; got {list(out.columns)}")
    for name in out.columns:
        kind = _column_kind(name)
        if kind is None:
            raise DataQualityError(f"unknown column {name!r}; allowed: {_ALLOWED}")
        if kind == "flag":
            if out[name].dtype != bool:
                raise DataQualityError(f"flag column {name!r} must be bool, got {out[name].dtype}")
            continue
        try:
            values = out[name].astype("float64")
        except (TypeError, ValueError) as exc:
            raise DataQualityError(f"column {name!r} must be numeric: {exc}") from None
        if np.isinf(values.to_numpy()).any():
            raise DataQualityError(f"column {name!r} holds an infinite value")
        out[name] = values
    ns = out.index.asi8
    if len(ns):
        minute = 60_000_000_000
        if (ns % minute).any():
            raise DataQualityError("interval_start must fall on whole minutes")
        diffs = np.diff(ns)
        step = interval_minutes * minute
        if (diffs <= 0).any():
            bad = int(np.argmax(diffs <= 0)) + 1
            raise DataQualityError(
                f"interval_start must be strictly increasing; {out.index[bad]} follows "
                f"{out.index[bad - 1]}"
            )
        if (diffs % step).any():
            bad = int(np.argmax(diffs % step != 0)) + 1
            raise DataQualityError(
                f"{out.index[bad]} is {diffs[bad - 1] // minute} min after the previous row; "
                f"rows must sit on a {interval_minutes}-min grid"
            )
        if len(diffs) and _mode(diffs) != step:
            raise DataQualityError(
                f"rows are mostly {_mode(diffs) // minute} min apart but interval_minutes = "
                f"{interval_minutes}"
            )
    return out


def _mode(values: np.ndarray) -> int:
    uniques, counts = np.unique(values, return_counts=True)
    return int(uniques[np.argmax(counts)])


# ---------------------------------------------------------------------- writing


def _header_value(value: object) -> str:
    return " ".join(str(value).split())


def write_prices(
    prices: PriceFrame,
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    created_by: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Write ``prices`` as a canonical CSV, atomically (temp file + rename).

    ``source``, ``created_by`` and ``extra`` go into the ``# key=value``
    header; :func:`read_header` returns them.
    """
    path = Path(path)
    header: dict[str, str] = {
        "vpp_prices": FORMAT_VERSION,
        "market_id": prices.market_id,
        "currency": prices.currency,
        "interval_minutes": str(prices.interval_minutes),
    }
    if source is not None:
        header["source"] = source
    if created_by is not None:
        header["created_by"] = created_by
    for key, value in (extra or {}).items():
        if not re.match(r"^[a-z][a-z0-9_]*$", key) or key in header:
            raise InputError(f"header key {key!r} must be a new lower-case identifier")
        header[key] = value
    buffer = io.StringIO()
    for key, value in header.items():
        buffer.write(f"# {key}={_header_value(value)}\n")
    body = pd.DataFrame(index=prices.frame.index)
    for name in prices.frame.columns:
        column = prices.frame[name]
        if is_flag_column(name):
            body[name] = np.where(column.to_numpy(), "true", "false")
        else:
            body[name] = [repr(v) if v == v else "" for v in column.to_numpy().tolist()]
    body.index = prices.frame.index.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    body.index.name = INDEX_NAME
    body.to_csv(buffer, lineterminator="\n")
    _atomic_write(path, buffer.getvalue())
    log.info(
        "prices_written",
        path=str(path),
        market_id=prices.market_id,
        intervals=len(prices),
        columns=list(prices.frame.columns),
    )


def _atomic_write(path: Path, text: str) -> None:
    if path.exists() and not path.is_file() and not path.is_dir():
        # A device or FIFO (/dev/stdout): write through; a rename would replace it with a file.
        files.atomic_write(path, lambda target: target.write_text(text, encoding="utf-8"))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


# ---------------------------------------------------------------------- reading


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``# key=value`` header of a canonical file (no validation)."""
    header, _ = _read_header_lines(Path(path))
    return header


def _read_header_lines(path: Path) -> tuple[dict[str, str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFormatError(str(path), "file not found") from None
    except UnicodeDecodeError:
        raise InputFormatError(str(path), "not UTF-8 text") from None
    lines = text.splitlines()
    header: dict[str, str] = {}
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.startswith("#"):
            break
        count = number
        body = line[1:].strip()
        if not body:
            continue
        key, sep, value = body.partition("=")
        if not sep:
            raise InputFormatError(
                str(path), f"header line must be '# key=value', got {line!r}", row=number
            )
        header[key.strip()] = value.strip()
    return header, lines[count:]


def read_prices(path: str | os.PathLike[str]) -> PriceFrame:
    """Read and validate a canonical price file.

    Raises :class:`InputFormatError` (a :class:`vpp.DataQualityError`) naming
    the file, row (line number) and column of the first problem: a missing
    header key, unknown column, unparseable or naive timestamp, duplicate or
    out-of-order timestamp, a step that does not match ``interval_minutes``,
    an unparseable number or flag.
    """
    path = Path(path)
    file = str(path)
    header, body = _read_header_lines(path)
    first_row = _count_leading_comments(path) + 1
    for key in _REQUIRED_HEADERS:
        if key not in header:
            raise InputFormatError(
                file,
                f"header '# {key}=...' is missing (needs {', '.join(_REQUIRED_HEADERS)})",
                row=1,
            )
    try:
        interval = int(header["interval_minutes"])
    except ValueError:
        raise InputFormatError(
            file,
            f"interval_minutes must be an integer, got {header['interval_minutes']!r}",
            row=1,
        ) from None
    if interval <= 0 or 1440 % interval:
        raise InputFormatError(
            file, f"interval_minutes = {interval} must divide a day (5, 15, 30, 60, ...)", row=1
        )
    if not body or not body[0].strip():
        raise InputFormatError(file, "no column header after the '#' lines", row=first_row)
    # The csv module, not pandas, reads the cells: pandas renames a repeated column
    # ('da_price.1') and pads a short row with NaN, which would hide both problems.
    cells = [(first_row + k, row) for k, row in enumerate(csv.reader(body)) if row]
    columns = cells[0][1] if cells else []
    for line_number, row in cells[1:]:
        if len(row) != len(columns):
            raise InputFormatError(
                file,
                f"{len(row)} cells but the column header has {len(columns)}; "
                "a truncated or overlong row (or another delimiter than ',')",
                row=line_number,
            )
    raw = pd.DataFrame([row for _, row in cells[1:]], columns=columns, dtype=str)
    other = next((d for d in (";", "\t", "|") if columns and d in columns[0]), None)
    if other is not None and len(columns) == 1:
        raise InputFormatError(
            file,
            f"cells are separated by {other!r}; a canonical price file separates them by ','",
            row=first_row,
        )
    if not columns or columns[0] != INDEX_NAME:
        raise InputFormatError(
            file,
            f"first column must be {INDEX_NAME!r}",
            row=first_row,
            column=columns[0] if columns else None,
        )
    if REQUIRED_COLUMN not in columns:
        raise InputFormatError(
            file, "required column is missing", row=first_row, column=REQUIRED_COLUMN
        )
    seen: set[str] = set()
    for name in columns[1:]:
        if name in seen:
            raise InputFormatError(file, "column appears twice", row=first_row, column=name)
        seen.add(name)
        if _column_kind(name) is None:
            raise InputFormatError(
                file, f"unknown column; allowed: {_ALLOWED}", row=first_row, column=name
            )

    def row_of(i: int) -> int:
        return first_row + 1 + i

    stamps = raw[INDEX_NAME]
    index = pd.to_datetime(stamps, format="ISO8601", errors="coerce", utc=True)
    bad = index.isna().to_numpy() | ~stamps.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputFormatError(
            file,
            f"cannot parse {stamps.iloc[i]!r} as ISO 8601 with a UTC offset "
            "(e.g. 2025-05-01T00:00:00+00:00)",
            row=row_of(i),
            column=INDEX_NAME,
        )
    index = pd.DatetimeIndex(index).as_unit("ns")
    ns = index.asi8
    step = interval * 60_000_000_000
    diffs = np.diff(ns)
    if (diffs == 0).any():
        i = int(np.argmax(diffs == 0)) + 1
        raise InputFormatError(
            file, f"duplicate timestamp {stamps.iloc[i]}", row=row_of(i), column=INDEX_NAME
        )
    if (diffs < 0).any():
        i = int(np.argmax(diffs < 0)) + 1
        raise InputFormatError(
            file,
            f"{stamps.iloc[i]} is before the previous row (out of order)",
            row=row_of(i),
            column=INDEX_NAME,
        )
    if (ns % 60_000_000_000).any():
        i = int(np.argmax(ns % 60_000_000_000 != 0))
        raise InputFormatError(
            file, "timestamps must fall on whole minutes", row=row_of(i), column=INDEX_NAME
        )
    if (diffs % step).any():
        i = int(np.argmax(diffs % step != 0)) + 1
        raise InputFormatError(
            file,
            f"{diffs[i - 1] // 60_000_000_000} min after the previous row; the header says "
            f"interval_minutes={interval}",
            row=row_of(i),
            column=INDEX_NAME,
        )
    if len(diffs) and _mode(diffs) != step:
        i = int(np.argmax(diffs != step)) + 1
        raise InputFormatError(
            file,
            f"rows are mostly {_mode(diffs) // 60_000_000_000} min apart but the header "
            f"says interval_minutes={interval}",
            row=row_of(i),
            column=INDEX_NAME,
        )
    data: dict[str, np.ndarray] = {}
    for name in columns[1:]:
        text = raw[name]
        if is_flag_column(name):
            flags = [str(cell).strip() for cell in text.tolist()]
            unknown = [i for i, cell in enumerate(flags) if cell not in _TRUE]
            if unknown:
                i = unknown[0]
                raise InputFormatError(
                    file,
                    f"flag must be true or false, got {flags[i]!r}",
                    row=row_of(i),
                    column=name,
                )
            data[name] = np.array([_TRUE[cell] for cell in flags], dtype=bool)
            continue
        data[name] = _parse_floats(file, name, text, row_of).to_numpy()
    frame = pd.DataFrame(data, index=index)
    frame.columns = columns[1:]
    try:
        prices = PriceFrame(frame, header["market_id"], header["currency"], interval)
    except DataQualityError as exc:
        raise InputFormatError(file, str(exc)) from None
    log.debug("prices_read", path=file, market_id=prices.market_id, intervals=len(prices))
    return prices


def _count_leading_comments(path: Path) -> int:
    count = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            count += 1
    return count


def _parse_floats(file: str, name: str, text: pd.Series, row_of: Callable[[int], int]) -> pd.Series:
    """Parse with Python's correctly rounded ``float`` so written reprs read back exactly."""
    floats = np.empty(len(text), dtype="float64")
    for i, cell in enumerate(text.tolist()):
        cell = cell.strip()
        if not cell:
            floats[i] = np.nan
            continue
        try:
            floats[i] = float(cell)
        except ValueError:
            raise InputFormatError(
                file, f"cannot parse {cell!r} as a number", row=row_of(i), column=name
            ) from None
        if np.isnan(floats[i]):
            raise InputFormatError(
                file,
                f"{cell!r} is not a number; a missing value is an empty cell",
                row=row_of(i),
                column=name,
            )
        if np.isinf(floats[i]):
            raise InputFormatError(file, "infinite value", row=row_of(i), column=name)
    return pd.Series(floats, index=text.index, dtype="float64")
