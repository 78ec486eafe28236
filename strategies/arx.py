"""``arx``: ridge regression on lagged day profiles, calendars and fundamentals (an ARX model).

The model class of the electricity-price forecasting literature's standard
benchmark (LEAR: Lago, Marcjasz, De Schutter, Weron, *Forecasting day-ahead
electricity prices: a review of state-of-the-art algorithms, best practices
and an open-access benchmark*, Applied Energy 293, 2021), with a ridge
penalty instead of the lasso so that one closed-form fit serves every time
of day and the penalty is chosen by exact leave-one-day-out error (numpy
only: no solver loop, milliseconds per day).

**Why it beats persistence where trees do not.** A linear model on
normalised prices carries a price level it never saw in training (a gas
crisis, a scarcity month) through the lags; a tree cannot extrapolate beyond
its leaves. Measured walk-forward at the gate on the periods of
``docs/forecasting.md`` (issue #13): MAE over persistence's 0.835 (Chinese
province A), 0.819 (Nord Pool DK1), 0.846 (ERCOT Houston), 0.768 (EPEX
DE-LU) -- ``python -m bench forecast --forecaster arx``.

**Features** of local delivery day ``D`` (all known at the day-ahead gate
closure; the look-ahead guard of :class:`~strategies.forecast.Forecaster`
refuses anything later):

* the hourly means of the normalised target on days ``D-1``, ``D-2``,
  ``D-3`` and ``D-7`` (``lag_days``): every hour of those days, not only
  the same hour, so yesterday evening informs this morning;
* the calendar in market-local time: weekday (one-hot), whether ``D``,
  ``D-1`` and ``D+1`` are days off (public holidays with China's make-up
  workdays, as :func:`strategies.gbm.day_off`);
* per time of day, each fundamental published for ``D`` (columns ending
  ``_forecast_mw`` and ``bidding_space_mw``), its value at that time on
  ``D-1`` and its daily mean (standardised over the training window); for
  a target other than ``da_price``, the delivery day's day-ahead price.

**Normalisation** (a variance-stabilising transform, Uniejewski, Weron and
Ziel 2018): over each training window, ``z = asinh((price - median) /
MAD)``, so spikes and negative prices do not dominate the squares; the
forecast maps back through ``sinh``.

**Fit.** Per training window (``windows``: the last 56, 84, 182, 364 and
728 days -- short ones follow a new regime, long ones know the seasons --
each used once the history covers 80 % of it) one ridge regression
per time of day on standardised features; the penalty per time of day is
the one of ``alphas`` with the smallest mean absolute leave-one-day-out
error (exact for ridge, from one SVD). The forecast is the mean over the
windows, in prices. Retrained for every forecast from the history handed in
(cut at the decision time by the caller), so nothing unpublished is ever
seen (a spy test perturbs it). Fewer than ``min_train_days`` complete days:
the ``persistence`` forecast (logged ``forecast_fallback``).

**Quantiles and scenarios** from the leave-one-day-out residuals of the
last ``error_days`` training days -- out-of-sample errors, not in-sample
fits (jackknife prediction intervals): per time of day their quantiles at
``quantiles`` give the band; their whole-day profiles, ranked by their mean
and picked at levels ``(k + 1/2) / scenarios``, give the scenarios (each
keeps the intraday shape of one day's errors, as the base class does).
A target beyond the first day uses the forecast of the days before it as
their lags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import structlog

from strategies.forecast import FORECASTERS, Forecast, Forecaster, Persistence, _Context, _DayTable
from strategies.gbm import HOLIDAY_COUNTRIES, GradientBoosting, day_off, fundamental_columns
from vpp.errors import InputError
from vpp.timeutil import zone

log = structlog.get_logger(__name__)

#: Ridge penalties tried per time of day (standardised features, normalised target).
ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
#: A window is used once the history covers this share of it (the shortest: always).
WINDOW_COVERAGE = 0.8

_CACHE: OrderedDict[str, Forecast] = OrderedDict()
_CACHE_SIZE = 32


def _filled(rows: np.ndarray) -> np.ndarray:
    """Each day row with its missing slots (a DST hour) taken from the nearest slot."""
    if not np.isnan(rows).any():
        return rows
    return pd.DataFrame(rows).T.ffill().bfill().T.to_numpy(float)


class AutoRegressive(Forecaster):
    """Ridge ARX forecaster on normalised prices (see module doc)."""

    name = "arx"

    def __init__(
        self,
        column: str = "da_price",
        *,
        windows: Sequence[int] = (56, 84, 182, 364, 728),
        lag_days: Sequence[int] = (1, 2, 3, 7),
        min_train_days: int = 14,
        alphas: Sequence[float] = ALPHAS,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        feature_columns: Sequence[str] | None = None,
        holiday_country: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(column, **kwargs)
        levels = np.asarray(sorted(quantiles), dtype=float)
        if not len(levels) or not ((levels > 0) & (levels < 1)).all() or 0.5 not in levels:
            raise InputError(
                f"arx quantiles = {list(quantiles)}: levels must lie in (0, 1) and include 0.5"
            )
        if not windows or min(windows) < 2 or min_train_days < 2:
            raise InputError("arx windows and min_train_days must be >= 2 days")
        if not lag_days or min(lag_days) < 1:
            raise InputError(f"arx lag_days = {list(lag_days)}: every lag must be >= 1 day")
        if not alphas or min(alphas) <= 0:
            raise InputError(f"arx alphas = {list(alphas)}: penalties must be > 0")
        self.windows = tuple(sorted(int(w) for w in windows))
        self.lag_days = tuple(int(k) for k in lag_days)
        self.min_train_days = int(min_train_days)
        self.alphas = np.asarray(alphas, dtype=float)
        self.quantiles = tuple(float(q) for q in levels)
        self.feature_columns = None if feature_columns is None else tuple(feature_columns)
        self.country = holiday_country or HOLIDAY_COUNTRIES.get(self.timezone)
        self._fallback = Persistence(column, **kwargs)
        #: The last interval start whose target value the latest fit trained on (a spy's hook).
        self.trained_through: pd.Timestamp | None = None

    # The base class's per-day hook: the persistence fallback (used by no path of arx's own).
    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        return self._fallback._predict_day(table, day, context)

    # -- public ---------------------------------------------------------------------------
    def forecast(
        self,
        history: pd.DataFrame,
        index: pd.DatetimeIndex,
        features: pd.DataFrame | None = None,
    ) -> Forecast:
        """Point forecast, quantiles and scenarios for ``index`` from ``history`` known at
        decision time."""
        past = self._published_past(history, index)
        names = self._usable_columns(history, index, features)
        target_rows = GradientBoosting._target_frame(history, index, features, names)
        key = self._digest(past, names, index, target_rows)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        result = self._forecast(past, index, names, target_rows, history, features)
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return result

    # -- internals ------------------------------------------------------------------------
    def _digest(
        self, past: pd.DataFrame, names: Sequence[str], index: pd.DatetimeIndex,
        target_rows: pd.DataFrame,
    ) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.column, self.timezone, self.windows, self.lag_days,
                            self.min_train_days, self.alphas.tolist(), self.quantiles,
                            self.scenarios, self.error_days, tuple(names), self.country)).encode())
        columns = [self.column, *[n for n in names if n in past.columns]]
        digest.update(np.ascontiguousarray(past.index.asi8).tobytes())
        digest.update(np.ascontiguousarray(past[columns].to_numpy(float)).tobytes())
        digest.update(np.ascontiguousarray(index.asi8).tobytes())
        digest.update(np.ascontiguousarray(target_rows.to_numpy(float)).tobytes())
        return digest.hexdigest()

    def _usable_columns(
        self, history: pd.DataFrame, index: pd.DatetimeIndex, features: pd.DataFrame | None
    ) -> list[str]:
        """Feature columns with a published value for every target interval."""
        wanted = (
            list(self.feature_columns)
            if self.feature_columns is not None
            else fundamental_columns(list(history.columns))
        )
        if self.column != "da_price" and "da_price" in history.columns:
            wanted.append("da_price")
        rows = GradientBoosting._target_frame(history, index, features, wanted)
        return [c for c in wanted if c in history.columns and rows[c].notna().all()]

    def _forecast(
        self,
        past: pd.DataFrame,
        index: pd.DatetimeIndex,
        names: Sequence[str],
        target_rows: pd.DataFrame,
        history: pd.DataFrame,
        features: pd.DataFrame | None,
    ) -> Forecast:
        tz = zone(self.timezone)
        local = index.tz_convert(tz)
        target_days = local.tz_localize(None).normalize()
        first_day = target_days[0]
        table = _DayTable(past[self.column], self.timezone)
        slots = table.slots
        if not len(slots) or len(table.table.index) == 0:
            return self._fall_back(history, index, features, first_day, "no history")
        day_index = pd.date_range(table.table.index.min(), target_days.unique()[-1], freq="D")
        values = table.table.reindex(day_index).to_numpy(float, copy=True)  # days x slots
        fundamentals = self._fundamental_tables(past, names, target_rows, day_index, slots)
        position = {day: k for k, day in enumerate(day_index)}
        first = position[first_day]
        complete = np.flatnonzero(~np.isnan(values[:first]).all(axis=1))
        if len(complete) < self.min_train_days + max(self.lag_days):
            return self._fall_back(
                history, index, features, first_day,
                f"fewer than {self.min_train_days} complete days to train on",
            )
        calendar = np.array([self._calendar(day) for day in day_index])
        predicted: dict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = {}
        for day in target_days.unique():
            row = position[day]
            fit = self._fit_day(values, fundamentals, calendar, row)
            if fit is None:
                return self._fall_back(history, index, features, first_day,
                                       "no complete lagged days before a target day")
            predicted[row] = fit
            values[row] = fit[0]  # a later target day lags on this forecast
        self.trained_through = pd.Timestamp(past.index[past[self.column].notna().to_numpy()][-1])
        return self._assemble(predicted, index, target_days, position, slots, local, first_day)

    def _fall_back(
        self, history: pd.DataFrame, index: pd.DatetimeIndex, features: pd.DataFrame | None,
        day: pd.Timestamp, reason: str,
    ) -> Forecast:
        log.info("forecast_fallback", forecaster=self.name, day=day.date().isoformat(),
                 reason=f"{reason}; used persistence")
        self._fallback.scenarios = self.scenarios
        return self._fallback.forecast(history, index, features)

    def _calendar(self, day: pd.Timestamp) -> np.ndarray:
        date = day.date()
        weekday = np.zeros(7)
        weekday[date.weekday()] = 1.0
        flags = [day_off(date + dt.timedelta(days=k), self.country) for k in (0, -1, 1)]
        return np.concatenate([weekday, np.asarray(flags, dtype=float)])

    def _fundamental_tables(
        self, past: pd.DataFrame, names: Sequence[str], target_rows: pd.DataFrame,
        day_index: pd.DatetimeIndex, slots: np.ndarray,
    ) -> list[np.ndarray]:
        """Per fundamental: days x slots, past values then the published target-day values."""
        out = []
        for name in names:
            series = pd.concat([past[name].dropna(), target_rows[name].dropna()])
            series = series[~series.index.duplicated(keep="last")].sort_index()
            table = _DayTable(series, self.timezone).table
            out.append(_filled(table.reindex(index=day_index, columns=slots).to_numpy(float)))
        return out

    def _fit_day(
        self, values: np.ndarray, fundamentals: list[np.ndarray], calendar: np.ndarray, row: int
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
        """(point per slot, quantiles slots x levels, scenario profiles) for day ``row``,
        averaged over the usable training windows; None: no window can be fit."""
        depth = max(self.lag_days)
        slots = values.shape[1]
        hours = self._hours(slots)
        points, bands, profiles = [], [], []
        for width in self.windows:
            low = max(depth, row - width)
            rows = np.arange(low, row)
            rows = rows[~np.isnan(values[rows]).all(axis=1)]
            if len(rows) < self.min_train_days:
                continue
            if width != self.windows[0] and row - low < WINDOW_COVERAGE * width:
                continue
            fit = self._fit_window(values, fundamentals, calendar, rows, row, hours)
            if fit is None:
                continue
            points.append(fit[0])
            bands.append(fit[1])
            profiles.append(fit[2])
        if not points:
            return None
        point = np.mean(points, axis=0)
        band = np.sort(np.mean(bands, axis=0), axis=1)
        # Scenario profiles of the longest window fit (the most calibration days).
        return point, band, profiles[-1]

    @staticmethod
    def _hours(slots: int) -> np.ndarray:
        """Which hour-of-day group each slot falls in (24 groups, or fewer slots)."""
        groups = min(24, slots)
        return (np.arange(slots) * groups) // slots

    def _fit_window(
        self, values: np.ndarray, fundamentals: list[np.ndarray], calendar: np.ndarray,
        rows: np.ndarray, row: int, hours: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]] | None:
        window = values[rows]
        median = float(np.nanmedian(window))
        mad = float(np.nanmedian(np.abs(window - median))) * 1.4826
        scale = mad if mad > 1e-9 else max(float(np.nanstd(window)), 1.0)
        z = np.arcsinh((_filled(values) - median) / scale)
        groups = np.unique(hours)
        hourly = np.column_stack([z[:, hours == g].mean(axis=1) for g in groups])
        # A missing lag day (a dropped or zero-coded day) takes the most recent day before it.
        hourly = pd.DataFrame(hourly).ffill(limit=self.max_lookback_days).to_numpy(float)
        lagged = [hourly[np.r_[rows, row] - k] for k in self.lag_days]
        common = np.column_stack([*lagged, calendar[np.r_[rows, row]]])
        keep = np.isfinite(common[:-1]).all(axis=1) & np.isfinite(z[rows]).all(axis=1)
        if keep.sum() < self.min_train_days or not np.isfinite(common[-1]).all():
            return None
        train_rows = rows[keep]
        x_common = np.vstack([common[:-1][keep], common[-1:]])
        y = z[train_rows]  # days x slots
        specific: list[np.ndarray] = []  # per fundamental: (days + 1) x slots x 3
        select = np.r_[train_rows, row]
        for table in fundamentals:
            window_values = table[train_rows]
            mean, spread = float(np.mean(window_values)), float(np.std(window_values))
            scaled = (table - mean) / (spread if spread > 1e-9 else 1.0)
            previous = np.vstack([np.full((1, scaled.shape[1]), np.nan), scaled[:-1]])
            daily = np.repeat(scaled.mean(axis=1, keepdims=True), scaled.shape[1], axis=1)
            specific.append(np.stack([scaled[select], previous[select], daily[select]], axis=2))
        if specific:
            z_hat = np.empty(y.shape[1])
            residuals = np.empty_like(y)
            for slot in range(y.shape[1]):
                x = np.column_stack([x_common, *[f[:, slot, :] for f in specific]])
                x = np.nan_to_num(x)
                z_hat[slot:slot + 1], residuals[:, slot:slot + 1] = self._ridge(
                    x[:-1], y[:, slot:slot + 1], x[-1]
                )
        else:
            z_hat, residuals = self._ridge(x_common[:-1], y, x_common[-1])
        recent = residuals[-self.error_days:]
        levels = np.asarray(self.quantiles)
        band_z = z_hat[:, None] + np.quantile(recent, levels, axis=0).T  # slots x levels
        point = median + scale * np.sinh(z_hat)
        band = median + scale * np.sinh(band_z)
        profiles = [median + scale * np.sinh(z_hat + r) - point for r in recent]
        return point, band, profiles

    def _ridge(
        self, x: np.ndarray, y: np.ndarray, x_target: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction at ``x_target`` and leave-one-out residuals (rows x outputs) of a ridge
        fit per output column, its penalty the one of :attr:`alphas` with the smallest mean
        absolute leave-one-out error."""
        mean, spread = x.mean(axis=0), x.std(axis=0)
        spread[spread < 1e-12] = 1.0
        xs = (x - mean) / spread
        xt = (x_target - mean) / spread
        y_mean = y.mean(axis=0)
        u, s, vt = np.linalg.svd(xs, full_matrices=False)
        uty = u.T @ (y - y_mean)  # rank x outputs
        n = len(y)
        best_score = np.full(y.shape[1], np.inf)
        best_pred = np.zeros(y.shape[1])
        best_res = np.zeros_like(y)
        projected = xt @ vt.T  # rank
        for alpha in self.alphas:
            shrink = s**2 / (s**2 + alpha)
            fitted = u @ (shrink[:, None] * uty)
            leverage = (u**2) @ shrink + 1.0 / n
            loo = (y - y_mean - fitted) / np.maximum(1.0 - leverage, 1e-6)[:, None]
            score = np.mean(np.abs(loo), axis=0)
            better = score < best_score
            if better.any():
                prediction = y_mean + projected @ ((s / (s**2 + alpha))[:, None] * uty)
                best_score[better] = score[better]
                best_pred[better] = prediction[better]
                best_res[:, better] = loo[:, better]
        return best_pred, best_res

    def _assemble(
        self,
        predicted: dict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray]]],
        index: pd.DatetimeIndex,
        target_days: pd.DatetimeIndex,
        position: dict[pd.Timestamp, int],
        slots: np.ndarray,
        local: pd.DatetimeIndex,
        first_day: pd.Timestamp,
    ) -> Forecast:
        lookup = pd.Series(np.arange(len(slots)), index=slots)
        wanted = np.asarray(local.hour * 60 + local.minute)
        columns = lookup.reindex(wanted).ffill().bfill().to_numpy(int)  # a slot never seen
        rows = np.array([position[d] for d in target_days])
        point = np.array([predicted[r][0][c] for r, c in zip(rows, columns, strict=True)])
        band = np.array([predicted[r][1][c] for r, c in zip(rows, columns, strict=True)])
        profiles = predicted[position[first_day]][2]
        ranked = sorted(profiles, key=lambda p: float(np.mean(p)))
        count = min(self.scenarios, len(ranked))
        picks = [ranked[min(int((k + 0.5) / count * len(ranked)), len(ranked) - 1)]
                 for k in range(count)]
        matrix = np.array([point + profile[columns] for profile in picks])
        point_series = pd.Series(point, index=index, name=self.column)
        quantiles = pd.DataFrame(np.sort(band, axis=1), index=index, columns=list(self.quantiles))
        log.debug("arx_forecast", column=self.column, day=first_day.date().isoformat(),
                  windows=len(predicted), scenarios=count)
        if count <= 1:
            return Forecast(point_series, pd.DataFrame({"s0": point}, index=index),
                            np.ones(1), quantiles)
        return Forecast(
            point_series,
            pd.DataFrame(matrix.T, index=index, columns=[f"s{k}" for k in range(count)]),
            np.full(count, 1.0 / count),
            quantiles,
        )


FORECASTERS[AutoRegressive.name] = AutoRegressive
