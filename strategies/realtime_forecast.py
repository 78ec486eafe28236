"""Real-time price forecasters (``rt_forecaster``): the day-ahead price plus what real time said so far.

Both forecast ``rt_price`` for the remaining intervals of a delivery day and
need the day-ahead price of those intervals in ``history`` (published before
delivery); without it they raise :class:`~vpp.LookAheadError`, like the
default real-time forecast, so the operator holds its plan. Real-time values
at or after the first target interval are refused by the base class's guard.

``day_ahead``
    The published day-ahead price (the strategies' default real-time
    forecast, registered so it can be named and evaluated).
``da_spread``
    ``da_price(t) + w(h) * recent + (1 - w(h)) * bias(t)``: ``recent`` is the
    mean real-time minus day-ahead spread over the last ``recent_intervals``
    published intervals, ``bias(t)`` the median spread at the same local
    time of day over the last ``bias_days`` days, and ``w(h) = 2 ** (-h /
    half_life_h)`` decays with the horizon ``h`` [h] from the end of the
    last published real-time interval to the start of ``t``: the current
    deviation persists for a while, then the usual intraday spread takes
    over. Its quantiles (0.1, 0.5, 0.9) replace ``bias(t)`` by the spread's
    empirical quantiles at that time of day; with ``scenarios > 1`` they
    become scenarios like ``gbm``'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategies.forecast import RT_FORECASTERS, Forecast, Forecaster, _Context, _DayTable
from vpp.errors import InputError, LookAheadError


class _FromDayAhead(Forecaster):
    """Shared: the look-ahead guard and the delivery day's published day-ahead prices."""

    levels: ClassVar[tuple[float, ...]] = (0.1, 0.5, 0.9)

    def __init__(self, column: str = "rt_price", **kwargs: Any) -> None:
        if column == "da_price":
            raise InputError(
                f"the {self.name} forecaster forecasts real-time prices from the day-ahead price; "
                "use it as rt_forecaster (or --target rt), not for da_price"
            )
        super().__init__(column, **kwargs)

    def _predict_day(self, table: _DayTable, day: pd.Timestamp, context: _Context) -> np.ndarray:
        raise NotImplementedError  # forecast() is overridden

    def _day_ahead(self, history: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
        if "da_price" not in history.columns:
            raise InputError(f"the {self.name} forecaster needs da_price in history")
        known = history["da_price"].reindex(index)
        if known.isna().any():
            missing = index[known.isna().to_numpy()][0]
            raise LookAheadError(
                f"no published day-ahead price for {missing} in history; the {self.name} "
                "forecaster needs the delivery day's day-ahead prices"
            )
        return known.to_numpy(float)


class DayAheadPrice(_FromDayAhead):
    """The published day-ahead price as the real-time forecast."""

    name = "day_ahead"

    def forecast(
        self, history: pd.DataFrame, index: pd.DatetimeIndex, features: pd.DataFrame | None = None
    ) -> Forecast:
        self._published_past(history, index)
        point = pd.Series(self._day_ahead(history, index), index=index, name=self.column)
        return Forecast.from_point(point)


class DayAheadSpread(_FromDayAhead):
    """Day-ahead price + recent real-time spread decaying with the horizon (see module doc)."""

    name = "da_spread"

    def __init__(
        self,
        column: str = "rt_price",
        *,
        recent_intervals: int = 4,
        half_life_h: float = 1.0,
        bias_days: int = 14,
        **kwargs: Any,
    ) -> None:
        super().__init__(column, **kwargs)
        if recent_intervals < 1 or half_life_h <= 0 or bias_days < 1:
            raise InputError(
                "da_spread: recent_intervals and bias_days must be >= 1, half_life_h > 0"
            )
        self.recent_intervals = recent_intervals
        self.half_life_h = half_life_h
        self.bias_days = bias_days

    def forecast(
        self, history: pd.DataFrame, index: pd.DatetimeIndex, features: pd.DataFrame | None = None
    ) -> Forecast:
        past = self._published_past(history, index)
        day_ahead = self._day_ahead(history, index)
        spread = (past[self.column] - past["da_price"]).dropna() if "da_price" in past else None
        if spread is None or spread.empty:
            point = pd.Series(day_ahead, index=index, name=self.column)
            return Forecast.from_point(point)
        step = pd.Timedelta(minutes=self._minutes(past.index))
        last_end = spread.index[-1] + step
        recent = float(spread.iloc[-self.recent_intervals :].mean())
        horizon_h = np.asarray((index - last_end) / pd.Timedelta(hours=1), dtype=float)
        weight = np.power(2.0, -np.maximum(horizon_h, 0.0) / self.half_life_h)
        table = _DayTable(spread.rename(self.column), self.timezone)
        rows = table.before(table.table.index.max() + pd.Timedelta(days=1), self.bias_days)
        levels = np.array(self.levels)
        by_slot = np.zeros((rows.shape[1], len(levels)))
        present = ~np.isnan(rows).all(axis=0)
        if present.any():
            by_slot[present] = np.nanquantile(rows[:, present], levels, axis=0).T
        local = index.tz_convert(self.timezone)
        slots = pd.Series(np.arange(len(table.slots)), index=table.slots)
        position = slots.reindex(local.hour * 60 + local.minute).ffill().bfill().fillna(0)
        bias = by_slot[position.to_numpy(int)]  # (T, levels)
        values = day_ahead[:, None] + weight[:, None] * recent + (1.0 - weight[:, None]) * bias
        values = np.sort(values, axis=1)
        quantiles = pd.DataFrame(values, index=index, columns=list(levels))
        return Forecast.from_quantiles(quantiles, self.scenarios, name=self.column)

    @staticmethod
    def _minutes(index: pd.Index) -> int:
        steps = np.diff(pd.DatetimeIndex(index).as_unit("ns").asi8)
        if len(steps) == 0:
            return 15
        values, counts = np.unique(steps, return_counts=True)
        return int(values[np.argmax(counts)] // 60_000_000_000)


RT_FORECASTERS.update({cls.name: cls for cls in (DayAheadPrice, DayAheadSpread)})
