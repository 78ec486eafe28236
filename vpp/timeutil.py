"""Time helpers: tz-aware everywhere, UTC inside, market-local only at the edges."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from vpp.errors import InputError

UTC = ZoneInfo("UTC")


def require_aware(value: datetime | pd.Timestamp, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` if ``value`` is a naive timestamp."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TypeError(f"{name} must be timezone-aware, got naive {value!s}")


def require_aware_index(index: pd.Index, name: str) -> None:
    """Raise ``TypeError`` if ``index`` is not a tz-aware DatetimeIndex."""
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise TypeError(
            f"{name} must be a tz-aware DatetimeIndex, got {type(index).__name__}"
            f" with tz={getattr(index, 'tz', None)}"
        )


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone ``name`` or raise :class:`~vpp.errors.InputError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(f"unknown IANA time zone {name!r}") from exc


def day_bounds_utc(day: date, timezone: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """UTC start (inclusive) and end (exclusive) of the local calendar ``day``.

    Handles DST: the result spans 23, 24 or 25 hours.
    """
    tz = zone(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def day_intervals_utc(day: date, timezone: str, interval_minutes: int) -> pd.DatetimeIndex:
    """Interval starts (UTC) of one local market day: 92/96/100 quarter-hours across DST."""
    start, end = day_bounds_utc(day, timezone)
    return pd.date_range(
        start, end, freq=f"{interval_minutes}min", inclusive="left", name="interval_start"
    )
