"""The clear-sky PV forecast: pvlib clear-sky output scaled by the recent clearness.

A PV forecast made at a decision time knows the sky's geometry for any day
(astronomy and climatology: pvlib's clear-sky model at the weather file's
site, :func:`vpp.profiles.pv_clear_sky_kw`) and the plant's realized output
up to then, never the delivery day's weather. So::

    clearness   = sum(realized_kw over the past days) / sum(clear_sky_kw over those days)
    forecast_kw = clip(clearness * clear_sky_kw(delivery day), 0, inverter limit)

``clearness`` is a ratio of energies (the interval lengths cancel), over the
:data:`PV_FORECAST_DAYS` whole days before the decision day in the PV model
(:meth:`strategies.pv.PvModel.load_inputs`, ``forecast_method =
"clear_sky"``), or the complete days of the history cut at the decision time
in the walk-forward evaluation (:class:`ClearSkyForecaster`,
``vpp forecast evaluate --target pv``; ``recent_mean`` scores the PV model's
default, the mean of those days, the same way). It also carries the recent
temperature derating and inverter clipping, which the clear-sky output
leaves out. Past days without any clear-sky energy (none at these
latitudes) give a clearness of 0, logged ``pv_forecast_no_clear_sky``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import structlog

from strategies.forecast import PV_FORECASTERS, Forecaster, _Context, _DayTable
from vpp.errors import InputError

log = structlog.get_logger(__name__)

#: Whole days before the decision day that a PV forecast learns from: their mean output
#: (``recent_mean``) or their clearness (``clear_sky``).
PV_FORECAST_DAYS = 7

#: A past clear-sky output summing to no more than this [kW] is no sun at all (a ratio over
#: it would be noise, or overflow on subnormal numbers).
NO_CLEAR_SKY_KW = 1e-9

#: The column of a history/features frame that holds the clear-sky output [kW].
CLEAR_SKY_COLUMN = "clear_sky_kw"


def clearness(realized_kw: np.ndarray, clear_sky_kw: np.ndarray) -> float:
    """Realized over clear-sky energy of the same past intervals [-, >= 0].

    Both arrays hold power [kW] on the same intervals of equal length, so the
    ratio of their sums is the ratio of energies.
    """
    realized = np.asarray(realized_kw, dtype=float)
    clear = np.asarray(clear_sky_kw, dtype=float)
    if realized.shape != clear.shape:
        raise InputError(f"realized {realized.shape} and clear-sky {clear.shape} must match")
    if not (np.isfinite(realized).all() and np.isfinite(clear).all()):
        raise InputError("realized and clear-sky PV power must be finite")
    total = float(clear.sum())
    if total <= NO_CLEAR_SKY_KW:
        log.info("pv_forecast_no_clear_sky", intervals=int(clear.size))
        return 0.0
    return max(float(realized.sum()) / total, 0.0)


def clear_sky_forecast_kw(
    realized_past_kw: np.ndarray,
    clear_sky_past_kw: np.ndarray,
    clear_sky_kw: np.ndarray,
    limit_kw: float,
) -> np.ndarray:
    """The clear-sky forecast [kW, in [0, limit_kw]] of the intervals of ``clear_sky_kw``.

    ``realized_past_kw`` and ``clear_sky_past_kw``: the past intervals the
    clearness comes from (see module doc); ``limit_kw``: the inverter's AC limit.
    """
    ratio = clearness(realized_past_kw, clear_sky_past_kw)
    return np.clip(ratio * np.asarray(clear_sky_kw, dtype=float), 0.0, limit_kw)


class ClearSkyForecaster(Forecaster):
    """``clear_sky``: the clear-sky output of the day times the clearness of the complete
    days before it (at most ``window_days``) in the history cut at the decision time.

    The clear-sky output comes as the ``clear_sky_kw`` column: of ``history`` for the past
    days, of ``features`` for the target intervals (it is known in advance). ``limit_kw``
    caps the forecast (the inverter's AC limit; ``None``: no cap).
    """

    name = "clear_sky"

    def __init__(
        self,
        column: str = "pv_kw",
        *,
        window_days: int = PV_FORECAST_DAYS,
        limit_kw: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(column, **kwargs)
        if window_days < 1:
            raise InputError(f"clear_sky window_days = {window_days}: must be >= 1")
        self.window_days = window_days
        self.limit_kw = np.inf if limit_kw is None else float(limit_kw)

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        history = context.history
        if CLEAR_SKY_COLUMN not in history.columns:
            raise InputError(f"clear_sky forecaster: history has no {CLEAR_SKY_COLUMN!r} column")
        past = _DayTable(history[CLEAR_SKY_COLUMN], self.timezone).table
        if context.target:
            if context.features is None or CLEAR_SKY_COLUMN not in context.features.columns:
                raise InputError(
                    f"clear_sky forecaster: features need a {CLEAR_SKY_COLUMN!r} column for "
                    "the target intervals"
                )
            source = _DayTable(context.features[CLEAR_SKY_COLUMN], self.timezone).table
        else:
            source = past
        # A past day is complete when it has every time of day of the day forecast (whose
        # clear sky is known in whole), not only those of a history cut at noon.
        slots = source.columns.union(past.columns)
        today = source.reindex(index=[day], columns=slots).to_numpy(float)[0]
        span = self.window_days + self.max_lookback_days
        wanted = pd.date_range(day - pd.Timedelta(days=span), periods=span, freq="D")
        realized = table.table.reindex(index=wanted, columns=slots).to_numpy(float)
        clear = past.reindex(index=wanted).to_numpy(float)
        complete = np.isfinite(realized).all(axis=1) & np.isfinite(clear).all(axis=1)
        rows = np.flatnonzero(complete)[-self.window_days:]
        if not len(rows) or np.isnan(today).any():
            return np.full(len(table.slots), np.nan)
        values = self._combine(realized[rows], clear[rows], today)
        return pd.Series(values, index=slots).reindex(table.slots).to_numpy(float)

    def _combine(self, realized: np.ndarray, clear: np.ndarray, today: np.ndarray) -> np.ndarray:
        return clear_sky_forecast_kw(realized, clear, today, self.limit_kw)


class RecentMeanForecaster(ClearSkyForecaster):
    """``recent_mean``: the mean output at that time of day over the same complete days as
    ``clear_sky`` -- the PV model's default forecast (``forecast_method = "recent_mean"``),
    scored on the same footing."""

    name = "recent_mean"

    def _combine(self, realized: np.ndarray, clear: np.ndarray, today: np.ndarray) -> np.ndarray:
        return np.clip(realized.mean(axis=0), 0.0, self.limit_kw)


PV_FORECASTERS[ClearSkyForecaster.name] = ClearSkyForecaster
PV_FORECASTERS[RecentMeanForecaster.name] = RecentMeanForecaster
