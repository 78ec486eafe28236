"""Forecast scores and the walk-forward evaluation behind ``vpp forecast evaluate``.

Scores over all evaluated intervals (prices in [currency/MWh]):

* ``mae``, ``rmse`` of the point forecast;
* ``pinball``: the mean pinball (quantile) loss over the levels 0.1, 0.5 and
  0.9, ``max(q (y - f_q), (q - 1)(y - f_q))`` averaged over intervals and
  levels [currency/MWh]; lower is better, and at the single level 0.5 it is
  half the absolute error;
* ``coverage``: the share of intervals whose actual value lies in the
  forecast 10-90 % band, ``f_0.1 <= y <= f_0.9`` (0.8 when calibrated);
* ``mae_vs_persistence``: ``mae`` over the ``persistence`` forecaster's
  ``mae`` on the same days and intervals (< 1 beats it).

Quantiles come from :meth:`strategies.forecast.Forecast.quantile_values`: a
quantile forecaster's own (``gbm``, ``da_spread``), otherwise the empirical
quantiles of the forecaster's error scenarios.

**Walk-forward.** For each delivery day the caller's ``history_at(decision)``
returns what was published at the decision time (in the CLI: the replay
exchange's history at the day-ahead gate closure), each forecaster forecasts
the whole day from it, and the day's actual values are compared. A day that
any forecaster cannot forecast (no history yet, missing actuals) is skipped
for all of them, so the ratios compare like with like.

**Measured series** (PV output [kW], load [kW], EV arriving energy [kWh per
interval]): :func:`walk_forward_series` decides each day at noon local time
the day before (:func:`series_decision_time`) from the rows before it, and
hands the columns known in advance (the PV clear-sky output) over as features.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import structlog

from strategies.forecast import get_forecaster
from vpp.errors import DataQualityError, InputError, LookAheadError
from vpp.timeutil import day_intervals_utc, require_aware_index, zone

log = structlog.get_logger(__name__)

LEVELS = (0.1, 0.5, 0.9)
BAND = (0.1, 0.9)
BASELINE = "persistence"


def pinball_loss(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> float:
    """Mean pinball loss of ``quantiles`` (T, L) at ``levels`` (L,) for ``actual`` (T,)."""
    y = np.asarray(actual, dtype=float)[:, None]
    q = np.asarray(levels, dtype=float)[None, :]
    error = y - np.asarray(quantiles, dtype=float)
    return float(np.mean(np.maximum(q * error, (q - 1.0) * error)))


def band_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of ``actual`` within ``[lower, upper]`` (bounds inclusive), in [0, 1]."""
    y = np.asarray(actual, dtype=float)
    if y.size == 0:
        raise InputError("band coverage of no values")
    return float(np.mean((y >= np.asarray(lower, float)) & (y <= np.asarray(upper, float))))


@dataclass(frozen=True)
class ForecastScore:
    """The scores of one forecaster on one target (see module doc)."""

    forecaster: str
    target: str
    mae: float
    rmse: float
    pinball: float
    coverage: float
    mae_vs_persistence: float
    days: int
    intervals: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(
    name: str, target: str, actual: np.ndarray, point: np.ndarray, quantiles: np.ndarray,
    baseline_mae: float, days: int,
) -> ForecastScore:
    """The scores of a point forecast and its quantiles at :data:`LEVELS` for ``actual``."""
    error = np.asarray(point, float) - np.asarray(actual, float)
    mae = float(np.mean(np.abs(error)))
    low, high = LEVELS.index(BAND[0]), LEVELS.index(BAND[1])
    return ForecastScore(
        forecaster=name,
        target=target,
        mae=mae,
        rmse=float(np.sqrt(np.mean(error**2))),
        pinball=pinball_loss(actual, quantiles, LEVELS),
        coverage=band_coverage(actual, quantiles[:, low], quantiles[:, high]),
        mae_vs_persistence=mae / baseline_mae if baseline_mae > 0 else float("nan"),
        days=days,
        intervals=len(error),
    )


def walk_forward(
    days: Sequence[dt.date],
    *,
    history_at: Callable[[dt.datetime], pd.DataFrame],
    decision_time: Callable[[dt.date], dt.datetime],
    day_index: Callable[[dt.date], pd.DatetimeIndex],
    actual: pd.Series,
    forecasters: Sequence[str],
    timezone: str,
    target: str = "da_price",
    scenarios: int = 5,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[dt.date], None] | None = None,
    features_at: Callable[[pd.DatetimeIndex], pd.DataFrame] | None = None,
    label: str | None = None,
) -> list[ForecastScore]:
    """Scores of ``forecasters`` (and :data:`BASELINE`) forecasting ``target`` day by day.

    ``actual``: the realised ``target`` values on UTC interval starts;
    ``options``: extra keyword arguments per forecaster name. ``progress`` is
    called once per day. ``features_at(index)``: what is known in advance about
    the day's intervals (published fundamentals, the PV clear-sky output), handed
    to every forecaster; ``label``: the scores' ``target`` (default: ``da``/``rt``
    for the price columns, else ``target``). Raises :class:`~vpp.InputError` when no day could be
    evaluated.
    """
    names = list(dict.fromkeys([*forecasters, BASELINE]))
    options = options or {}
    points: dict[str, list[np.ndarray]] = {n: [] for n in names}
    bands: dict[str, list[np.ndarray]] = {n: [] for n in names}
    actuals: list[np.ndarray] = []
    skipped: list[str] = []
    for day in days:
        index = day_index(day)
        truth = actual.reindex(index).to_numpy(float)
        if np.isnan(truth).any() or (truth == 0).all():
            skipped.append(day.isoformat())
            if progress:
                progress(day)
            continue
        history = history_at(decision_time(day))
        features = None if features_at is None else features_at(index)
        made: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        try:
            for name in names:
                forecaster = get_forecaster(
                    name, column=target, timezone=timezone, scenarios=scenarios,
                    **options.get(name, {}),
                )
                forecast = forecaster.forecast(history, index, features)
                made[name] = (forecast.point.to_numpy(float), forecast.quantile_values(LEVELS))
        except (DataQualityError, LookAheadError) as exc:
            log.info("evaluation_day_skipped", day=day.isoformat(), reason=str(exc))
            skipped.append(day.isoformat())
            if progress:
                progress(day)
            continue
        for name, (point, quantiles) in made.items():
            points[name].append(point)
            bands[name].append(quantiles)
        actuals.append(truth)
        if progress:
            progress(day)
    if not actuals:
        raise InputError(
            f"no day between {days[0] if days else '-'} and {days[-1] if days else '-'} could be "
            f"evaluated for {target} (skipped: {', '.join(skipped) or 'none'}); give a range "
            "with complete data after the file's first day"
        )
    if skipped:
        log.info("evaluation_days_skipped", days=skipped)
    y = np.concatenate(actuals)
    label = label or {"da_price": "da", "rt_price": "rt"}.get(target, target)
    baseline_mae = float(np.mean(np.abs(np.concatenate(points[BASELINE]) - y)))
    return [
        score(name, label, y, np.concatenate(points[name]), np.vstack(bands[name]),
              baseline_mae, len(actuals))
        for name in dict.fromkeys(forecasters)
    ]


#: Decision time of a series forecast (``vpp forecast evaluate --target pv|load|ev``): this
#: local time on the day before delivery, the gate closure of a noon day-ahead auction.
SERIES_DECISION_TIME = dt.time(12, 0)


def series_decision_time(day: dt.date, timezone: str) -> dt.datetime:
    """:data:`SERIES_DECISION_TIME` on the local day before ``day``, tz-aware."""
    return dt.datetime.combine(day - dt.timedelta(days=1), SERIES_DECISION_TIME, tzinfo=zone(timezone))


def walk_forward_series(
    frame: pd.DataFrame,
    days: Sequence[dt.date],
    *,
    target: str,
    label: str,
    timezone: str,
    forecasters: Sequence[str],
    known_in_advance: Sequence[str] = (),
    scenarios: int = 5,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[dt.date], None] | None = None,
) -> list[ForecastScore]:
    """:func:`walk_forward` over a measured series (PV output, load, EV energy).

    ``frame``: UTC interval starts (one constant step) and the ``target`` column, plus the
    ``known_in_advance`` columns (the PV clear-sky output), which are handed over for the
    day's intervals as features. Each day is forecast at :func:`series_decision_time` from
    the rows strictly before it; the day's actual ``target`` values are compared.
    """
    require_aware_index(frame.index, "frame.index")
    if target not in frame.columns:
        raise InputError(f"frame has no {target!r} column; got {list(frame.columns)}")
    steps = np.unique(np.diff(frame.index.as_unit("ns").asi8))
    if len(steps) != 1:
        raise InputError("frame must have one constant interval length")
    minutes = int(steps[0] // 60_000_000_000)
    known = list(known_in_advance)

    def history_at(when: dt.datetime) -> pd.DataFrame:
        return frame.loc[frame.index < pd.Timestamp(when)]

    def features_at(index: pd.DatetimeIndex) -> pd.DataFrame:
        return frame.loc[:, known].reindex(index)

    return walk_forward(
        days,
        history_at=history_at,
        decision_time=lambda day: series_decision_time(day, timezone),
        day_index=lambda day: day_intervals_utc(day, timezone, minutes),
        actual=frame[target],
        forecasters=forecasters,
        timezone=timezone,
        target=target,
        scenarios=scenarios,
        options=options,
        progress=progress,
        features_at=features_at if known else None,
        label=label,
    )
