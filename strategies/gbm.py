"""``gbm``: quantile gradient-boosted trees on lagged prices, calendars and published fundamentals.

**Why LightGBM** (rather than XGBoost): a native ``quantile`` objective
(one model per level, no custom loss), fast histogram training on the two
cores a backtest machine may have (a 42-day, 96-interval window trains three
models in well under a second), missing values handled natively (a feature a
file lacks on some day is NaN, not a guess), and a small wheel with no
compiler or GPU stack. Trained through ``lightgbm.train`` on numpy arrays, so
scikit-learn is not needed.

**Features** of an interval of local delivery day ``D`` (all known at the
day-ahead gate closure, and refused otherwise by the look-ahead guard of
:class:`~strategies.forecast.Forecaster`):

* lagged values of the target column at the same local time of day:
  ``lag_days`` days back (default 1, 2, 7), the most recent earlier value
  (up to ``max_lookback_days``), the mean and spread of the last 7 days at
  that time, and the mean of the most recent day;
* calendar in market-local time: minutes after midnight, hour, weekday, and
  whether ``D``, ``D-1`` and ``D+1`` are days off -- public holidays and
  weekends, with China's make-up workdays (调休) counted as workdays
  (``chinese_calendar``; ``holidays`` for DK, DE and US-TX; chosen from the
  market time zone or ``holiday_country``);
* published fundamentals for the interval (columns ending ``_forecast_mw``
  and ``bidding_space_mw``, e.g. load, renewables, wind, PV, hydro, tie-line
  forecasts of the Chinese file) and their change against the same time on
  ``D-1``; for a target other than ``da_price`` (real time), the delivery
  day's day-ahead price once it is published.

The models learn the target minus its 7-day mean at that time of day
(trees cannot extrapolate a level they never saw; the residual travels
across price regimes) and add it back.

**Rolling training.** Training days are the complete local days of the
target column in the ``train_days`` days before an anchor day; the anchor is
the delivery day rounded down to a multiple of ``retrain_every_days`` days
(on a fixed grid, so a walk-forward backtest retrains every few days and
reuses the models in between). Everything comes from the ``history`` frame
handed in, cut at the decision time by the caller; trained models are cached
by a digest of their training data, so a cache hit can only return a model
trained on exactly the same rows. Fewer than ``min_train_days`` complete
days: the ``persistence`` forecast (logged ``forecast_fallback``).

**Quantiles and scenarios.** One model per level of ``quantiles`` (default
0.1, 0.5, 0.9); per interval the predictions are sorted (no crossing), the
point forecast is the median and the scenarios are the quantiles at levels
``(k + 1/2) / scenarios`` (:meth:`~strategies.forecast.Forecast.from_quantiles`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import structlog

from strategies.forecast import FORECASTERS, Forecast, Forecaster, Persistence, _Context, _DayTable
from vpp.errors import InputError
from vpp.timeutil import zone

log = structlog.get_logger(__name__)

#: Holiday calendar by market time zone (``holiday_country`` overrides it).
HOLIDAY_COUNTRIES = {
    "Asia/Shanghai": "CN",
    "Europe/Copenhagen": "DK",
    "Europe/Berlin": "DE",
    "America/Chicago": "US-TX",
}

_CACHE: OrderedDict[str, list[Any]] = OrderedDict()
_CACHE_SIZE = 16


@lru_cache(maxsize=4096)
def day_off(day: dt.date, country: str | None) -> bool:
    """Whether local ``day`` is a day off: a public holiday or a weekend that is not a workday.

    ``CN``: ``chinese_calendar`` (statutory holidays and make-up workdays 调休);
    ``DK``, ``DE``, ``US-TX`` (any ``holidays`` country, ``-`` separating a
    subdivision): weekend or public holiday. ``None``, or a year the
    calendar does not cover: weekends only.
    """
    weekend = day.weekday() >= 5
    if country is None:
        return weekend
    if country == "CN":
        import chinese_calendar

        try:
            return not chinese_calendar.is_workday(day)
        except NotImplementedError:  # the package covers 2004 up to its release year
            return weekend
    import holidays

    code, _, subdivision = country.partition("-")
    calendar = holidays.country_holidays(code, subdiv=subdivision or None, years=day.year)
    return weekend or day in calendar


def calendar_features(day: pd.Timestamp, country: str | None) -> np.ndarray:
    """``[weekday, off D, off D-1, off D+1, make-up workday]`` of local ``day``."""
    date = day.date()
    off = day_off(date, country)
    return np.array(
        [
            date.weekday(),
            off,
            day_off(date - dt.timedelta(days=1), country),
            day_off(date + dt.timedelta(days=1), country),
            date.weekday() >= 5 and not off,
        ],
        dtype=float,
    )


def fundamental_columns(columns: Sequence[str]) -> list[str]:
    """The columns published before gate closure that ``gbm`` uses by default."""
    return [c for c in columns if c.endswith("_forecast_mw") or c == "bidding_space_mw"]


class GradientBoosting(Forecaster):
    """LightGBM quantile forecaster (see module doc)."""

    name = "gbm"

    def __init__(
        self,
        column: str = "da_price",
        *,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        train_days: int = 42,
        retrain_every_days: int = 7,
        min_train_days: int = 7,
        lag_days: Sequence[int] = (1, 2, 7),
        feature_columns: Sequence[str] | None = None,
        holiday_country: str | None = None,
        n_estimators: int = 150,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        threads: int = 1,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(column, **kwargs)
        levels = np.asarray(sorted(quantiles), dtype=float)
        if not len(levels) or not ((levels > 0) & (levels < 1)).all() or 0.5 not in levels:
            raise InputError(
                f"gbm quantiles = {list(quantiles)}: levels must lie in (0, 1) and include 0.5"
            )
        if train_days < 1 or retrain_every_days < 1 or min_train_days < 1:
            raise InputError("gbm train_days, retrain_every_days and min_train_days must be >= 1")
        self.quantiles = tuple(float(q) for q in levels)
        self.train_days = train_days
        self.retrain_every_days = retrain_every_days
        self.min_train_days = min_train_days
        self.lag_days = tuple(lag_days)
        self.feature_columns = None if feature_columns is None else tuple(feature_columns)
        self.country = holiday_country or HOLIDAY_COUNTRIES.get(self.timezone)
        self.params = {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_child_samples": min_child_samples,
            "threads": threads,
            "seed": seed,
        }
        self._fallback = Persistence(column, **kwargs)
        #: The last interval start whose target value the latest fit trained on (a spy's hook).
        self.trained_through: pd.Timestamp | None = None

    # The base class's per-day hook: the persistence fallback (used by no path of gbm's own).
    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        return self._fallback._predict_day(table, day, context)

    def forecast(
        self,
        history: pd.DataFrame,
        index: pd.DatetimeIndex,
        features: pd.DataFrame | None = None,
    ) -> Forecast:
        """Quantile forecast for ``index`` from ``history`` known at decision time."""
        past = self._published_past(history, index)
        table = _DayTable(past[self.column], self.timezone)
        tz = zone(self.timezone)
        local = index.tz_convert(tz)
        days = local.tz_localize(None).normalize()
        first_day = days[0]
        names = self._usable_columns(history, index, features)
        tables = {name: _DayTable(past[name], self.timezone) for name in names if name in past}
        anchor = first_day - pd.Timedelta(days=first_day.toordinal() % self.retrain_every_days)
        train = self._training_set(past, table, tables, names, anchor)
        if train is None or len(np.unique(train[2])) < self.min_train_days:
            anchor = first_day
            train = self._training_set(past, table, tables, names, anchor)
        if train is None or len(np.unique(train[2])) < self.min_train_days:
            log.info("forecast_fallback", forecaster=self.name, day=first_day.date().isoformat(),
                     reason=f"fewer than {self.min_train_days} complete days to train on; "
                     "used persistence")
            self._fallback.scenarios = self.scenarios
            return self._fallback.forecast(history, index, features)
        x_train, y_train, train_days, trained_through = train
        self.trained_through = trained_through
        models = self._models(x_train, y_train, names, anchor)
        target_rows = self._target_frame(history, index, features, names)
        x = np.vstack(
            [
                self._design(table, tables, names, day, local[np.asarray(days == day)],
                             target_rows.loc[np.asarray(days == day)])
                for day in days.unique()
            ]
        )
        base = x[:, 0]  # the 7-day mean at that time of day (first design column)
        predicted = np.column_stack([base + model.predict(x) for model in models])
        if np.isnan(predicted).any() and np.isfinite(predicted).any():
            # A time of day the history never had (the repeated DST hour): nearest earlier one.
            predicted = pd.DataFrame(predicted).ffill().bfill().to_numpy()
        predicted = np.sort(predicted, axis=1)
        if not np.isfinite(predicted).all():
            log.info("forecast_fallback", forecaster=self.name, day=first_day.date().isoformat(),
                     reason="no 7-day history at some time of day; used persistence")
            self._fallback.scenarios = self.scenarios
            return self._fallback.forecast(history, index, features)
        quantiles = pd.DataFrame(predicted, index=index, columns=list(self.quantiles))
        log.debug("gbm_forecast", column=self.column, day=first_day.date().isoformat(),
                  train_days=len(np.unique(train_days)), features=len(names))
        return Forecast.from_quantiles(quantiles, self.scenarios, name=self.column)

    # -- data ---------------------------------------------------------------------------
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
        rows = self._target_frame(history, index, features, wanted)
        return [c for c in wanted if c in history.columns and rows[c].notna().all()]

    @staticmethod
    def _target_frame(
        history: pd.DataFrame,
        index: pd.DatetimeIndex,
        features: pd.DataFrame | None,
        names: Sequence[str],
    ) -> pd.DataFrame:
        """Published values of ``names`` for the target intervals: ``features``, else ``history``."""
        out = pd.DataFrame(index=index)
        for name in names:
            values = pd.Series(np.nan, index=index)
            if name in history.columns:
                values = history[name].reindex(index).astype(float)
            if features is not None and name in features.columns:
                values = features[name].reindex(index).astype(float).fillna(values)
            out[name] = values
        return out

    def _training_set(
        self,
        past: pd.DataFrame,
        table: _DayTable,
        tables: dict[str, _DayTable],
        names: Sequence[str],
        anchor: pd.Timestamp,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Timestamp] | None:
        tz = zone(self.timezone)
        local = pd.DatetimeIndex(past.index).tz_convert(tz)
        days = local.tz_localize(None).normalize()
        in_window = (days >= anchor - pd.Timedelta(days=self.train_days)) & (days < anchor)
        window = past.loc[np.asarray(in_window)]
        if window.empty:
            return None
        window_days = days[np.asarray(in_window)]
        complete = window[self.column].notna().groupby(window_days).transform("all").to_numpy()
        window, window_days = window.loc[complete], window_days[complete]
        if window.empty:
            return None
        blocks, targets, labels = [], [], []
        window_local = pd.DatetimeIndex(window.index).tz_convert(tz)
        for day in window_days.unique():
            mask = np.asarray(window_days == day)
            rows = window.loc[mask]
            blocks.append(self._design(table, tables, names, day, window_local[mask], rows))
            targets.append(rows[self.column].to_numpy(float))
            labels.append(np.full(int(mask.sum()), day.toordinal()))
        x = np.vstack(blocks)
        y = np.concatenate(targets)
        keep = np.isfinite(x[:, 0])
        if not keep.any():
            return None
        return x[keep], y[keep], np.concatenate(labels)[keep], pd.Timestamp(window.index[-1])

    def _design(
        self,
        table: _DayTable,
        tables: dict[str, _DayTable],
        names: Sequence[str],
        day: pd.Timestamp,
        local: pd.DatetimeIndex,
        rows: pd.DataFrame,
    ) -> np.ndarray:
        """The feature matrix of ``rows`` (intervals of local ``day``), from rows before ``day``."""
        slots = np.asarray(local.hour * 60 + local.minute)
        lookup = pd.Series(np.arange(len(table.slots)), index=table.slots)
        position = lookup.reindex(slots).to_numpy()
        missing = np.isnan(position)
        position = np.where(missing, 0, position).astype(int)

        def at(values: np.ndarray) -> np.ndarray:
            out = values[position].astype(float)
            out[missing] = np.nan
            return out

        week = table.before(day, 7)
        with np.errstate(all="ignore"):
            present = ~np.isnan(week).all(axis=0)
            week_mean = np.full(week.shape[1], np.nan)
            week_std = np.full(week.shape[1], np.nan)
            week_mean[present] = np.nanmean(week[:, present], axis=0)
            week_std[present] = np.nanstd(week[:, present], axis=0)
            latest = self._latest(table, day, range(1, self.max_lookback_days + 1))
            latest_mean = np.nanmean(latest) if np.isfinite(latest).any() else np.nan
        columns = [at(week_mean), at(latest) - at(week_mean), at(week_std)]
        columns += [at(table.row(day - pd.Timedelta(days=k))) - at(week_mean) for k in self.lag_days]
        columns.append(np.full(len(rows), latest_mean - np.nanmean(week_mean) if present.any() else np.nan))
        columns += [slots.astype(float), np.asarray(local.hour, dtype=float)]
        calendar = calendar_features(day, self.country)
        columns += [np.full(len(rows), value) for value in calendar]
        for name in names:
            values = rows[name].to_numpy(float) if name in rows else np.full(len(rows), np.nan)
            columns.append(values)
            if name in tables:
                columns.append(values - at(tables[name].row(day - pd.Timedelta(days=1))))
            else:
                columns.append(np.full(len(rows), np.nan))
            if name == "da_price":
                columns.append(values - at(week_mean))
        return np.column_stack(columns)

    # -- models -------------------------------------------------------------------------
    def _models(
        self, x: np.ndarray, y: np.ndarray, names: Sequence[str], anchor: pd.Timestamp
    ) -> list[Any]:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.column, self.quantiles, self.params, tuple(names))).encode())
        digest.update(np.ascontiguousarray(x).tobytes())
        digest.update(np.ascontiguousarray(y).tobytes())
        key = digest.hexdigest()
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        import lightgbm

        residual = y - x[:, 0]
        dataset = lightgbm.Dataset(x, residual, free_raw_data=False, params={"verbose": -1})
        models = []
        for level in self.quantiles:
            params = {
                "objective": "quantile",
                "alpha": level,
                "learning_rate": self.params["learning_rate"],
                "num_leaves": self.params["num_leaves"],
                "min_data_in_leaf": self.params["min_child_samples"],
                "num_threads": self.params["threads"],
                "seed": self.params["seed"],
                "deterministic": True,
                "force_row_wise": True,
                "verbose": -1,
            }
            models.append(
                lightgbm.train(params, dataset, num_boost_round=int(self.params["n_estimators"]))
            )
        log.info("gbm_trained", column=self.column, anchor=anchor.date().isoformat(),
                 rows=len(y), features=x.shape[1], levels=list(self.quantiles))
        _CACHE[key] = models
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return models


FORECASTERS[GradientBoosting.name] = GradientBoosting
