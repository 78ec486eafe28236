"""Price forecasters that see only what is known at decision time, and their scenarios.

Interface (all forecasters)::

    forecaster.forecast(history, index, features=None) -> Forecast

* ``history``: a frame with a tz-aware DatetimeIndex of interval starts and
  the price column to forecast (``da_price`` by default; any column works,
  e.g. ``rt_price``), **cut at the decision time by the caller** -- exactly
  what was published by then. A non-missing target value at or after
  ``index[0]`` raises :class:`~vpp.LookAheadError`: the forecaster never
  slices ahead itself, and refuses data it could not have had.
* ``index``: the UTC interval starts to forecast (a delivery day, or the
  rest of today in real time).
* ``features``: published fundamentals for the target intervals (the
  Chinese file publishes load, renewables and bidding-space forecasts for
  the delivery day before gate closure). Used by ``regression`` only.

History is handled per market-local day and time of day (``timezone``), so
"the same interval yesterday" is the same wall-clock time on the previous
local day, also across DST (92/100-interval days). Missing values (NaN, or a
whole local day of exact zeros -- how the Chinese source codes missing days)
are never filled silently: each forecaster has an explicit fallback and logs
``forecast_fallback``. With no published value at all to fall back on (a
delivery day on the price data's first day), the forecaster raises
:class:`~vpp.DataQualityError` in one line rather than guess; the backtest
refuses such a start up front (see ``docs/strategy.md``).

Forecasters:

* ``persistence``: the same interval on the previous day; falls back to the
  most recent earlier day with a value (up to ``max_lookback_days``).
* ``weekly``: the same interval one week earlier (then 2, 3... weeks);
  falls back to ``persistence``.
* ``rolling_median``: the median of the same interval over the last
  ``window_days`` days.
* ``regression``: least squares (ridge 1e-6 on standardised inputs) of the
  price on the published fundamentals plus hour-of-day dummies, fitted on
  the last ``train_days`` days; falls back to ``rolling_median`` when a
  feature is missing.

**Scenarios from empirical errors.** For each of the last ``error_days``
complete days the forecaster re-forecasts that day from the data before
it; ``actual - forecast`` is that day's error profile. The error days are
ranked by their mean error and ``scenarios`` of them are picked at the
quantile levels ``(k + 1/2) / scenarios``; scenario ``k`` is the point
forecast plus that day's error profile, with probability ``1 / scenarios``.
Whole-day profiles keep the intraday shape of errors (which matters for
storage); the quantile pick spreads the scenarios over the error range.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import structlog

from vpp.errors import DataQualityError, InputError, LookAheadError
from vpp.timeutil import require_aware_index, zone

log = structlog.get_logger(__name__)

FUNDAMENTALS = ("load_forecast_mw", "renewable_forecast_mw", "bidding_space_mw")


@dataclass(frozen=True)
class Forecast:
    """Point forecast and scenarios over a target index [currency/MWh].

    ``scenarios`` has one row per target interval (same index as ``point``)
    and one column per scenario (``s0``, ``s1``, ...); ``probabilities`` (S,)
    sums to 1. :attr:`matrix` gives the scenarios as an (S, T) array.

    ``quantiles`` (optional, from a quantile forecaster such as ``gbm``) has
    one row per target interval and one column per probability level in
    (0, 1), ascending, non-crossing along each row [currency/MWh].
    :meth:`quantile_values` reads any level from it, or from the scenarios
    when it is absent.
    """

    point: pd.Series
    scenarios: pd.DataFrame
    probabilities: np.ndarray
    quantiles: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        require_aware_index(self.point.index, "point.index")
        if not self.scenarios.index.equals(self.point.index):
            raise InputError("scenarios and point must share one index")
        if len(self.probabilities) != self.scenarios.shape[1]:
            raise InputError("one probability per scenario")
        if not np.isclose(np.sum(self.probabilities), 1.0) or (self.probabilities < 0).any():
            raise InputError("scenario probabilities must be >= 0 and sum to 1")
        if not (np.isfinite(self.point).all() and np.isfinite(self.scenarios.to_numpy()).all()):
            raise InputError("forecast values must be finite")
        if self.quantiles is not None:
            levels = np.asarray(self.quantiles.columns, dtype=float)
            values = self.quantiles.to_numpy(float)
            if not self.quantiles.index.equals(self.point.index):
                raise InputError("quantiles and point must share one index")
            if not ((levels > 0) & (levels < 1)).all() or (np.diff(levels) <= 0).any():
                raise InputError(f"quantile levels must ascend within (0, 1); got {levels.tolist()}")
            if not np.isfinite(values).all() or (np.diff(values, axis=1) < 0).any():
                raise InputError("quantile forecasts must be finite and non-crossing")

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.point.index)

    @property
    def matrix(self) -> np.ndarray:
        """Scenarios as an array (S, T)."""
        return self.scenarios.to_numpy(dtype=float).T

    @classmethod
    def from_point(cls, point: pd.Series) -> Forecast:
        """A single-scenario forecast (a known or assumed price path)."""
        return cls(point, pd.DataFrame({"s0": point.to_numpy(float)}, index=point.index), np.ones(1))

    @classmethod
    def from_scenarios(
        cls, scenarios: np.ndarray, index: pd.DatetimeIndex, probabilities: np.ndarray | None = None
    ) -> Forecast:
        """Build from an (S, T) array; the point forecast is the probability-weighted mean."""
        values = np.asarray(scenarios, dtype=float)
        probs = (
            np.full(values.shape[0], 1.0 / values.shape[0])
            if probabilities is None
            else np.asarray(probabilities, dtype=float)
        )
        frame = pd.DataFrame(values.T, index=index, columns=[f"s{k}" for k in range(len(values))])
        return cls(pd.Series(probs @ values, index=index, name="price_per_mwh"), frame, probs)

    def window(self, start: int) -> Forecast:
        """The forecast from position ``start`` on."""
        quantiles = None if self.quantiles is None else self.quantiles.iloc[start:]
        return Forecast(
            self.point.iloc[start:], self.scenarios.iloc[start:], self.probabilities, quantiles
        )

    def quantile_values(self, levels: Sequence[float]) -> np.ndarray:
        """Forecast quantiles (T, len(levels)) at probability ``levels`` [currency/MWh].

        From :attr:`quantiles` when present: linear in the level between two
        forecast levels, the outermost level beyond them. Otherwise the
        probability-weighted empirical quantile of the scenarios per interval
        (step function of the sorted scenarios). Non-decreasing along each row.
        """
        wanted = np.asarray(levels, dtype=float)
        if self.quantiles is not None:
            known = np.asarray(self.quantiles.columns, dtype=float)
            values = self.quantiles.to_numpy(float)
            return np.array([np.interp(wanted, known, row) for row in values])
        matrix = self.scenarios.to_numpy(float)  # (T, S)
        order = np.argsort(matrix, axis=1, kind="stable")
        ranked = np.take_along_axis(matrix, order, axis=1)
        cumulative = np.cumsum(self.probabilities[order], axis=1)
        out = np.empty((len(matrix), len(wanted)))
        for t in range(len(matrix)):
            positions = np.searchsorted(cumulative[t], wanted - 1e-12, side="left")
            out[t] = ranked[t, np.minimum(positions, matrix.shape[1] - 1)]
        return out

    @classmethod
    def from_quantiles(
        cls, quantiles: pd.DataFrame, scenarios: int, name: str = "price_per_mwh"
    ) -> Forecast:
        """Point (the median) and ``scenarios`` equally likely scenarios from quantile forecasts.

        ``quantiles``: rows = target intervals, columns = ascending levels in (0, 1); each
        row is sorted first (quantile models trained apart may cross). Scenario ``k`` is the
        forecast quantile at level ``(k + 1/2) / scenarios`` of every interval (see
        ``docs/forecasting.md``): comonotone scenarios, the k-th lowest price everywhere.
        """
        levels = np.asarray(quantiles.columns, dtype=float)
        values = np.sort(quantiles.to_numpy(float), axis=1)
        ordered = pd.DataFrame(values, index=quantiles.index, columns=levels)
        picks = (np.arange(scenarios) + 0.5) / scenarios
        matrix = np.array([np.interp(picks, levels, row) for row in values])  # (T, S)
        point = pd.Series(
            np.array([np.interp(0.5, levels, row) for row in values]), index=quantiles.index,
            name=name,
        )
        frame = pd.DataFrame(matrix, index=quantiles.index, columns=[f"s{k}" for k in range(scenarios)])
        return cls(point, frame, np.full(scenarios, 1.0 / scenarios), ordered)


class _DayTable:
    """History as local-day rows x time-of-day slots (minutes after local midnight)."""

    def __init__(self, series: pd.Series, timezone: str) -> None:
        local = pd.DatetimeIndex(series.index).tz_convert(zone(timezone))
        frame = pd.DataFrame(
            {
                "day": local.tz_localize(None).normalize(),
                "slot": local.hour * 60 + local.minute,
                "value": series.to_numpy(float),
            }
        )
        table = frame.pivot_table(index="day", columns="slot", values="value", aggfunc="mean")
        if len(table.index):
            full = pd.date_range(table.index.min(), table.index.max(), freq="D")
            table = table.reindex(full)
        self.table = table
        self.timezone = timezone

    def before(self, day: pd.Timestamp, days: int) -> np.ndarray:
        """Rows of the ``days`` local days before ``day`` (oldest first), NaN where absent."""
        wanted = pd.date_range(day - pd.Timedelta(days=days), periods=days, freq="D")
        return self.table.reindex(wanted).to_numpy(float)

    def row(self, day: pd.Timestamp) -> np.ndarray:
        return self.table.reindex([day]).to_numpy(float)[0]

    @property
    def slots(self) -> np.ndarray:
        return self.table.columns.to_numpy(int)


def _zero_days_missing(series: pd.Series, timezone: str) -> pd.Series:
    """NaN for every local day whose values are all exactly zero (the Chinese source's code
    for a missing day), logged as ``forecast_history_zero_day``."""
    days = pd.DatetimeIndex(series.index).tz_convert(zone(timezone)).tz_localize(None).normalize()
    zero = (series.fillna(0.0) == 0.0).groupby(days).transform("all").to_numpy()
    present = series.notna().groupby(days).transform("any").to_numpy()
    missing = zero & present
    if missing.any():
        log.info(
            "forecast_history_zero_day",
            column=series.name,
            days=sorted({d.date().isoformat() for d in days[missing]}),
        )
    return series.mask(missing)


def _local_days_and_slots(index: pd.DatetimeIndex, timezone: str) -> tuple[pd.DatetimeIndex, np.ndarray]:
    local = index.tz_convert(zone(timezone))
    return local.tz_localize(None).normalize(), np.asarray(local.hour * 60 + local.minute)


class Forecaster(abc.ABC):
    """Base class: the look-ahead guard, day handling and error scenarios (see module doc)."""

    name: ClassVar[str]

    def __init__(
        self,
        column: str = "da_price",
        *,
        timezone: str = "UTC",
        scenarios: int = 5,
        error_days: int = 28,
        max_lookback_days: int = 14,
    ) -> None:
        if scenarios < 1 or error_days < 1:
            raise InputError("scenarios and error_days must be >= 1")
        zone(timezone)
        self.column = column
        self.timezone = timezone
        self.scenarios = scenarios
        self.error_days = error_days
        self.max_lookback_days = max_lookback_days

    # -- what each forecaster implements ------------------------------------------------
    @abc.abstractmethod
    def _predict_day(
        self, table: _DayTable, day: pd.Timestamp, context: _Context
    ) -> np.ndarray:
        """Prediction per slot of ``table`` for local ``day``, from rows before ``day`` only."""

    # -- public ---------------------------------------------------------------------------
    def forecast(
        self,
        history: pd.DataFrame,
        index: pd.DatetimeIndex,
        features: pd.DataFrame | None = None,
    ) -> Forecast:
        """Point forecast and scenarios for ``index`` from ``history`` known at decision time."""
        past = self._published_past(history, index)
        table = _DayTable(past[self.column], self.timezone)
        context = _Context(past, features, index, self.timezone)
        days, slots = _local_days_and_slots(index, self.timezone)
        point = np.empty(len(index))
        for day in days.unique():
            mask = np.asarray(days == day)
            point[mask] = self._values_at(table, day, context, slots[mask], target=True)
        if not np.isfinite(point).all():
            raise DataQualityError(
                f"{self.name} forecaster: no usable {self.column} history for some of "
                f"{index[0]}..{index[-1]} (nothing within {self.max_lookback_days} days before)"
            )
        errors = self._error_profiles(table, context, days.unique()[0])
        return self._with_scenarios(point, errors, index, days, slots, table.slots)

    # -- internals ------------------------------------------------------------------------
    def _published_past(self, history: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
        """The rows of ``history`` before ``index[0]``, zero-coded days masked (see module doc).

        The look-ahead guard of every forecaster: a value of the target column at or after
        ``index[0]`` raises :class:`~vpp.LookAheadError`.
        """
        require_aware_index(index, "index")
        require_aware_index(history.index, "history.index")
        if self.column not in history.columns:
            raise InputError(f"history has no {self.column!r} column; got {list(history.columns)}")
        ahead = history.index >= index[0]
        if history.loc[ahead, self.column].notna().any():
            first = history.index[ahead & history[self.column].notna().to_numpy()][0]
            raise LookAheadError(
                f"history holds {self.column} at {first}, at or after the first forecast interval "
                f"{index[0]}: cut history at the decision time"
            )
        past = history.loc[~ahead].copy()
        past[self.column] = _zero_days_missing(past[self.column], self.timezone)
        if past[self.column].notna().sum() == 0:
            raise DataQualityError(
                f"{self.name} forecaster: no {self.column} published before {index[0]} "
                f"(the price data starts too late); it needs at least 1 day of history"
            )
        return past

    def _values_at(
        self, table: _DayTable, day: pd.Timestamp, context: _Context, slots: np.ndarray,
        *, target: bool,
    ) -> np.ndarray:
        context.target = target
        context.day = day
        prediction = self._predict_day(table, day, context)
        lookup = pd.Series(prediction, index=table.slots)
        values = lookup.reindex(slots).to_numpy(float)
        if np.isnan(values).any():
            # A slot the history never had (e.g. the repeated DST hour): nearest earlier slot.
            values = pd.Series(values).ffill().bfill().to_numpy()
        return values

    def _error_profiles(
        self, table: _DayTable, context: _Context, first_target_day: pd.Timestamp
    ) -> list[np.ndarray]:
        profiles = []
        for back in range(1, self.error_days + 1):
            day = first_target_day - pd.Timedelta(days=back)
            actual = table.row(day)
            if np.isnan(actual).any():
                continue
            predicted = self._values_at(table, day, context, table.slots, target=False)
            if np.isnan(predicted).any():
                continue
            profiles.append(actual - predicted)
        return profiles

    def _with_scenarios(
        self,
        point: np.ndarray,
        errors: list[np.ndarray],
        index: pd.DatetimeIndex,
        days: pd.DatetimeIndex,
        slots: np.ndarray,
        table_slots: np.ndarray,
    ) -> Forecast:
        point_series = pd.Series(point, index=index, name=self.column)
        if not errors or self.scenarios == 1:
            if self.scenarios > 1:
                log.info("forecast_fallback", forecaster=self.name, reason="no error history")
            return Forecast.from_point(point_series)
        ranked = sorted(errors, key=lambda e: float(np.mean(e)))
        count = min(self.scenarios, len(ranked))
        picks = [
            ranked[min(int((k + 0.5) / count * len(ranked)), len(ranked) - 1)] for k in range(count)
        ]
        position = pd.Series(np.arange(len(table_slots)), index=table_slots)
        columns = position.reindex(slots).ffill().bfill().to_numpy(int)
        matrix = np.array([point + profile[columns] for profile in picks])
        return Forecast(
            point_series,
            pd.DataFrame(matrix.T, index=index, columns=[f"s{k}" for k in range(count)]),
            np.full(count, 1.0 / count),
        )

    def _latest(self, table: _DayTable, day: pd.Timestamp, lags: Sequence[int]) -> np.ndarray:
        """For each slot the value at the first of ``lags`` (days back) that has one."""
        out = np.full(len(table.slots), np.nan)
        for lag in lags:
            row = table.row(day - pd.Timedelta(days=lag))
            fill = np.isnan(out) & ~np.isnan(row)
            out[fill] = row[fill]
            if not np.isnan(out).any():
                break
        return out


@dataclass
class _Context:
    history: pd.DataFrame
    features: pd.DataFrame | None
    index: pd.DatetimeIndex
    timezone: str
    target: bool = True
    day: pd.Timestamp | None = None


class Persistence(Forecaster):
    """The same interval on the previous local day."""

    name = "persistence"

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        values = self._latest(table, day, range(1, self.max_lookback_days + 1))
        if context.target and np.isnan(table.row(day - pd.Timedelta(days=1))).any():
            log.info("forecast_fallback", forecaster=self.name, day=day.date().isoformat(),
                     reason="previous day missing; used the most recent day with values")
        return values


class WeeklyPersistence(Forecaster):
    """The same interval one week earlier."""

    name = "weekly"

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        weeks = max(1, self.max_lookback_days // 7)
        values = self._latest(table, day, [7 * k for k in range(1, weeks + 1)])
        if np.isnan(values).any():
            if context.target:
                log.info("forecast_fallback", forecaster=self.name, day=day.date().isoformat(),
                         reason="no value a whole number of weeks back; used persistence")
            daily = self._latest(table, day, range(1, self.max_lookback_days + 1))
            values = np.where(np.isnan(values), daily, values)
        return values


class RollingMedian(Forecaster):
    """Median of the same interval over the last ``window_days`` days."""

    name = "rolling_median"

    def __init__(self, column: str = "da_price", *, window_days: int = 7, **kwargs: Any) -> None:
        super().__init__(column, **kwargs)
        self.window_days = window_days

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        rows = table.before(day, self.window_days)
        out = np.full(rows.shape[1], np.nan)
        present = ~np.isnan(rows).all(axis=0)
        out[present] = np.nanmedian(rows[:, present], axis=0)
        return out


class FundamentalsRegression(Forecaster):
    """Least squares on published fundamentals + hour-of-day dummies (see module doc)."""

    name = "regression"

    def __init__(
        self,
        column: str = "da_price",
        *,
        feature_columns: Sequence[str] | None = None,
        train_days: int = 28,
        **kwargs: Any,
    ) -> None:
        super().__init__(column, **kwargs)
        self.feature_columns = tuple(feature_columns) if feature_columns else None
        self.train_days = train_days
        self._fallback = RollingMedian(column, **kwargs)

    def _features(self, context: _Context) -> tuple[str, ...]:
        if self.feature_columns is not None:
            return self.feature_columns
        return tuple(c for c in FUNDAMENTALS if c in context.history.columns)

    def _design(self, frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
        local = pd.DatetimeIndex(frame.index).tz_convert(zone(self.timezone))
        hours = np.zeros((len(frame), 24))
        hours[np.arange(len(frame)), local.hour] = 1.0
        return np.hstack([frame.loc[:, list(names)].to_numpy(float), hours])

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        names = self._features(context)
        start = (day - pd.Timedelta(days=self.train_days)).tz_localize(zone(self.timezone))
        end = day.tz_localize(zone(self.timezone))
        history = context.history
        train = history.loc[(history.index >= start) & (history.index < end)]
        if context.target:
            rows = context.features
        else:
            next_day = (day + pd.Timedelta(days=1)).tz_localize(zone(self.timezone))
            rows = history.loc[(history.index >= end) & (history.index < next_day)]
        usable = bool(names) and rows is not None and set(names) <= set(rows.columns)
        if usable:
            assert rows is not None
            if context.target:
                local_days, _ = _local_days_and_slots(pd.DatetimeIndex(rows.index), self.timezone)
                rows = rows.loc[np.asarray(local_days == day)]
            train = train.dropna(subset=[*names, self.column])
            usable = len(rows) > 0 and len(train) >= 48 and rows.loc[:, list(names)].notna().all().all()
        if not usable:
            if context.target:
                log.info("forecast_fallback", forecaster=self.name, day=day.date().isoformat(),
                         reason="fundamentals missing; used rolling_median")
            return self._fallback._predict_day(table, day, context)
        assert rows is not None
        x_train = self._design(train, names)
        mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x_train - mean) / scale
        z = np.hstack([np.ones((len(z), 1)), z])
        y = train[self.column].to_numpy(float)
        beta = np.linalg.solve(z.T @ z + 1e-6 * np.eye(z.shape[1]), z.T @ y)
        x_rows = (self._design(rows, names) - mean) / scale
        predicted = np.hstack([np.ones((len(x_rows), 1)), x_rows]) @ beta
        local = pd.DatetimeIndex(rows.index).tz_convert(zone(self.timezone))
        by_slot = pd.Series(predicted, index=local.hour * 60 + local.minute).groupby(level=0).mean()
        return by_slot.reindex(table.slots).to_numpy(float)


FORECASTERS: dict[str, Callable[..., Forecaster]] = {
    cls.name: cls for cls in (Persistence, WeeklyPersistence, RollingMedian, FundamentalsRegression)
}


#: Forecasters of real-time prices only, usable as ``rt_forecaster`` (``day_ahead``,
#: ``da_spread``: :mod:`strategies.realtime_forecast` registers them); any of
#: :data:`FORECASTERS` may forecast ``rt_price`` too.
RT_FORECASTERS: dict[str, Callable[..., Forecaster]] = {}

#: Forecasters of PV output only (``clear_sky``: :mod:`strategies.pv_forecast` registers
#: it; it needs the clear-sky output as a ``clear_sky_kw`` column); any of
#: :data:`FORECASTERS` may forecast PV output too.
PV_FORECASTERS: dict[str, Callable[..., Forecaster]] = {}


def get_forecaster(name: str, **kwargs: Any) -> Forecaster:
    """A forecaster by name (``persistence``, ``weekly``, ``rolling_median``, ``regression``,
    ``gbm``, ``arx``; for real-time prices also ``day_ahead``, ``da_spread``; for PV output also
    ``clear_sky``)."""
    factory = FORECASTERS.get(name) or RT_FORECASTERS.get(name) or PV_FORECASTERS.get(name)
    if factory is None:
        choices = ", ".join([*FORECASTERS, *RT_FORECASTERS, *PV_FORECASTERS])
        raise InputError(f"unknown forecaster {name!r}; choose one of {choices}")
    return factory(**kwargs)
