"""Forecasters: known values, no look-ahead, missing-data fallbacks, DST, error scenarios."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from structlog.testing import capture_logs

from strategies.forecast import FORECASTERS, Forecast, get_forecaster
from vpp.errors import LookAheadError
from vpp.timeutil import day_intervals_utc

TZ = "Asia/Shanghai"


def _history(frame: pd.DataFrame, day: dt.date) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    index = day_intervals_utc(day, TZ, 15)
    return frame[frame.index < index[0]], index


def test_persistence_is_yesterday_same_interval(cn_frame) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 20))
    forecast = get_forecaster("persistence", timezone=TZ).forecast(history, index)
    yesterday = cn_frame.loc[index - pd.Timedelta(days=1), "da_price"].to_numpy()
    assert forecast.point.to_numpy() == pytest.approx(yesterday)
    assert forecast.point.index.equals(index)


def test_weekly_persistence_is_last_week(cn_frame) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 20))
    forecast = get_forecaster("weekly", timezone=TZ).forecast(history, index)
    assert forecast.point.to_numpy() == pytest.approx(
        cn_frame.loc[index - pd.Timedelta(days=7), "da_price"].to_numpy()
    )


def test_rolling_median_over_window(cn_frame) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 20))
    forecast = get_forecaster("rolling_median", timezone=TZ, window_days=3).forecast(history, index)
    lags = np.array([cn_frame.loc[index - pd.Timedelta(days=k), "da_price"].to_numpy()
                     for k in (1, 2, 3)])
    assert forecast.point.to_numpy() == pytest.approx(np.median(lags, axis=0))


def test_regression_recovers_a_linear_price() -> None:
    index_all = pd.date_range("2025-03-01", periods=96 * 40, freq="15min", tz="UTC")
    rng = np.random.default_rng(1)
    load = rng.uniform(1000, 2000, len(index_all))
    frame = pd.DataFrame({"load_forecast_mw": load, "da_price": 0.3 * load + 20.0}, index=index_all)
    target = index_all[-96:]
    history = frame.loc[frame.index < target[0]]
    forecast = get_forecaster("regression", feature_columns=["load_forecast_mw"]).forecast(
        history, target, frame.loc[target, ["load_forecast_mw"]]
    )
    assert forecast.point.to_numpy() == pytest.approx(frame.loc[target, "da_price"].to_numpy(), rel=1e-4)


def test_regression_falls_back_without_features(cn_frame) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 20))
    with capture_logs() as logs:
        forecast = get_forecaster("regression", timezone=TZ).forecast(history, index, None)
    assert any(e["event"] == "forecast_fallback" for e in logs)
    assert np.isfinite(forecast.point).all()


def test_regression_uses_published_fundamentals(cn_frame) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 27))
    features = cn_frame.loc[index, ["load_forecast_mw", "renewable_forecast_mw", "bidding_space_mw"]]
    forecast = get_forecaster("regression", timezone=TZ).forecast(history, index, features)
    actual = cn_frame.loc[index, "da_price"].to_numpy()
    naive = get_forecaster("persistence", timezone=TZ).forecast(history, index).point.to_numpy()
    # Not a benchmark, a sanity check: the fit is in the right range of the real prices.
    assert np.abs(forecast.point.to_numpy() - actual).mean() < 3 * np.abs(naive - actual).mean() + 50


def test_history_at_or_after_target_is_refused(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 20), TZ, 15)
    with pytest.raises(LookAheadError, match="cut history"):
        get_forecaster("persistence", timezone=TZ).forecast(cn_frame, index)


def test_rows_ahead_without_values_are_allowed(cn_frame) -> None:  # type: ignore[no-untyped-def]
    # Published fundamentals may sit in later rows as long as the price itself is absent.
    index = day_intervals_utc(dt.date(2025, 5, 20), TZ, 15)
    history = cn_frame.copy()
    history.loc[history.index >= index[0], "da_price"] = np.nan
    forecast = get_forecaster("persistence", timezone=TZ).forecast(history, index)
    assert np.isfinite(forecast.point).all()


def test_zero_coded_missing_day_falls_back(cn_frame) -> None:  # type: ignore[no-untyped-def]
    # The source codes the day-ahead prices of 2025-05-09 as all zeros (missing).
    history, index = _history(cn_frame, dt.date(2025, 5, 10))
    assert (cn_frame.loc[index - pd.Timedelta(days=1), "da_price"] == 0).all()
    with capture_logs() as logs:
        forecast = get_forecaster("persistence", timezone=TZ).forecast(history, index)
    events = {e["event"] for e in logs}
    assert {"forecast_history_zero_day", "forecast_fallback"} <= events
    two_days = cn_frame.loc[index - pd.Timedelta(days=2), "da_price"].to_numpy()
    assert forecast.point.to_numpy() == pytest.approx(two_days)


@pytest.mark.parametrize("name", sorted(FORECASTERS))
def test_scenarios_from_errors(cn_frame, name: str) -> None:  # type: ignore[no-untyped-def]
    history, index = _history(cn_frame, dt.date(2025, 5, 27))
    features = cn_frame.loc[index, ["load_forecast_mw", "renewable_forecast_mw", "bidding_space_mw"]]
    forecast = get_forecaster(name, timezone=TZ, scenarios=5).forecast(history, index, features)
    assert forecast.matrix.shape == (5, 96)
    assert forecast.probabilities.sum() == pytest.approx(1.0)
    assert np.isfinite(forecast.matrix).all()
    # Picked at increasing quantiles of the daily mean error: the scenario means are ordered.
    means = (forecast.matrix - forecast.point.to_numpy()).mean(axis=1)
    assert (np.diff(means) >= -1e-9).all()
    assert np.ptp(means) > 0


@pytest.mark.parametrize(("day", "intervals"), [(dt.date(2025, 3, 30), 92), (dt.date(2025, 10, 26), 100)])
def test_dst_days_forecast_every_interval(day: dt.date, intervals: int) -> None:
    tz = "Europe/Berlin"
    history_index = pd.date_range("2025-03-01", "2025-11-01", freq="15min", tz="UTC", inclusive="left")
    local = history_index.tz_convert(tz)
    price = pd.Series(100 + local.hour * 10.0 + local.day_of_year * 0.001, index=history_index)
    index = day_intervals_utc(day, tz, 15)
    assert len(index) == intervals
    history = pd.DataFrame({"da_price": price[price.index < index[0]]})
    for name in ("persistence", "weekly", "rolling_median"):
        forecast = get_forecaster(name, timezone=tz, scenarios=3).forecast(history, index)
        assert len(forecast.point) == intervals
        assert np.isfinite(forecast.matrix).all()
        hours = index.tz_convert(tz).hour.to_numpy()
        # the same local hour on an earlier day: price level 100 + 10 * hour (+ tiny drift)
        assert forecast.point.to_numpy() == pytest.approx(100 + 10.0 * hours, abs=1.0)


def test_forecast_validates_its_values() -> None:
    index = pd.date_range("2025-05-01", periods=2, freq="15min", tz="UTC")
    with pytest.raises(ValueError, match="finite"):
        Forecast.from_point(pd.Series([1.0, np.nan], index=index))


def test_unknown_forecaster_names_the_choices() -> None:
    with pytest.raises(ValueError, match="persistence"):
        get_forecaster("crystal_ball")
