"""Real-time forecasters: the day-ahead price plus the real-time spread published so far."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from strategies import StrategyOptions, get_forecaster, get_strategy
from vpp.errors import InputError, LookAheadError
from vpp.timeutil import day_intervals_utc

TZ = "Asia/Shanghai"


def _rt_history(frame: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Day-ahead prices published through the delivery day, real time up to ``now``."""
    history = frame.copy()
    history.loc[history.index >= now, "rt_price"] = np.nan
    return history


def test_spread_decays_from_recent_to_the_usual_spread(cn_frame) -> None:  # type: ignore[no-untyped-def]
    day = day_intervals_utc(dt.date(2025, 5, 22), TZ, 15)
    now = day[40]
    history = _rt_history(cn_frame.loc[cn_frame.index < day[-1] + pd.Timedelta(minutes=15)], now)
    index = day[40:]
    forecaster = get_forecaster("da_spread", column="rt_price", timezone=TZ, scenarios=1,
                                recent_intervals=4, half_life_h=1.0, bias_days=7)
    point = forecaster.forecast(history, index).point.to_numpy()
    da = cn_frame.loc[index, "da_price"].to_numpy()
    spread = (cn_frame["rt_price"] - cn_frame["da_price"]).loc[day[36:40]]
    # the first interval starts right at the end of the last published one: weight 1
    assert point[0] == pytest.approx(da[0] + spread.mean())
    # far ahead the recent spread has decayed: the median spread at that time of day
    last = index[-1]
    same_time = [last - pd.Timedelta(days=k) for k in range(1, 7)]  # 7 days with today, unpublished
    usual = np.median((cn_frame["rt_price"] - cn_frame["da_price"]).reindex(same_time).dropna())
    weight = 2.0 ** (-((last - now) / pd.Timedelta(hours=1)))
    assert point[-1] == pytest.approx(da[-1] + weight * spread.mean() + (1 - weight) * usual)


def test_needs_the_published_day_ahead_price(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 22), TZ, 15)
    history = cn_frame[cn_frame.index < index[0]]
    with pytest.raises(LookAheadError, match="day-ahead"):
        get_forecaster("da_spread", column="rt_price", timezone=TZ).forecast(history, index)


def test_real_time_values_ahead_are_refused(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 22), TZ, 15)
    with pytest.raises(LookAheadError, match="cut history"):
        get_forecaster("da_spread", column="rt_price", timezone=TZ).forecast(cn_frame, index)


def test_not_a_day_ahead_forecaster() -> None:
    with pytest.raises(InputError, match="rt_forecaster"):
        get_forecaster("da_spread", column="da_price")


@pytest.mark.parametrize("name", ["da_spread", "day_ahead", "gbm"])
def test_usable_as_rt_forecaster(cn_frame, name: str) -> None:  # type: ignore[no-untyped-def]
    day = day_intervals_utc(dt.date(2025, 5, 22), TZ, 15)
    history = _rt_history(cn_frame, day[10])
    options = {"train_days": 14, "n_estimators": 30} if name == "gbm" else {}
    strategy = get_strategy(StrategyOptions(rt_forecaster=name, forecaster_options=options))
    price = strategy.forecast_real_time(history, day[10:], TZ)
    assert len(price) == len(day) - 10
    assert np.isfinite(price).all()
    if name == "day_ahead":
        np.testing.assert_allclose(price.to_numpy(), cn_frame.loc[day[10:], "da_price"].to_numpy())
