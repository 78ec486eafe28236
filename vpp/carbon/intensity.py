"""Interval grid intensity: an average estimate from the published fundamentals, else the annual factor.

Where a price file publishes the fundamentals (the Chinese provincial files
publish forecasts of load, renewables, hydro and the tie-line on D-1, before
day-ahead gate closure), each interval's average grid intensity is

.. math::

    \\text{non-fossil} = \\text{renewable}_{\\text{forecast}} + \\text{hydro}_{\\text{forecast}}
    \\quad [\\text{MW}]

    \\text{supply} = \\max(\\text{load}, \\; \\text{load} - \\text{tie-line})
    \\quad [\\text{MW}]

    \\text{share}_{\\text{non-fossil}} = \\operatorname{clip}(\\text{non-fossil} / \\text{supply}, 0, 1)

    \\text{intensity} = (1 - \\text{share}_{\\text{non-fossil}}) \\times EF_{\\text{fossil-only}}
    \\quad [\\text{tCO2/MWh}]

with the canonical columns ``load_forecast_mw``, ``renewable_forecast_mw``
(wind + PV, 新能源; ``wind_forecast_mw + pv_forecast_mw`` where it is absent),
``hydro_forecast_mw`` and ``tie_line_forecast_mw`` (> 0: imported into the
province) and the national fossil-only factor in force
(:mod:`vpp.carbon.factors`). Assumptions, each one chosen to err high rather
than low:

* **Tie-line imports count as fossil.** The sending grids' mix is not
  published; while the province imports (tie-line > 0), the supply is the
  load and the imported share carries the fossil-only factor. While it
  exports (tie-line < 0), the supply is local generation (load - tie-line):
  the exports carry the local mix.
* **Non-fossil = renewables + hydro.** Nuclear, biomass and waste are not
  published separately and count as fossil. The non-market generation
  forecast (非市场化出力) is not used: in the shipped file it is the
  renewables plus a remainder that is not broken down by fuel (priority
  and must-run units), which therefore counts as fossil; hydro is taken
  from its own column once.
* **Forecasts, not actuals.** The estimate uses what was published before
  the day (the actuals are not in the canonical file); the same numbers
  serve a strategy and the accounting.
* **An average, not a marginal, intensity**: the emissions of the average
  MWh consumed in the interval, not of the MWh a change in demand would
  cause (the marginal unit is usually fossil at the fossil factor or above).
  It is fit for location-based scope 2 accounting, not for reduction claims
  of a shift in demand.
* **Sane range.** The share is clipped to [0, 1] (so the intensity lies in
  [0, EF_fossil-only]); an interval whose non-fossil forecast exceeds the
  supply is counted in ``clipped``. An interval without a positive load
  forecast has no estimate (NaN): the caller falls back to the annual factor
  and reports it.

Elsewhere (no fundamentals in the file, e.g. Nord Pool, ERCOT, EPEX) the
intensity is the annual location-based factor in force.

Look-ahead: :class:`IntensityFeed` gives a strategy the intensity known at a
decision time, from values published by then under the replay exchange's
rule for fundamentals (:data:`FUNDAMENTALS_PUBLICATION_LOCAL` on D-1, market
local time; ``market_replay.exchange.ReplayExchange``); asking for an interval
not yet published raises :class:`~vpp.LookAheadError`, and a value published
later is never read.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from vpp.errors import InputError, LookAheadError
from vpp.timeutil import require_aware, zone

#: When the fundamentals of delivery day D are published: this local time on D-1 (the replay
#: exchange's default ``fundamentals_publication``; a test checks the two agree).
FUNDAMENTALS_PUBLICATION_LOCAL = dt.time(8, 0)
LOAD = "load_forecast_mw"
RENEWABLE = "renewable_forecast_mw"
HYDRO = "hydro_forecast_mw"
TIE_LINE = "tie_line_forecast_mw"
WIND = "wind_forecast_mw"
PV = "pv_forecast_mw"
#: The columns the estimate reads (``renewable_forecast_mw`` may be wind + PV instead).
REQUIRED_COLUMNS = (LOAD, HYDRO, TIE_LINE)


def has_fundamentals(frame: pd.DataFrame) -> bool:
    """The frame publishes what the estimate needs (load, renewables, hydro, tie-line)."""
    renewables = RENEWABLE in frame.columns or {WIND, PV} <= set(frame.columns)
    return renewables and all(c in frame.columns for c in REQUIRED_COLUMNS)


def interval_intensity(frame: pd.DataFrame, fossil_tco2_per_mwh: float) -> pd.DataFrame:
    """The estimate of the module doc, per row of ``frame``.

    Returns a frame on the same index with ``non_fossil_mw``, ``supply_mw``,
    ``non_fossil_share`` (clipped to [0, 1]), ``intensity_tco2_per_mwh`` (NaN
    where the load forecast is missing or not positive) and ``clipped`` (the
    share was above 1 or below 0 before clipping).
    """
    if not has_fundamentals(frame):
        missing = [c for c in (LOAD, RENEWABLE, HYDRO, TIE_LINE) if c not in frame.columns]
        raise InputError(
            f"interval intensity needs the published fundamentals; missing {', '.join(missing)}"
        )
    if not np.isfinite(fossil_tco2_per_mwh) or not 0 <= fossil_tco2_per_mwh <= 1.5:
        raise InputError(
            f"fossil_tco2_per_mwh = {fossil_tco2_per_mwh!r}: must be a factor in [0, 1.5] tCO2/MWh"
        )
    load = frame[LOAD].to_numpy(float)
    if RENEWABLE in frame.columns:
        renewable = frame[RENEWABLE].to_numpy(float)
    else:
        renewable = frame[WIND].to_numpy(float) + frame[PV].to_numpy(float)
    non_fossil = renewable + frame[HYDRO].to_numpy(float)
    tie = frame[TIE_LINE].to_numpy(float)
    supply = np.maximum(load, load - tie)
    valid = np.isfinite(load) & (load > 0) & np.isfinite(supply) & np.isfinite(non_fossil)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(valid, non_fossil / np.where(valid, supply, 1.0), np.nan)
    share = np.clip(raw, 0.0, 1.0)
    return pd.DataFrame(
        {
            "non_fossil_mw": non_fossil,
            "supply_mw": supply,
            "non_fossil_share": share,
            "intensity_tco2_per_mwh": (1.0 - share) * fossil_tco2_per_mwh,
            "clipped": valid & ((raw > 1.0) | (raw < 0.0)),
        },
        index=frame.index,
    )


def fundamentals_published_at(
    index: pd.DatetimeIndex,
    timezone: str,
    publication_local: dt.time = FUNDAMENTALS_PUBLICATION_LOCAL,
) -> pd.DatetimeIndex:
    """When the fundamentals of each interval were published (UTC): ``publication_local`` on
    the day before the interval's local delivery day."""
    tz = zone(timezone)
    days = index.tz_convert(timezone).normalize().tz_localize(None)
    stamps = [
        dt.datetime.combine(day.date() - dt.timedelta(days=1), publication_local, tz)
        for day in days
    ]
    return pd.DatetimeIndex(stamps).tz_convert("UTC")


class IntensityFeed:
    """The grid intensity a strategy may know at a decision time [tCO2/MWh].

    With fundamentals in ``frame``: the estimate of the module doc from the rows
    published by the decision time only (the rest are not read). Without:
    the annual factor ``annual_tco2_per_mwh``, valid from ``annual_effective``.
    ``fossil_tco2_per_mwh`` is the fossil-only factor (None: no estimate, annual only).
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        timezone: str,
        *,
        fossil_tco2_per_mwh: float | None,
        annual_tco2_per_mwh: float | None = None,
        annual_effective: dt.date | None = None,
        publication_local: dt.time = FUNDAMENTALS_PUBLICATION_LOCAL,
    ) -> None:
        index = frame.index
        if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
            raise TypeError("frame must have a tz-aware DatetimeIndex of interval starts")
        self.timezone = timezone
        self.estimated = fossil_tco2_per_mwh is not None and has_fundamentals(frame)
        if not self.estimated and annual_tco2_per_mwh is None:
            raise InputError(
                "no intensity: the frame publishes no fundamentals (or no fossil-only factor is "
                "given) and there is no annual factor"
            )
        self._frame = frame.sort_index()
        self._fossil = fossil_tco2_per_mwh
        self._annual = annual_tco2_per_mwh
        self._annual_from = annual_effective
        self._published = fundamentals_published_at(
            pd.DatetimeIndex(self._frame.index), timezone, publication_local
        )

    def published_at(self, interval_start: dt.datetime | pd.Timestamp) -> pd.Timestamp:
        """When the intensity of ``interval_start`` became known (UTC)."""
        require_aware(interval_start, "interval_start")
        position = self._frame.index.get_loc(pd.Timestamp(interval_start))
        if self.estimated:
            return pd.Timestamp(self._published[position])
        return self._annual_known_from()

    def _annual_known_from(self) -> pd.Timestamp:
        if self._annual_from is None:
            return pd.Timestamp.min.tz_localize("UTC")
        start = dt.datetime.combine(self._annual_from, dt.time(0), zone(self.timezone))
        return pd.Timestamp(start).tz_convert("UTC")

    def known_at(self, now: dt.datetime | pd.Timestamp) -> pd.Series:
        """The intensity of every interval published by ``now`` (may reach into the next day)."""
        require_aware(now, "now")
        at = pd.Timestamp(now).tz_convert("UTC")
        if not self.estimated:
            if at < self._annual_known_from():
                return pd.Series(dtype=float, name="intensity_tco2_per_mwh")
            return pd.Series(
                float(self._annual or 0.0), index=self._frame.index, name="intensity_tco2_per_mwh"
            )
        mask = np.asarray(self._published <= at)
        rows = self._frame[mask]  # later rows are never read
        intensity = interval_intensity(rows, float(self._fossil or 0.0))
        return intensity["intensity_tco2_per_mwh"].dropna()

    def get(
        self,
        start: dt.datetime | pd.Timestamp,
        end: dt.datetime | pd.Timestamp,
        now: dt.datetime | pd.Timestamp,
    ) -> pd.Series:
        """Intensity of the intervals in ``[start, end)`` as known at ``now``.

        Raises :class:`~vpp.LookAheadError` if any of them is not published by ``now``.
        """
        for name, value in (("start", start), ("end", end), ("now", now)):
            require_aware(value, name)
        index = self._frame.index
        mask = (index >= pd.Timestamp(start)) & (index < pd.Timestamp(end))
        if not mask.any():
            raise KeyError(f"no intervals between {start} and {end}")
        at = pd.Timestamp(now).tz_convert("UTC")
        if self.estimated:
            first = self._published[mask].min()
            late = self._published[mask][self._published[mask] > at]
            if len(late):
                raise LookAheadError(
                    f"grid intensity for [{start}, {end}) is not published at {at.isoformat()} "
                    f"(first value known at {late.min().isoformat()}; the day's fundamentals "
                    f"at {first.isoformat()})"
                )
        elif at < self._annual_known_from():
            raise LookAheadError(
                f"the annual factor is in force from {self._annual_from}, not at {at.isoformat()}"
            )
        known = self.known_at(at)
        return known.reindex(index[mask])


__all__ = [
    "FUNDAMENTALS_PUBLICATION_LOCAL",
    "REQUIRED_COLUMNS",
    "IntensityFeed",
    "fundamentals_published_at",
    "has_fundamentals",
    "interval_intensity",
]
