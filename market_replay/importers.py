"""Import vendor price files into a :class:`PriceFrame`, with quality checks.

One generic reader driven by the format TOML files (:mod:`market_replay.formats`):

1. read the CSV as text; a malformed file (empty, missing column,
   unparseable time or number, ragged row, mixed resolutions) raises
   :class:`InputFormatError` naming file, row and column;
2. turn each label into the naive local interval START (``label = "end"``:
   label minus the interval; ``24:00`` is the next midnight);
3. place each row on the UTC time line in the source's time zone; the
   format's DST flag decides the repeated fall-back hour;
4. run the checks of :mod:`market_replay.quality` and apply the policy.

ERCOT day-ahead + real-time join (``rt_path``): both files are read and
checked on their own, the policy is applied to each, then the result has the
real-time grid (15 min) and each quarter-hour takes the day-ahead price of the
hour that contains it (the day-ahead product is an hourly block, so its price
holds for each of its quarter-hours). Quarter-hours whose hour has no
day-ahead row are left out and counted in a ``join`` note; day-ahead hours
outside the real-time file are not written.
"""

from __future__ import annotations

import bisect
import csv
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from market_replay.formats import FormatSpec, TimeSpec, get_format
from market_replay.prices import (
    FLAG_PREFIX,
    INDEX_NAME,
    QUALITY_FLAG,
    REQUIRED_COLUMN,
    PriceFrame,
    is_price_column,
)
from market_replay.quality import (
    BLANKING_CHECKS,
    CHECKS,
    MAX_EXAMPLES,
    POLICIES,
    Policy,
    QualityIssue,
    QualityReport,
)
from vpp.config.models import MarketConfig, MarketRules, PriceLimits
from vpp.errors import DataQualityError, InputFormatError, QualityError
from vpp.timeutil import day_bounds_utc

log = structlog.get_logger(__name__)

_NS_PER_MIN = 60_000_000_000
_NA_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})
_HOUR_24 = re.compile(r"(?<!\d)24:00(?::00)?$")


@dataclass(frozen=True)
class ImportResult:
    """The canonical prices and the quality report of one import."""

    prices: PriceFrame
    report: QualityReport


# --------------------------------------------------------------------------- parsing


@dataclass
class _Parsed:
    """A source file as text-free arrays, one entry per data row, in file order."""

    file: str
    spec: FormatSpec
    rows: np.ndarray  # 1-based line numbers
    labels: list[str]  # the time cell(s) as written, for examples
    wall: pd.DatetimeIndex  # naive local interval START
    repeat: np.ndarray | None  # DST repeat flag per row, if the format has one
    values: pd.DataFrame  # canonical columns, float64, positional index
    step_minutes: int
    time_column: str


def _floats(
    file: str, column: str, canonical: str, cells: list[str], rows: np.ndarray
) -> np.ndarray:
    out = np.empty(len(cells), dtype="float64")
    for i, cell in enumerate(cells):
        text = cell.strip()
        if text.lower() in _NA_TOKENS:
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            raise InputFormatError(
                file,
                f"cannot parse {cell!r} as a number ({canonical})",
                row=int(rows[i]),
                column=column,
            ) from None
        if np.isinf(out[i]):
            raise InputFormatError(
                file, f"infinite value {cell!r}", row=int(rows[i]), column=column
            )
    return out


def _parse_times(
    file: str, column: str, fmt: str, cells: list[str], rows: np.ndarray
) -> pd.DatetimeIndex:
    """Parse with strptime ``fmt``; ``24:00`` is the next midnight. Error names the row."""
    series = pd.Series(cells, dtype=object).str.strip()
    is24 = series.str.contains(_HOUR_24).to_numpy(dtype=bool)
    fixed = series.where(~is24, series.str.replace(_HOUR_24, _zero_hour, regex=True))
    parsed = pd.to_datetime(fixed, format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputFormatError(
            file,
            f"cannot parse time {cells[i]!r} with format {fmt!r}",
            row=int(rows[i]),
            column=column,
        )
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    return index + pd.to_timedelta(is24.astype("int64"), unit="D")


def _zero_hour(match: re.Match[str]) -> str:
    return "00" + match.group(0)[2:]


def _parse(path: Path, spec: FormatSpec, zone_name: str | None) -> _Parsed:
    """Read a vendor file as ``spec`` describes it: the rows, the header, the local interval
    starts, the values, the resolution and the DST flags. Each step raises
    :class:`InputFormatError` naming the row and column of a malformed file."""
    file = str(path)
    required, optional = spec.resolve(zone_name)
    t = spec.time
    header, header_row, records, rows = _read_rows(path)
    position = _check_header(file, spec, zone_name, header, header_row, required, optional)
    if not records:
        raise InputFormatError(file, "no data rows after the header", row=header_row + 1)
    row_numbers = np.asarray(rows, dtype="int64")
    columns = list(zip(*records, strict=True))

    def cells(name: str) -> list[str]:
        return list(columns[position[name]])

    wall, labels = _wall_times(file, t, cells, row_numbers)
    values = pd.DataFrame(index=pd.RangeIndex(len(records)))
    for canonical, source in [*required.items(), *optional.items()]:
        if source in position:
            values[canonical] = _floats(file, source, canonical, cells(source), row_numbers)
    step = _resolution(file, spec, wall, row_numbers)
    if t.label == "end":
        wall = wall - pd.Timedelta(minutes=step)
    repeat = None
    if t.dst_flag_column is not None:
        repeat = np.array([c.strip() == t.dst_repeat_value for c in cells(t.dst_flag_column)])
    return _Parsed(
        file=file,
        spec=spec,
        rows=row_numbers,
        labels=labels,
        wall=pd.DatetimeIndex(wall),
        repeat=repeat,
        values=values,
        step_minutes=step,
        time_column=t.column,
    )


def _read_rows(path: Path) -> tuple[list[str], int, list[list[str]], list[int]]:
    """The header (first non-blank row), its line number, the non-blank data rows and their
    line numbers; a row with another field count than the header raises."""
    file = str(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            while header is not None and not any(c.strip() for c in header):
                header = next(reader, None)
            if header is None:
                raise InputFormatError(file, "empty file: no header row", row=1)
            header = [c.strip() for c in header]
            header_row = reader.line_num
            records: list[list[str]] = []
            rows: list[int] = []
            for record in reader:
                if not any(c.strip() for c in record):
                    continue
                if len(record) != len(header):
                    raise InputFormatError(
                        file,
                        f"{len(record)} fields but the header has {len(header)}",
                        row=reader.line_num,
                    )
                records.append(record)
                rows.append(reader.line_num)
    except FileNotFoundError:
        raise InputFormatError(file, "file not found") from None
    except UnicodeDecodeError:
        raise InputFormatError(file, "not UTF-8 text") from None
    except csv.Error as exc:
        raise InputFormatError(file, f"not valid CSV: {exc}") from None
    return header, header_row, records, rows


def _check_header(
    file: str,
    spec: FormatSpec,
    zone_name: str | None,
    header: list[str],
    header_row: int,
    required: Mapping[str, str],
    optional: Mapping[str, str],
) -> dict[str, int]:
    """Every column the format reads appears once; every column it needs is there (the error
    says why: another delimiter, or a zone the file does not have). Returns name -> field."""
    t = spec.time
    position = {name: i for i, name in enumerate(header)}
    needed = [t.column, t.date_column, t.dst_flag_column, *required.values()]
    read = {n for n in (*needed, *optional.values()) if n is not None}
    for i, field in enumerate(header):
        if field in read and header.index(field) != i:
            raise InputFormatError(
                file,
                f"column appears twice in the header (fields {header.index(field) + 1} and "
                f"{i + 1}); which one holds the data is ambiguous: remove or rename one",
                row=header_row,
                column=field,
            )
    for name in needed:
        if name is not None and name not in position:
            hint = f"the header has: {', '.join(header)}"
            if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
                hint = (
                    f"the header is one field {header[0]!r}: the file is not comma-separated "
                    "(this reader expects ',')"
                )
            if name in required.values() and spec.uses_zone:
                zones = spec.zones_in(header)
                chosen = zone_name or spec.default_zone
                listed = ", ".join(zones) or "none"
                hint = f"no column for zone {chosen!r}; zones in this file: {listed}"
            raise InputFormatError(
                file, f"missing column ({spec.name} needs it); {hint}", row=header_row, column=name
            )
    return position


def _wall_times(
    file: str, t: TimeSpec, cells: Callable[[str], list[str]], rows: np.ndarray
) -> tuple[pd.DatetimeIndex, list[str]]:
    """The naive local time of each row as labelled (date and time columns, or one column)
    and its label as written, for examples."""
    time_cells = cells(t.column)
    if t.date_column is not None and t.date_format is not None:
        dates = _parse_times(file, t.date_column, t.date_format, cells(t.date_column), rows)
        times = _parse_times(file, t.column, t.format, time_cells, rows)
        wall = dates + (times - pd.Timestamp("1900-01-01"))
        labels = [f"{d} {c}" for d, c in zip(cells(t.date_column), time_cells, strict=True)]
    else:
        wall = _parse_times(file, t.column, t.format, time_cells, rows)
        labels = [c.strip() for c in time_cells]
    return wall, labels


def _resolution(file: str, spec: FormatSpec, wall: pd.DatetimeIndex, rows: np.ndarray) -> int:
    """The rows' resolution [min]; mixed resolutions raise :class:`InputFormatError`.

    Measured on the sorted distinct times, so out-of-order rows and DST do not
    disturb it: the most common difference is the step; a smaller difference,
    one that is not a multiple of the step, or three equal longer differences in
    a row (a block at a coarser resolution) means the file mixes resolutions.
    """
    declared = spec.time.interval_minutes
    column = spec.time.column
    order = np.argsort(wall.asi8, kind="stable")
    ns = wall.asi8[order]
    keep = np.concatenate([[True], np.diff(ns) != 0])
    ns, order = ns[keep], order[keep]
    if len(ns) < 2:
        if declared is None:
            raise InputFormatError(
                file, "one row only: cannot tell the resolution", row=int(rows[0]), column=column
            )
        return declared
    diffs = np.diff(ns)
    uniques, counts = np.unique(diffs, return_counts=True)
    step = int(uniques[np.argmax(counts)])
    odd = (diffs < step) | (diffs % step != 0)
    longer = diffs > step
    run = np.zeros(len(diffs), dtype=bool)
    if len(diffs) >= 3:
        same = (diffs[2:] == diffs[1:-1]) & (diffs[1:-1] == diffs[:-2]) & longer[2:]
        run[2:] = same
    bad = odd | run
    if bad.any():
        i = int(np.argmax(bad))
        raise InputFormatError(
            file,
            f"mixed resolutions: this row is {diffs[i] // _NS_PER_MIN} min after the previous "
            f"time but most rows are {step // _NS_PER_MIN} min apart; split the file by resolution",
            row=int(rows[order[i + 1]]),
            column=column,
        )
    minutes = step // _NS_PER_MIN
    if step % _NS_PER_MIN or 1440 % minutes:
        raise InputFormatError(
            file,
            f"rows are {step / _NS_PER_MIN:g} min apart; the interval must divide a day",
            row=int(rows[order[1]]),
            column=column,
        )
    if declared is not None and minutes != declared:
        first = int(np.argmax(diffs == step))
        raise InputFormatError(
            file,
            f"rows are {minutes} min apart but format {spec.name} has {declared}-min rows",
            row=int(rows[order[first + 1]]),
            column=column,
        )
    return minutes


# --------------------------------------------------------------------------- analysis


@dataclass
class _Analysis:
    """A parsed source placed on the UTC time line, with its findings."""

    parsed: _Parsed
    frame: pd.DataFrame  # placed rows, one per interval (first of duplicates), sorted
    issues: list[QualityIssue]
    grid: pd.DatetimeIndex  # every interval from the first to the last
    timezone: str  # market time zone, for local days
    rows_read: int


def _longest_non_decreasing(keys: np.ndarray) -> np.ndarray:
    """Mask of one longest non-decreasing subsequence; the rest are out of order."""
    tails: list[int] = []
    tail_index: list[int] = []
    previous = np.full(len(keys), -1, dtype="int64")
    for i, key in enumerate(keys.tolist()):
        pos = bisect.bisect_right(tails, key)
        if pos > 0:
            previous[i] = tail_index[pos - 1]
        if pos == len(tails):
            tails.append(key)
            tail_index.append(i)
        else:
            tails[pos] = key
            tail_index[pos] = i
    keep = np.zeros(len(keys), dtype=bool)
    i = tail_index[-1] if tail_index else -1
    while i >= 0:
        keep[i] = True
        i = int(previous[i])
    return keep


class _Collector:
    def __init__(self, source: str, timezone: str) -> None:
        self.source = source
        self.timezone = timezone
        self.issues: list[QualityIssue] = []

    def local_days(self, intervals: pd.DatetimeIndex) -> tuple[date, ...]:
        if len(intervals) == 0:
            return ()
        return tuple(sorted(set(intervals.tz_convert(self.timezone).date)))

    def add(
        self,
        check: str,
        *,
        column: str | None = None,
        count: int,
        examples: Iterable[str],
        days: Iterable[date] = (),
        intervals: pd.DatetimeIndex | None = None,
        severity: str = "problem",
        detail: str = "",
        blank: bool | None = None,
    ) -> None:
        if count == 0:
            return
        intervals = intervals if intervals is not None else pd.DatetimeIndex([], tz="UTC")
        all_days = set(days) | set(self.local_days(intervals))
        issue = QualityIssue(
            check=check,
            source=self.source,
            column=column,
            count=count,
            examples=tuple(list(examples)[:MAX_EXAMPLES]),
            days=tuple(sorted(all_days)),
            severity="info" if severity == "info" else "problem",
            detail=detail,
            intervals=intervals,
            blank=check in BLANKING_CHECKS if blank is None else blank,
        )
        self.issues.append(issue)
        event = log.warning if issue.is_problem else log.info
        event(
            "quality_issue",
            check=check,
            source=self.source,
            column=column,
            count=count,
            days=len(issue.days),
            first=issue.examples[0] if issue.examples else None,
            severity=issue.severity,
        )


def _utc_text(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%MZ")


def _local_text(ts: pd.Timestamp, timezone: str) -> str:
    return ts.tz_convert(timezone).strftime("%Y-%m-%d %H:%M %Z")


def _runs(
    index: pd.DatetimeIndex, step: pd.Timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Consecutive runs in a sorted index: (first, last, length)."""
    if len(index) == 0:
        return []
    breaks = np.flatnonzero(np.diff(index.asi8) != step.value) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(index)]])
    return [(index[s], index[e - 1], int(e - s)) for s, e in zip(starts, ends, strict=True)]


def _times_text(count: int) -> str:
    if count == 1:
        return "(once; the fall-back day has this hour twice, which one is it?)"
    return f"({count} times, nothing tells which is which)"


def _dst_days(
    frame: pd.DataFrame, timezone: str, step_minutes: int, source: str
) -> QualityIssue | None:
    """Interval counts on the DST days present in ``frame`` (a note, not a problem)."""
    if frame.empty:
        return None
    local_days = sorted(set(frame.index.tz_convert(timezone).date))
    examples, found = [], []
    for day in local_days:
        start, end = day_bounds_utc(day, timezone)
        hours = (end - start) / pd.Timedelta(hours=1)
        if hours != 24:
            lo, hi = frame.index.searchsorted(start), frame.index.searchsorted(end)
            full = int((end - start) / pd.Timedelta(minutes=step_minutes))
            examples.append(f"{day}: {hours:g} h day, {hi - lo} of {full} intervals")
            found.append(day)
    if not found:
        return None
    return QualityIssue(
        check="dst_day",
        source=source,
        column=None,
        count=len(found),
        examples=tuple(examples),
        days=tuple(found),
        severity="info",
        detail="DST days: the short day has 23 h, the long day 25 h",
    )


@dataclass(frozen=True)
class _Placement:
    """Where each source row lands on the UTC time line (one entry per row, in file order)."""

    utc: pd.DatetimeIndex  # UTC interval start; the DST flag (or summer time) decides a repeat
    nonexistent: np.ndarray  # bool: the local time does not exist (spring forward)
    ambiguous: np.ndarray  # bool: the local time occurs twice (the fall-back hour)


def _analyse(
    parsed: _Parsed, market: MarketConfig, source_tz: str, rules_for: Callable[[date], MarketRules]
) -> _Analysis:
    """Place a parsed source on the UTC time line and run every check on it.

    The steps, in report order: place the rows; out-of-order rows; rows at
    non-existent local times; the repeated fall-back hour and stray DST flags;
    duplicates; the placed frame and its grid; gaps; the market checks of each
    column; the DST-day note. Rows that cannot be placed are left out of the
    frame; every finding goes to the report.
    """
    tz = market.timezone
    out = _Collector(Path(parsed.file).name, tz)
    placement = _place(parsed, source_tz)
    _check_out_of_order(out, parsed, placement.utc)
    placed = _check_nonexistent(out, parsed, placement.nonexistent, source_tz)
    unresolved, ambiguous_intervals = _check_repeated_hour(out, parsed, placement, source_tz)
    placed[unresolved] = False
    _check_stray_repeat_flags(out, parsed, placement, placed)
    _check_duplicates(out, parsed, placement.utc, placed, unresolved)
    frame, grid, affected_ambiguous = _placed_frame(
        parsed, placement.utc, placed, ambiguous_intervals
    )
    _check_gaps(out, frame, grid, affected_ambiguous, pd.Timedelta(minutes=parsed.step_minutes))
    _check_market_rules(out, parsed, frame, rules_for)
    note = _dst_days(frame, tz, parsed.step_minutes, out.source)
    if note is not None:
        out.issues.append(note)
    return _Analysis(
        parsed=parsed,
        frame=frame,
        issues=out.issues,
        grid=grid,
        timezone=tz,
        rows_read=len(parsed.rows),
    )


def _place(parsed: _Parsed, source_tz: str) -> _Placement:
    """Localise each naive wall time in ``source_tz``: its UTC start, and the DST cases."""
    wall = parsed.wall
    n = len(parsed.rows)
    dst_guess = ~parsed.repeat if parsed.repeat is not None else np.ones(n, dtype=bool)
    nonexistent = wall.tz_localize(source_tz, ambiguous=dst_guess, nonexistent="NaT").isna()
    nonexistent = np.asarray(nonexistent) & ~np.asarray(
        wall.tz_localize(source_tz, ambiguous=dst_guess, nonexistent="shift_forward").isna()
    )
    ambiguous = np.asarray(
        wall.tz_localize(source_tz, ambiguous="NaT", nonexistent="shift_forward").isna()
    )
    key = wall.tz_localize(source_tz, ambiguous=dst_guess, nonexistent="shift_forward")
    return _Placement(utc=key.tz_convert("UTC"), nonexistent=nonexistent, ambiguous=ambiguous)


def _check_out_of_order(out: _Collector, parsed: _Parsed, utc: pd.DatetimeIndex) -> None:
    """Rows outside the longest ordered run (in file order, on the DST-aware UTC key)."""
    in_order = _longest_non_decreasing(utc.asi8)
    bad = np.flatnonzero(~in_order)
    out.add(
        "out_of_order",
        count=len(bad),
        examples=[f"row {parsed.rows[i]}: {parsed.labels[i]}" for i in bad],
        days=[parsed.wall[i].date() for i in bad],
        intervals=pd.DatetimeIndex(utc[bad]).dropna() if len(bad) else None,
        detail="rows earlier than rows before them in the file",
    )


def _check_nonexistent(
    out: _Collector, parsed: _Parsed, nonexistent: np.ndarray, source_tz: str
) -> np.ndarray:
    """Rows at a local time skipped by spring forward: an empty one is a note, one with values
    a problem; both are left out. Returns the mask of rows still placed."""
    n = len(parsed.rows)
    values = parsed.values
    placed = np.ones(n, dtype=bool)
    empty_row = (
        values.isna().all(axis=1).to_numpy() if len(values.columns) else np.ones(n, dtype=bool)
    )
    for check, mask, detail in (
        (
            "dst_placeholder",
            nonexistent & empty_row,
            "row at a local time that does not exist (spring forward) with no values: removed",
        ),
        (
            "dst_nonexistent",
            nonexistent & ~empty_row,
            "row with values at a local time that does not exist (spring forward)",
        ),
    ):
        idx = np.flatnonzero(mask)
        out.add(
            check,
            count=len(idx),
            examples=[f"row {parsed.rows[i]}: {parsed.labels[i]} ({source_tz})" for i in idx],
            days=[parsed.wall[i].date() for i in idx],
            severity="info" if check == "dst_placeholder" else "problem",
            detail=detail,
        )
        placed &= ~mask
    return placed


def _check_repeated_hour(
    out: _Collector, parsed: _Parsed, placement: _Placement, source_tz: str
) -> tuple[np.ndarray, list[pd.Timestamp]]:
    """The fall-back hour: a note where the DST flag places both rows, a problem where nothing
    tells them apart. Returns the rows that cannot be placed and the UTC intervals they might
    be (both hours)."""
    wall = parsed.wall
    ambiguous_intervals: list[pd.Timestamp] = []
    amb_idx = np.flatnonzero(placement.ambiguous)
    resolved_examples: list[str] = []
    unresolved: list[int] = []
    resolved_days: list[date] = []
    for wall_time in sorted(set(wall[amb_idx])):
        group = amb_idx[wall[amb_idx] == wall_time]
        if parsed.repeat is not None:
            flagged = parsed.repeat[group]
            if flagged.sum() <= 1 and (~flagged).sum() <= 1:
                if len(group) == 2:
                    resolved_examples.append(
                        f"rows {parsed.rows[group[0]]}, {parsed.rows[group[1]]}: "
                        f"{parsed.labels[group[0]]} twice, second flagged"
                    )
                    resolved_days.append(wall_time.date())
                continue
        unresolved.extend(group.tolist())
        both = pd.DatetimeIndex([wall_time, wall_time]).tz_localize(
            source_tz, ambiguous=np.array([True, False])
        )
        ambiguous_intervals.extend(both.tz_convert("UTC"))
    out.add(
        "dst_repeat",
        count=len(resolved_examples),
        examples=resolved_examples,
        days=resolved_days,
        severity="info",
        detail="repeated fall-back hour placed by the format's DST flag",
    )
    unresolved_idx = np.asarray(sorted(unresolved), dtype="int64")
    no_flag = parsed.repeat is None
    out.add(
        "dst_ambiguous",
        count=len(unresolved_idx),
        examples=[
            f"row {parsed.rows[i]}: {parsed.labels[i]} "
            + _times_text(int((wall[unresolved_idx] == wall[i]).sum()))
            for i in unresolved_idx
        ],
        days=[wall[i].date() for i in unresolved_idx],
        intervals=pd.DatetimeIndex(sorted(set(ambiguous_intervals)))
        if ambiguous_intervals
        else None,
        detail=(
            "local time occurs twice on the fall-back day and the format has no DST flag"
            if no_flag
            else "repeated fall-back hour whose DST flags do not tell the two hours apart"
        ),
    )
    return unresolved_idx, ambiguous_intervals


def _check_stray_repeat_flags(
    out: _Collector, parsed: _Parsed, placement: _Placement, placed: np.ndarray
) -> None:
    """A DST repeat flag on a placed row outside the fall-back hour (formats with a flag)."""
    if parsed.repeat is None:
        return
    misplaced = np.flatnonzero(parsed.repeat & ~placement.ambiguous & placed)
    out.add(
        "dst_ambiguous",
        count=len(misplaced),
        examples=[f"row {parsed.rows[i]}: {parsed.labels[i]} flagged" for i in misplaced],
        days=[parsed.wall[i].date() for i in misplaced],
        intervals=pd.DatetimeIndex(placement.utc[misplaced]),
        detail="DST repeat flag on a row outside the fall-back hour",
    )


def _check_duplicates(
    out: _Collector,
    parsed: _Parsed,
    utc: pd.DatetimeIndex,
    placed: np.ndarray,
    unresolved_idx: np.ndarray,
) -> None:
    """Rows for the same UTC interval (placed rows) or the same label (unplaceable rows of a
    format without DST flag), reported as ``identical`` or ``conflicting`` values."""
    wall = parsed.wall
    values = parsed.values
    n = len(parsed.rows)
    keys = pd.Series(np.where(placed, utc.asi8, wall.asi8 - 1), dtype="int64")
    consider = placed | (np.isin(np.arange(n), unresolved_idx) & (parsed.repeat is None))
    dup_mask = keys.duplicated(keep=False).to_numpy() & consider
    dup_idx = np.flatnonzero(dup_mask)
    dup_examples: list[str] = []
    conflicting_intervals: list[pd.Timestamp] = []
    identical_intervals: list[pd.Timestamp] = []
    seen: set[int] = set()
    kind_of: dict[int, str] = {}
    for i in dup_idx:
        k = int(keys[i])
        if k in seen:
            continue
        seen.add(k)
        group = dup_idx[keys.to_numpy()[dup_idx] == k]
        block = values.iloc[group]
        same = bool(block.nunique(dropna=False).le(1).all()) if len(values.columns) else True
        rows_text = ", ".join(str(parsed.rows[g]) for g in group)
        kind_of[k] = "identical" if same else "conflicting"
        dup_examples.append(f"rows {rows_text}: {parsed.labels[group[0]]} ({kind_of[k]})")
        if placed[i]:
            (identical_intervals if same else conflicting_intervals).append(utc[i])
    for kind, kind_intervals in (
        ("identical", identical_intervals),
        ("conflicting", conflicting_intervals),
    ):
        kind_examples = [e for e in dup_examples if e.endswith(f"({kind})")]
        if not kind_examples:
            continue
        groups = [int(k) for k in seen if kind_of[k] == kind]
        members = dup_idx[np.isin(keys.to_numpy()[dup_idx], groups)]
        out.add(
            "duplicate",
            count=len(members) - len(groups),
            examples=kind_examples,
            days=[wall[i].date() for i in members],
            intervals=pd.DatetimeIndex(sorted(kind_intervals), tz="UTC")
            if kind_intervals
            else None,
            blank=kind == "conflicting",
            detail=f"extra rows for an interval already present ({kind} values"
            + ("; the value is unknown, NaN under flag)" if kind == "conflicting" else ")"),
        )


def _placed_frame(
    parsed: _Parsed,
    utc: pd.DatetimeIndex,
    placed: np.ndarray,
    ambiguous_intervals: list[pd.Timestamp],
) -> tuple[pd.DataFrame, pd.DatetimeIndex, pd.DatetimeIndex]:
    """The placed rows (first row per interval, sorted), the full grid from the first to the
    last interval (the unplaceable ambiguous ones included) and those ambiguous intervals."""
    frame = parsed.values[placed].copy()
    frame.index = pd.DatetimeIndex(utc[placed]).as_unit("ns").rename(INDEX_NAME)
    frame = frame[~frame.index.duplicated(keep="first")].sort_index()
    affected_ambiguous = pd.DatetimeIndex(sorted(set(ambiguous_intervals)), tz="UTC")
    bounds = frame.index.union(affected_ambiguous)
    if len(bounds) == 0:
        raise InputFormatError(parsed.file, "no row can be placed on the time line")
    step = pd.Timedelta(minutes=parsed.step_minutes)
    grid = pd.date_range(bounds[0], bounds[-1], freq=step, name=INDEX_NAME).as_unit("ns")
    return frame, grid, affected_ambiguous


def _check_gaps(
    out: _Collector,
    frame: pd.DataFrame,
    grid: pd.DatetimeIndex,
    affected_ambiguous: pd.DatetimeIndex,
    step: pd.Timedelta,
) -> None:
    """Intervals of the grid with no row (the ambiguous ones are reported already)."""
    tz = out.timezone
    missing = grid.difference(frame.index).difference(affected_ambiguous)
    runs = _runs(missing, step)
    out.add(
        "gap",
        count=len(missing),
        examples=[
            f"{_local_text(a, tz)} .. {_local_text(b, tz)} ({k} interval{'s' if k > 1 else ''})"
            for a, b, k in runs
        ],
        intervals=missing,
        detail="intervals with no row",
    )


def _check_market_rules(
    out: _Collector,
    parsed: _Parsed,
    frame: pd.DataFrame,
    rules_for: Callable[[date], MarketRules],
) -> None:
    """Per column, against the rules in force on each local day: the product interval, NaN,
    zero-coded days and (for prices) the floor/cap."""
    tz = out.timezone
    local_days = np.asarray(frame.index.tz_convert(tz).date)
    unique_days = sorted(set(local_days.tolist()))
    rules = {d: rules_for(d) for d in unique_days}
    for column in parsed.values.columns:
        _check_interval(out, column, frame, local_days, rules, parsed.step_minutes)
        series = frame[column]
        _check_nan(out, column, series, tz)
        _check_zero_days(out, column, series, local_days, parsed.step_minutes)
        if is_price_column(column):
            _check_range(out, column, series, frame.index, local_days, rules, tz)


def _check_interval(
    out: _Collector,
    column: str,
    frame: pd.DataFrame,
    local_days: np.ndarray,
    rules: Mapping[date, MarketRules],
    step_minutes: int,
) -> None:
    """Days on which the data's resolution differs from the market's product interval (the
    day-ahead rule for ``da_price*``, the real-time settlement rule for ``rt_price*``)."""
    expected_minutes = None
    if column.startswith("da_price"):
        expected_minutes = {d: r.day_ahead.interval_minutes for d, r in rules.items()}
    elif column.startswith("rt_price"):
        expected_minutes = {d: r.real_time.settlement_interval_minutes for d, r in rules.items()}
    if expected_minutes is None:
        return
    wrong = sorted(d for d, m in expected_minutes.items() if m != step_minutes)
    if not wrong:
        return
    mask = np.isin(local_days, np.array(wrong, dtype=object))
    out.add(
        "interval_mismatch",
        column=column,
        count=int(mask.sum()),
        examples=[
            f"{d}: data every {step_minutes} min, market {expected_minutes[d]} min" for d in wrong
        ],
        days=wrong,
        intervals=frame.index[mask],
        detail="resolution differs from the market's product interval",
    )


def _check_zero_days(
    out: _Collector, column: str, series: pd.Series, local_days: np.ndarray, step_minutes: int
) -> None:
    """Whole local days of exact zeros in one column: missing data coded as 0."""
    zero_days = _zero_days(series, local_days, out.timezone, step_minutes)
    if not zero_days:
        return
    mask = np.isin(local_days, np.array(zero_days, dtype=object))
    out.add(
        "zero_day",
        column=column,
        count=len(zero_days),
        examples=[f"{d}: all {int((local_days == d).sum())} values are 0" for d in zero_days],
        days=zero_days,
        intervals=series.index[mask],
        detail="a whole local day of exact zeros: missing data coded as 0",
    )


def _zero_days(series: pd.Series, local_days: np.ndarray, tz: str, step_minutes: int) -> list[date]:
    """Local days where the column is exactly 0 on at least half the day's intervals and never
    anything else."""
    present = series.notna().to_numpy()
    zero = (series.to_numpy() == 0) & present
    frame = pd.DataFrame({"day": local_days, "present": present, "zero": zero})
    grouped = frame.groupby("day").sum()
    out = []
    for day, row in grouped.iterrows():
        if row["present"] == 0 or row["zero"] != row["present"]:
            continue
        start, end = day_bounds_utc(day, tz)
        if row["present"] * 2 >= (end - start) // pd.Timedelta(minutes=step_minutes):
            out.append(day)
    return out


# --------------------------------------------------------------------------- policy


def _apply(analysis: _Analysis, policy: str, drop: set[date]) -> pd.DataFrame:
    """The frame after the policy (``error`` is handled by the caller)."""
    frame = analysis.frame
    tz = analysis.timezone
    if policy == "drop-day":
        local_days = np.asarray(frame.index.tz_convert(tz).date)
        return frame[~np.isin(local_days, np.array(sorted(drop), dtype=object))]
    if policy == "flag":
        frame = frame.reindex(analysis.grid)
        frame.index.name = INDEX_NAME
        value_cols = list(frame.columns)
        flags: dict[str, np.ndarray] = {}
        for issue in analysis.issues:
            if not issue.is_problem or len(issue.intervals) == 0:
                continue
            mask = frame.index.isin(issue.intervals)
            name = FLAG_PREFIX + issue.check
            flags[name] = flags.get(name, np.zeros(len(frame), dtype=bool)) | mask
            if issue.blank:
                targets = [issue.column] if issue.column else value_cols
                frame.loc[mask, targets] = np.nan
        frame[QUALITY_FLAG] = np.zeros(len(frame), dtype=bool)
        for name in sorted(flags, key=lambda f: CHECKS.index(f[len(FLAG_PREFIX) :])):
            frame[name] = flags[name]
            frame[QUALITY_FLAG] = frame[QUALITY_FLAG].to_numpy() | flags[name]
        return frame
    return frame


# --------------------------------------------------------------------------- entry point


def import_prices(
    path: str | os.PathLike[str],
    fmt: str | FormatSpec,
    market: MarketConfig,
    *,
    zone: str | None = None,
    policy: Policy | str = "error",
    rt_path: str | os.PathLike[str] | None = None,
) -> ImportResult:
    """Read a vendor file, check it, apply ``policy`` and return canonical prices.

    ``rt_path`` joins a real-time file (format ``fmt.rt_companion``) onto a
    day-ahead file; see the module docstring for the rule.

    Raises :class:`InputFormatError` for a malformed file, :class:`QualityError`
    (with the report) when ``policy == "error"`` and a check found a problem,
    and :class:`vpp.DataQualityError` when nothing is left to write.
    """
    spec, rt_spec = _formats(fmt, policy, rt_path)
    rules_for = _rules_on_day(market, path)
    analyses = [
        _analyse(parsed, market, source_tz, rules_for)
        for parsed, source_tz in _parse_sources(market, zone, (path, spec), (rt_path, rt_spec))
    ]
    report = QualityReport(
        sources=[str(a.parsed.file) for a in analyses],
        format=spec.name if rt_spec is None else f"{spec.name}+{rt_spec.name}",
        market_id=market.id,
        policy=policy,
        rows_read=sum(a.rows_read for a in analyses),
        issues=[i for a in analyses for i in a.issues],
    )
    _reject_under_error_policy(report)
    frame, interval = _apply_policy(analyses, report)
    _check_writable(frame, report, path, spec)
    prices = PriceFrame(frame, market.id, market.currency, interval)
    report.intervals_written = len(prices)
    report.outcome = f"{len(prices)} intervals"
    log.info(
        "prices_imported",
        sources=report.sources,
        format=report.format,
        market_id=market.id,
        policy=policy,
        rows_read=report.rows_read,
        intervals=len(prices),
        days=len(prices.days(market.timezone)),
        days_dropped=len(report.days_dropped),
        problems=report.summary(),
    )
    return ImportResult(prices, report)


def _formats(
    fmt: str | FormatSpec, policy: str, rt_path: str | os.PathLike[str] | None
) -> tuple[FormatSpec, FormatSpec | None]:
    """The policy is known; the format, and its real-time companion when ``rt_path`` is given."""
    if policy not in POLICIES:
        raise DataQualityError(f"policy {policy!r}: must be one of {', '.join(POLICIES)}")
    spec = fmt if isinstance(fmt, FormatSpec) else get_format(fmt)
    rt_spec = None
    if rt_path is not None:
        if spec.rt_companion is None:
            raise DataQualityError(
                f"format {spec.name} takes no real-time file (--rt); formats that do: ercot-dam"
            )
        rt_spec = get_format(spec.rt_companion)
    return spec, rt_spec


def _rules_on_day(
    market: MarketConfig, path: str | os.PathLike[str]
) -> Callable[[date], MarketRules]:
    """``market.rules_on`` cached per day; a day no rule covers names the file."""
    rule_cache: dict[date, MarketRules] = {}

    def rules_for(day: date) -> MarketRules:
        if day not in rule_cache:
            try:
                rule_cache[day] = market.rules_on(day)
            except ValueError as exc:
                raise DataQualityError(f"{path}: {exc}; choose another --market") from None
        return rule_cache[day]

    return rules_for


def _parse_sources(
    market: MarketConfig,
    zone: str | None,
    *sources: tuple[str | os.PathLike[str] | None, FormatSpec | None],
) -> Iterable[tuple[_Parsed, str]]:
    """Each given source parsed, with the time zone its labels are in (one at a time, so a
    malformed second file is reported after the first one's checks)."""
    for source_path, source_spec in sources:
        if source_path is None or source_spec is None:
            continue
        parsed = _parse(Path(source_path), source_spec, zone)
        source_tz = market.timezone if source_spec.timezone == "market" else source_spec.timezone
        yield parsed, source_tz


def _reject_under_error_policy(report: QualityReport) -> None:
    """Under policy ``error`` any problem fails the import with the whole report."""
    if report.policy == "error" and report.problems:
        report.outcome = "failed: nothing written"
        log.error("import_rejected", sources=report.sources, problems=report.summary())
        raise QualityError(
            f"{', '.join(report.sources)}: {len(report.problems)} quality problem(s) "
            f"({report.summary()}) under policy 'error'; nothing written. Use --on-missing "
            "drop-day or flag to import anyway",
            report,
        )


def _apply_policy(analyses: list[_Analysis], report: QualityReport) -> tuple[pd.DataFrame, int]:
    """Each source after the policy, the day-ahead joined onto the real-time grid if there are
    two; the interval [min]. Records the dropped days and the join note in ``report``."""
    drop = report.problem_days() if report.policy == "drop-day" else set()
    frames = [_apply(a, report.policy, drop) for a in analyses]
    if len(frames) == 1:
        frame, interval = frames[0], analyses[0].parsed.step_minutes
    else:
        frame, interval, note = _join(frames[0], analyses[0], frames[1], analyses[1])
        report.issues.append(note)
    report.days_dropped = tuple(sorted(drop))
    return frame, interval


def _check_writable(
    frame: pd.DataFrame, report: QualityReport, path: str | os.PathLike[str], spec: FormatSpec
) -> None:
    """Some value is left after the policy, and there is a day-ahead price."""
    if (
        frame.empty
        or frame.drop(
            columns=[c for c in frame.columns if c == QUALITY_FLAG or c.startswith(FLAG_PREFIX)]
        )
        .isna()
        .all()
        .all()
    ):
        raise DataQualityError(
            f"{', '.join(report.sources)}: nothing left to write after policy {report.policy!r} "
            f"({report.summary()})"
        )
    if REQUIRED_COLUMN not in frame.columns:
        raise DataQualityError(
            f"{path}: format {spec.name} gives no day-ahead price; a canonical file needs "
            "da_price (join a day-ahead file, e.g. --format ercot-dam DAM.csv --rt RTM.csv)"
        )


def _join(
    da: pd.DataFrame, da_analysis: _Analysis, rt: pd.DataFrame, rt_analysis: _Analysis
) -> tuple[pd.DataFrame, int, QualityIssue]:
    """Day-ahead onto the real-time grid: each RT interval takes the DA price of its DA interval."""
    da_step = da_analysis.parsed.step_minutes
    rt_step = rt_analysis.parsed.step_minutes
    if da_step % rt_step:
        raise DataQualityError(
            f"cannot join {da_step}-min day-ahead with {rt_step}-min real-time prices: the "
            "day-ahead interval must be a multiple of the real-time one"
        )
    overlap = set(da.columns) & set(rt.columns) - {QUALITY_FLAG}
    if overlap - {c for c in overlap if c.startswith(FLAG_PREFIX)}:
        raise DataQualityError(f"both files give {sorted(overlap)}; cannot join")
    da_ns = da.index.asi8
    rt_ns = rt.index.asi8
    pos = np.searchsorted(da_ns, rt_ns, side="right") - 1
    width = da_step * _NS_PER_MIN
    inside = (
        (pos >= 0) & (rt_ns < da_ns[np.clip(pos, 0, None)] + width)
        if len(da_ns)
        else (np.zeros(len(rt_ns), dtype=bool))
    )
    taken = da.iloc[pos[inside]]
    joined = rt[inside].copy()
    for column in da.columns:
        values = taken[column].to_numpy()
        if column in joined.columns:  # flag columns from both sides
            joined[column] = joined[column].to_numpy() | values
        else:
            joined[column] = values
    value_cols = [c for c in joined.columns if c != QUALITY_FLAG and not c.startswith(FLAG_PREFIX)]
    ordered = sorted(value_cols, key=lambda c: (not c.startswith("da_"), not is_price_column(c)))
    flags = [c for c in joined.columns if c not in value_cols]
    flags = ([QUALITY_FLAG] if QUALITY_FLAG in flags else []) + sorted(
        (c for c in flags if c != QUALITY_FLAG), key=lambda f: CHECKS.index(f[len(FLAG_PREFIX) :])
    )
    joined = joined[ordered + flags]
    used = set(pos[inside].tolist())
    unused = len(da) - len(used)
    note = QualityIssue(
        check="join",
        source=f"{Path(da_analysis.parsed.file).name}+{Path(rt_analysis.parsed.file).name}",
        column="da_price",
        count=int(inside.sum()),
        examples=(
            f"{int(inside.sum())} RT intervals kept with the DA price of their {da_step}-min "
            "interval",
            f"{int((~inside).sum())} RT intervals without a DA row left out",
            f"{unused} DA intervals outside the RT file not written",
        ),
        days=(),
        severity="info",
        detail="day-ahead price repeated on each real-time interval of its hour",
    )
    return joined, rt_step, note


# --------------------------------------------------------------------------- canonical check


def _check_nan(out: _Collector, column: str, series: pd.Series, tz: str) -> None:
    """Report empty or NaN values of one column."""
    nan = series.isna().to_numpy()
    out.add(
        "nan",
        column=column,
        count=int(nan.sum()),
        examples=[_local_text(t, tz) for t in series.index[nan][:MAX_EXAMPLES]],
        intervals=series.index[nan],
        detail="empty or NaN value in the source",
    )


def _check_range(
    out: _Collector,
    column: str,
    series: pd.Series,
    index: pd.DatetimeIndex,
    local_days: np.ndarray,
    rules: Mapping[date, MarketRules],
    tz: str,
) -> None:
    """Report prices outside the floor/cap in force on each value's local day (only where
    that day's ``price_limits.applies_to`` covers the column's kind)."""
    idx, floors, caps = _out_of_limits(column, series.to_numpy(), local_days, rules)
    vals = series.to_numpy()
    out.add(
        "out_of_range",
        column=column,
        count=len(idx),
        examples=[
            f"{_local_text(index[i], tz)}: {vals[i]:g} not in [{floors[i]:g}, {caps[i]:g}]"
            for i in idx
        ],
        intervals=index[idx],
        detail="price outside the market's floor/cap in force that day (price_limits)",
    )


def _price_kind(column: str) -> str:
    return "day_ahead" if column.startswith("da_") else "real_time"


def _out_of_limits(
    column: str, values: np.ndarray, local_days: np.ndarray, rules: Mapping[date, MarketRules]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions of values beyond the floor/cap in force on their day, floors and caps."""
    kind = _price_kind(column)
    limits = [rules[d].price_limits for d in local_days.tolist()]
    floors = np.array([p.floor_per_mwh if kind in p.applies_to else -np.inf for p in limits])
    caps = np.array([p.cap_per_mwh if kind in p.applies_to else np.inf for p in limits])
    with np.errstate(invalid="ignore"):
        idx = np.flatnonzero((values < floors) | (values > caps))
    return idx, floors, caps


@dataclass(frozen=True)
class PriceRuleBreaks:
    """Prices beyond the market's floor/cap in force on their day (see :func:`price_rule_breaks`)."""

    count: int
    column: str
    interval_start: pd.Timestamp
    value: float
    market_id: str
    limits: PriceLimits
    timezone: str
    currency: str

    def describe(self, file: str) -> str:
        """One line naming the file, the first offending interval, value and rule."""
        limits = self.limits
        more = f"; {self.count} value(s) in all" if self.count > 1 else ""
        return (
            f"{file}: {self.column} = {self.value:g} {self.currency}/MWh at "
            f"{_local_text(self.interval_start, self.timezone)} is outside the {self.market_id} "
            f"price limits [{limits.floor_per_mwh:g}, {limits.cap_per_mwh:g}] in force since "
            f"{limits.effective_date} ({limits.source}){more}"
        )


def price_rule_breaks(prices: PriceFrame, market: MarketConfig) -> PriceRuleBreaks | None:
    """Every price beyond the floor/cap in force on its local market day, or None.

    Each value is checked against the rule version of its own day (ERCOT's cap
    of 9,000 before 2022-01-01 and 5,000 after) and only for the column kinds the
    version's ``applies_to`` names. Raises :class:`DataQualityError` for a day no
    rule covers.
    """
    frame = prices.frame
    if frame.empty:
        return None
    tz = market.timezone
    local_days = np.asarray(frame.index.tz_convert(tz).date)
    rules: dict[date, MarketRules] = {}
    for day in sorted(set(local_days.tolist())):
        try:
            rules[day] = market.rules_on(day)
        except ValueError as exc:
            raise DataQualityError(str(exc)) from None
    first: tuple[pd.Timestamp, str, float, PriceLimits] | None = None
    count = 0
    for column in prices.price_columns:
        values = frame[column].to_numpy(float)
        idx, _, _ = _out_of_limits(column, values, local_days, rules)
        count += len(idx)
        if len(idx) and (first is None or frame.index[idx[0]] < first[0]):
            i = int(idx[0])
            first = (frame.index[i], column, float(values[i]), rules[local_days[i]].price_limits)
    if first is None:
        return None
    stamp, column, value, limits = first
    return PriceRuleBreaks(count, column, stamp, value, market.id, limits, tz, prices.currency)


def check_prices(
    prices: PriceFrame, market: MarketConfig | None = None, *, source: str = ""
) -> list[QualityIssue]:
    """Findings in a canonical frame: holes, NaN, zero days, flagged intervals, and with
    ``market`` also prices outside its floor/cap and the market's product intervals.

    The structure (UTC, order, duplicates, constant interval) is already guaranteed by
    :class:`PriceFrame`; these are the content checks.
    """
    tz = market.timezone if market is not None else "UTC"
    out = _Collector(source, tz)
    frame = prices.frame
    if frame.empty:
        return []
    step = pd.Timedelta(minutes=prices.interval_minutes)
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=step).as_unit("ns")
    missing = grid.difference(frame.index)
    out.add(
        "gap",
        count=len(missing),
        examples=[
            f"{_local_text(a, tz)} .. {_local_text(b, tz)} ({k} intervals)"
            for a, b, k in _runs(missing, step)
        ],
        intervals=missing,
        detail="intervals with no row (whole days dropped by policy drop-day show up here)",
    )
    local_days = np.asarray(frame.index.tz_convert(tz).date)
    rules: dict[date, MarketRules] = {}
    if market is not None:
        for day in sorted(set(local_days.tolist())):
            try:
                rules[day] = market.rules_on(day)
            except ValueError as exc:
                raise DataQualityError(f"{source}: {exc}") from None
    for column in frame.columns:
        if column == QUALITY_FLAG or column.startswith(FLAG_PREFIX):
            continue
        series = frame[column]
        _check_nan(out, column, series, tz)
        zero_days = _zero_days(series, local_days, tz, prices.interval_minutes)
        out.add(
            "zero_day",
            column=column,
            count=len(zero_days),
            examples=[f"{d}: all values are 0" for d in zero_days],
            days=zero_days,
        )
        if rules and is_price_column(column):
            _check_range(out, column, series, frame.index, local_days, rules, tz)
    for column in frame.columns:
        if column.startswith(FLAG_PREFIX):
            mask = frame[column].to_numpy()
            out.add(
                "flagged",
                column=column,
                count=int(mask.sum()),
                examples=[_local_text(t, tz) for t in frame.index[mask][:MAX_EXAMPLES]],
                intervals=frame.index[mask],
                detail="interval flagged at import",
            )
    return out.issues
