"""The canonical price file: :func:`write_prices` and :func:`read_prices`.

Every importer produces a :class:`~market_replay.prices.PriceFrame`; the
backtest and the daemon only ever read this form. The in-memory schema
(index, columns and their units, errors) is defined once, in
:mod:`market_replay.prices`; this module is the file format. See
``docs/market-data.md`` for the file spec.

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
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from market_replay.prices import (
    ALLOWED_COLUMNS,
    FLAG_PREFIX,
    INDEX_NAME,
    PRICE_COLUMNS,
    QUALITY_FLAG,
    REQUIRED_COLUMN,
    PriceFrame,
    column_kind,
    is_flag_column,
    is_price_column,
    most_common_step,
)
from vpp import files
from vpp.errors import DataQualityError, InputError, InputFormatError

log = structlog.get_logger(__name__)

__all__ = [
    "FLAG_PREFIX",
    "FORMAT_VERSION",
    "INDEX_NAME",
    "PRICE_COLUMNS",
    "QUALITY_FLAG",
    "REQUIRED_COLUMN",
    "PriceFrame",
    "is_flag_column",
    "is_price_column",
    "read_header",
    "read_prices",
    "write_prices",
]

FORMAT_VERSION = "1"
_REQUIRED_HEADERS = ("market_id", "currency", "interval_minutes")
_NS_PER_MIN = 60_000_000_000
_TRUE = {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}
#: Kept for ``market_replay.formats``, which imports this name; new code uses ``column_kind``.
_column_kind = column_kind


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

    The steps, each raising on its own problems in this order: the ``#``
    header, the cells, the column names, the timestamps, their steps, the
    values, and last the :class:`PriceFrame` schema check.
    """
    path = Path(path)
    file = str(path)
    header, body = _read_header_lines(path)
    first_row = _count_leading_comments(path) + 1
    interval = _header_interval(file, header)
    columns, raw = _read_cells(file, body, first_row)
    _check_column_names(file, columns, first_row)
    row_of = _data_row_numbers(first_row)
    stamps = raw[INDEX_NAME]
    index = _parse_timestamps(file, stamps, row_of)
    _check_steps(file, stamps, index, interval, row_of)
    data = {name: _parse_column(file, name, raw[name], row_of) for name in columns[1:]}
    frame = pd.DataFrame(data, index=index)
    frame.columns = columns[1:]
    prices = _to_price_frame(file, frame, header, interval)
    log.debug("prices_read", path=file, market_id=prices.market_id, intervals=len(prices))
    return prices


def _header_interval(file: str, header: Mapping[str, str]) -> int:
    """The required header keys are present; ``interval_minutes`` [min] divides a day."""
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
    return interval


def _read_cells(file: str, body: list[str], first_row: int) -> tuple[list[str], pd.DataFrame]:
    """The column header and every data row as text; a truncated or overlong row raises."""
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
    return columns, pd.DataFrame([row for _, row in cells[1:]], columns=columns, dtype=str)


def _check_column_names(file: str, columns: list[str], first_row: int) -> None:
    """Comma-separated, ``interval_start`` first, ``da_price`` present, each name known, once."""
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
        if column_kind(name) is None:
            raise InputFormatError(
                file, f"unknown column; allowed: {ALLOWED_COLUMNS}", row=first_row, column=name
            )


def _data_row_numbers(first_row: int) -> Callable[[int], int]:
    """Position of a data row -> its line number in the file (column header: ``first_row``)."""
    return lambda i: first_row + 1 + i


def _parse_timestamps(
    file: str, stamps: pd.Series, row_of: Callable[[int], int]
) -> pd.DatetimeIndex:
    """The ``interval_start`` cells as a UTC index [ns]; each must be ISO 8601 with an offset."""
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
    return pd.DatetimeIndex(index).as_unit("ns")


def _check_steps(
    file: str,
    stamps: pd.Series,
    index: pd.DatetimeIndex,
    interval: int,
    row_of: Callable[[int], int],
) -> None:
    """No duplicate, increasing, whole minutes, on the header's ``interval`` [min] grid."""
    ns = index.asi8
    step = interval * _NS_PER_MIN
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
    if (ns % _NS_PER_MIN).any():
        i = int(np.argmax(ns % _NS_PER_MIN != 0))
        raise InputFormatError(
            file, "timestamps must fall on whole minutes", row=row_of(i), column=INDEX_NAME
        )
    if (diffs % step).any():
        i = int(np.argmax(diffs % step != 0)) + 1
        raise InputFormatError(
            file,
            f"{diffs[i - 1] // _NS_PER_MIN} min after the previous row; the header says "
            f"interval_minutes={interval}",
            row=row_of(i),
            column=INDEX_NAME,
        )
    if len(diffs) and most_common_step(diffs) != step:
        i = int(np.argmax(diffs != step)) + 1
        raise InputFormatError(
            file,
            f"rows are mostly {most_common_step(diffs) // _NS_PER_MIN} min apart but the header "
            f"says interval_minutes={interval}",
            row=row_of(i),
            column=INDEX_NAME,
        )


def _parse_column(
    file: str, name: str, text: pd.Series, row_of: Callable[[int], int]
) -> np.ndarray:
    """One column's cells: a flag column as bool, any other as float64."""
    if is_flag_column(name):
        return _parse_flags(file, name, text, row_of)
    return _parse_floats(file, name, text, row_of).to_numpy()


def _parse_flags(
    file: str, name: str, text: pd.Series, row_of: Callable[[int], int]
) -> np.ndarray:
    """``true``/``false`` (also ``True``/``False``/``1``/``0``) as bool."""
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
    return np.array([_TRUE[cell] for cell in flags], dtype=bool)


def _to_price_frame(
    file: str, frame: pd.DataFrame, header: Mapping[str, str], interval: int
) -> PriceFrame:
    """The schema check of :class:`PriceFrame`; its error is reported against ``file``."""
    try:
        return PriceFrame(frame, header["market_id"], header["currency"], interval)
    except DataQualityError as exc:
        raise InputFormatError(file, str(exc)) from None


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
