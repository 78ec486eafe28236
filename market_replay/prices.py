"""The one in-memory price type of the data path: :class:`PriceFrame`.

Every producer of prices returns one (the vendor importers
:func:`market_replay.import_prices`, the canonical reader
:func:`market_replay.read_prices`, the backtest's regridding
``vpp.backtest.run.on_schedule_grid``) and every consumer reads one (the replay
exchange and its HTTP server through ``.frame``, the forecasters through the
exchange's published history, settlement, ``vpp plan``, ``vpp data``). It is
built and checked in one place, the :class:`PriceFrame` constructor, so a
wrong frame fails once with one clear error, :class:`PriceFrameError`.

Schema
    ``frame`` is a pandas DataFrame indexed by a tz-aware UTC
    ``DatetimeIndex`` named ``interval_start`` (nanosecond unit), strictly
    increasing: each row is the interval that *starts* at its label and
    lasts ``interval_minutes`` (``dt_h`` hours). Every gap between two rows
    is a whole multiple of the interval and the most common gap equals it:
    rows sit on one constant grid. Whole local days may be absent (policy
    ``drop-day``); :meth:`PriceFrame.days` lists the days that are complete.

Metadata (attributes of the frozen value, not of the DataFrame)
    ================== ==========================================================
    ``market_id``      the market (and bidding zone) the prices are for, as in
                       ``config/markets/<market_id>.toml``
    ``currency``       ISO 4217 code of every price column (``EUR``, ``CNY``, ...)
    ``interval_minutes`` the interval length [min]; ``dt_h`` gives it [h]
    ================== ==========================================================

Columns
    ===================================== ====================== ===============
    column                                meaning                unit
    ===================================== ====================== ===============
    ``da_price`` (required)               day-ahead price        [currency/MWh]
    ``rt_price``                          real-time price        [currency/MWh]
    ``rt_price_up``, ``rt_price_down``    two-price imbalance    [currency/MWh]
                                          (up/down regulating)
    other ``da_price_*``/``rt_price_*``   further prices         [currency/MWh]
    ``*_mw`` (``load_forecast_mw``,       published              [MW]
    ``renewable_forecast_mw``,            fundamentals
    ``bidding_space_mw``, ...)
    ``quality_flag``                      any check flagged the  bool
                                          interval (policy
                                          ``flag``)
    ``flag_<check>`` (``flag_gap``, ...)  that check flagged it  bool
    ===================================== ====================== ===============

    Price and ``_mw`` columns are float64 and finite or NaN; a flagged value
    that was missing in the source (gap, NaN, zero-coded day, ambiguous DST
    hour, conflicting duplicate) is NaN, never a guess. :meth:`PriceFrame.unit`
    names the unit of a column.

Where it flows
    ================================= ==========================================
    made by                           ``read_prices`` (canonical file),
                                      ``import_prices`` (vendor files),
                                      ``vpp.backtest.run.on_schedule_grid``
                                      (day-ahead spread onto the schedule grid)
    read by                           ``vpp backtest``, ``vpp plan``, ``vpp
                                      daemon --simulate``, ``vpp data``; the
                                      replay exchange takes ``.frame``
    seen by forecasters as            the exchange's published history
                                      (``ReplayExchange.history``, over HTTP
                                      ``vpp.gateway.HttpExchange.history``): the
                                      value columns above, same names and
                                      units, only what is published at the
                                      decision time -- a view, not a
                                      ``PriceFrame``
    ================================= ==========================================

Errors
    A frame that is not a DataFrame, has a naive or non-datetime index, or an
    ``interval_minutes`` that is not an int raises :class:`PriceFrameTypeError`
    (a ``TypeError``, as for every naive input); a missing ``da_price``, an
    unknown, non-numeric or infinite column, an index off the grid or out of
    order, a bad currency or market id raise :class:`PriceFrameError`. Both
    are :class:`PriceFrameError`, a :class:`vpp.DataQualityError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from vpp.errors import DataQualityError
from vpp.timeutil import day_bounds_utc, require_aware, zone

INDEX_NAME = "interval_start"
REQUIRED_COLUMN = "da_price"
PRICE_COLUMNS = ("da_price", "rt_price", "rt_price_up", "rt_price_down")
QUALITY_FLAG = "quality_flag"
FLAG_PREFIX = "flag_"
#: The unit of the fundamentals columns (names ending ``_mw``).
FUNDAMENTALS_UNIT = "MW"

_NS_PER_MIN = 60_000_000_000
_PRICE_RE = re.compile(r"^(da|rt)_price(_[a-z0-9]+)*$")
_MW_RE = re.compile(r"^[a-z][a-z0-9_]*_mw$")
_FLAG_RE = re.compile(r"^flag_[a-z0-9_]+$")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
ALLOWED_COLUMNS = (
    "da_price, rt_price, rt_price_up, rt_price_down (or other da_price_*/rt_price_*), "
    "*_mw fundamentals, quality_flag, flag_*"
)


class PriceFrameError(DataQualityError):
    """A price frame breaks the schema of :mod:`market_replay.prices`."""


class PriceFrameTypeError(PriceFrameError, TypeError):
    """A price frame has the wrong type: not a DataFrame, a naive index, a non-int interval."""


def is_price_column(name: str) -> bool:
    """True for ``da_price``, ``rt_price``, ``rt_price_up``... [currency/MWh]."""
    return bool(_PRICE_RE.match(name))


def is_flag_column(name: str) -> bool:
    """True for ``quality_flag`` and ``flag_<check>`` (bool columns)."""
    return name == QUALITY_FLAG or bool(_FLAG_RE.match(name))


def column_kind(name: str) -> str | None:
    """``"flag"`` (bool), ``"value"`` (float: a price or a ``_mw`` fundamental) or None."""
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
    A naive index raises :class:`PriceFrameTypeError` (a ``TypeError``);
    other problems raise :class:`PriceFrameError` (a
    :class:`vpp.DataQualityError`). Equality compares metadata and the frame
    exactly (NaN equals NaN, column order matters).
    """

    frame: pd.DataFrame
    market_id: str
    currency: str
    interval_minutes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame", _normalise(self.frame, self.interval_minutes))
        if not self.market_id or "\n" in self.market_id:
            raise PriceFrameError(f"market_id must be a non-empty line, got {self.market_id!r}")
        if not _CURRENCY_RE.match(self.currency):
            raise PriceFrameError(f"currency must be an ISO 4217 code, got {self.currency!r}")

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
    def dt_h(self) -> float:
        """The interval length [h] (``energy_mwh = power_mw * dt_h``)."""
        return self.interval_minutes / 60

    @property
    def price_unit(self) -> str:
        """The unit of every price column, e.g. ``"EUR/MWh"``."""
        return f"{self.currency}/MWh"

    def unit(self, column: str) -> str:
        """The unit of ``column``: ``"EUR/MWh"`` for prices, ``"MW"``, or ``"bool"`` for flags.

        Raises :class:`KeyError` for a column the frame does not have.
        """
        if column not in self.frame.columns:
            raise KeyError(f"{column!r} is not a column; the frame has {list(self.frame.columns)}")
        if is_flag_column(column):
            return "bool"
        return self.price_unit if is_price_column(column) else FUNDAMENTALS_UNIT

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

    def with_frame(self, frame: pd.DataFrame) -> PriceFrame:
        """The same market, currency and interval over ``frame`` (validated again)."""
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
        return self.with_frame(self.frame.iloc[index.searchsorted(start) : index.searchsorted(end)])

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


# ---------------------------------------------------------------------- validation


def _normalise(frame: pd.DataFrame, interval_minutes: int) -> pd.DataFrame:
    """The schema check: types, then the UTC index, then the columns, then the grid."""
    _check_types(frame, interval_minutes)
    out = frame.copy()
    out.index = frame.index.tz_convert("UTC").as_unit("ns").rename(INDEX_NAME)
    out.index.freq = None
    out.columns = [str(c) for c in out.columns]
    _normalise_columns(out)
    _check_grid(out.index, interval_minutes)
    return out


def _check_types(frame: object, interval_minutes: object) -> None:
    """A DataFrame with a tz-aware DatetimeIndex and an int interval that divides a day."""
    if not isinstance(frame, pd.DataFrame):
        raise PriceFrameTypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(interval_minutes, bool) or not isinstance(interval_minutes, int | np.integer):
        raise PriceFrameTypeError(f"interval_minutes must be an int, got {interval_minutes!r}")
    if interval_minutes <= 0 or 1440 % interval_minutes:
        raise PriceFrameError(
            f"interval_minutes = {interval_minutes}: must divide a day (5, 15, 30, 60, ...)"
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise PriceFrameTypeError(
            f"frame index must be a tz-aware DatetimeIndex, got {type(index).__name__}"
            f" with tz={getattr(index, 'tz', None)}"
        )


def _normalise_columns(out: pd.DataFrame) -> None:
    """``da_price`` present; every column known; flags bool; values finite float64 (in place)."""
    if REQUIRED_COLUMN not in out.columns:
        raise PriceFrameError(f"frame needs a {REQUIRED_COLUMN!r} column; got {list(out.columns)}")
    for name in out.columns:
        kind = column_kind(name)
        if kind is None:
            raise PriceFrameError(f"unknown column {name!r}; allowed: {ALLOWED_COLUMNS}")
        if kind == "flag":
            if out[name].dtype != bool:
                raise PriceFrameError(f"flag column {name!r} must be bool, got {out[name].dtype}")
            continue
        try:
            values = out[name].astype("float64")
        except (TypeError, ValueError) as exc:
            raise PriceFrameError(f"column {name!r} must be numeric: {exc}") from None
        if np.isinf(values.to_numpy()).any():
            raise PriceFrameError(f"column {name!r} holds an infinite value")
        out[name] = values


def _check_grid(index: pd.DatetimeIndex, interval_minutes: int) -> None:
    """Whole minutes, strictly increasing, on one ``interval_minutes`` grid (mostly dense)."""
    ns = index.asi8
    if not len(ns):
        return
    if (ns % _NS_PER_MIN).any():
        raise PriceFrameError("interval_start must fall on whole minutes")
    diffs = np.diff(ns)
    step = interval_minutes * _NS_PER_MIN
    if (diffs <= 0).any():
        bad = int(np.argmax(diffs <= 0)) + 1
        raise PriceFrameError(
            f"interval_start must be strictly increasing; {index[bad]} follows {index[bad - 1]}"
        )
    if (diffs % step).any():
        bad = int(np.argmax(diffs % step != 0)) + 1
        raise PriceFrameError(
            f"{index[bad]} is {diffs[bad - 1] // _NS_PER_MIN} min after the previous row; "
            f"rows must sit on a {interval_minutes}-min grid"
        )
    if len(diffs) and most_common_step(diffs) != step:
        raise PriceFrameError(
            f"rows are mostly {most_common_step(diffs) // _NS_PER_MIN} min apart but "
            f"interval_minutes = {interval_minutes}"
        )


def most_common_step(diffs: np.ndarray) -> int:
    """The most common of ``diffs`` (the smallest on a tie) [same unit as ``diffs``]."""
    uniques, counts = np.unique(diffs, return_counts=True)
    return int(uniques[np.argmax(counts)])
