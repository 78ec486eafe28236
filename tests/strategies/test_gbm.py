"""The ``gbm`` forecaster: calendars, no look-ahead (spied through the exchange), quantiles."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from market_replay.exchange import ReplayExchange
from strategies import FORECASTERS, Forecast, StrategyOptions, get_forecaster, get_strategy
from strategies import gbm as gbm_module
from strategies.gbm import calendar_features, day_off
from vpp.config import load_market
from vpp.errors import InputError, LookAheadError
from vpp.timeutil import day_intervals_utc

TZ = "Asia/Shanghai"
REPO = Path(__file__).resolve().parents[2]
SMALL = {"train_days": 14, "n_estimators": 40, "min_train_days": 5}


class _FixedClock:
    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now


@pytest.fixture(scope="module")
def cn_market():  # type: ignore[no-untyped-def]
    return load_market(REPO / "config" / "markets" / "cn-province-a.toml")


def _fundamentals(frame: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    return frame.loc[index, ["load_forecast_mw", "renewable_forecast_mw", "bidding_space_mw"]]


@pytest.mark.parametrize(
    ("day", "country", "off"),
    [
        (dt.date(2025, 5, 1), "CN", True),  # 劳动节
        (dt.date(2025, 5, 5), "CN", True),  # 劳动节 holiday, a Monday
        (dt.date(2025, 4, 27), "CN", False),  # a Sunday that is a make-up workday (调休)
        (dt.date(2025, 5, 6), "CN", False),
        (dt.date(2016, 12, 26), "DK", True),  # 2. juledag, a Monday
        (dt.date(2016, 3, 24), "DK", True),  # Skærtorsdag
        (dt.date(2021, 10, 3), "DE", True),  # Tag der Deutschen Einheit (and a Sunday)
        (dt.date(2022, 12, 26), "DE", True),
        (dt.date(2022, 7, 4), "US-TX", True),
        (dt.date(2022, 7, 5), "US-TX", False),
    ],
)
def test_days_off_on_known_holidays(day: dt.date, country: str, off: bool) -> None:
    assert day_off(day, country) is off


def test_make_up_workday_flag() -> None:
    sunday_workday = calendar_features(pd.Timestamp("2025-04-27"), "CN")
    # Sunday, a workday, after an ordinary Saturday off, before a Monday at work.
    assert sunday_workday.tolist() == [6.0, 0.0, 1.0, 0.0, 1.0]
    labour_day = calendar_features(pd.Timestamp("2025-05-01"), "CN")
    assert labour_day[1] == 1.0
    assert labour_day[4] == 0.0


def test_registered_and_usable_from_the_strategy(cn_frame) -> None:  # type: ignore[no-untyped-def]
    assert "gbm" in FORECASTERS
    index = day_intervals_utc(dt.date(2025, 5, 27), TZ, 15)
    history = cn_frame[cn_frame.index < index[0]]
    strategy = get_strategy(StrategyOptions(forecaster="gbm", scenarios=4, forecaster_options=SMALL))
    forecast = strategy.forecast_day_ahead(history, index, TZ, _fundamentals(cn_frame, index))
    assert forecast.matrix.shape == (4, 96)
    assert forecast.quantiles is not None
    assert list(forecast.quantiles.columns) == [0.1, 0.5, 0.9]


def test_spy_never_sees_values_unpublished_at_decision_time(  # type: ignore[no-untyped-def]
    cn_frame, cn_market
) -> None:
    """The exchange is the only way in; perturbing everything it has not published yet
    leaves the forecast unchanged, and the training rows end before the decision."""
    day = dt.date(2025, 5, 27)
    rules = cn_market.rules_on(day)
    decision = rules.gate_closure(day)
    index = day_intervals_utc(day, TZ, 15)
    seen: list[pd.DataFrame] = []

    def run(prices: pd.DataFrame) -> tuple[Forecast, pd.Timestamp | None]:
        exchange = ReplayExchange(prices, cn_market, _FixedClock(decision))
        history = exchange.history()
        seen.append(history)
        forecaster = get_forecaster("gbm", timezone=TZ, scenarios=3, **SMALL)
        return forecaster.forecast(history, index), forecaster.trained_through

    first, trained_through = run(cn_frame)
    exchange = ReplayExchange(cn_frame, cn_market, _FixedClock(decision))
    rng = np.random.default_rng(7)
    perturbed = cn_frame.copy()
    for column in perturbed.columns:
        published = np.array(
            [exchange.published_at(column, t) > decision for t in perturbed.index.to_pydatetime()]
        )
        perturbed.loc[published, column] *= rng.uniform(3.0, 9.0, int(published.sum()))
    second, _ = run(perturbed)
    assert trained_through is not None
    assert trained_through < pd.Timestamp(decision)
    # The forecaster got the delivery day's published fundamentals, not its prices.
    assert seen[0]["da_price"].reindex(index).isna().all()
    assert seen[0]["bidding_space_mw"].reindex(index).notna().all()
    pd.testing.assert_frame_equal(first.scenarios, second.scenarios)
    pd.testing.assert_series_equal(first.point, second.point)


def test_uncut_history_is_refused(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 20), TZ, 15)
    with pytest.raises(LookAheadError, match="cut history"):
        get_forecaster("gbm", timezone=TZ, **SMALL).forecast(cn_frame, index)


def test_deterministic_under_a_fixed_seed(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 24), TZ, 15)
    history = cn_frame[cn_frame.index < index[0]]
    first = get_forecaster("gbm", timezone=TZ, seed=3, **SMALL).forecast(history, index)
    gbm_module._CACHE.clear()  # retrain from scratch
    second = get_forecaster("gbm", timezone=TZ, seed=3, **SMALL).forecast(history, index)
    np.testing.assert_array_equal(first.matrix, second.matrix)


def test_quantiles_ordered_and_scenarios_from_them(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 26), TZ, 15)
    history = cn_frame[cn_frame.index < index[0]]
    forecast = get_forecaster("gbm", timezone=TZ, scenarios=5, **SMALL).forecast(
        history, index, _fundamentals(cn_frame, index)
    )
    assert forecast.quantiles is not None
    q = forecast.quantiles.to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    assert (np.diff(forecast.matrix, axis=0) >= -1e-9).all()  # scenario k+1 >= k everywhere
    np.testing.assert_allclose(forecast.point.to_numpy(), q[:, 1])
    np.testing.assert_allclose(forecast.matrix[2], q[:, 1])  # the middle scenario is the median
    np.testing.assert_allclose(forecast.matrix[0], q[:, 0])  # level 0.1
    actual = cn_frame.loc[index, "da_price"].to_numpy()
    persistence = cn_frame.loc[index - pd.Timedelta(days=1), "da_price"].to_numpy()
    # Not a benchmark: in the range of the real prices.
    assert np.abs(forecast.point.to_numpy() - actual).mean() < 3 * np.abs(persistence - actual).mean() + 50


def test_too_little_history_falls_back_to_persistence(cn_frame) -> None:  # type: ignore[no-untyped-def]
    index = day_intervals_utc(dt.date(2025, 5, 4), TZ, 15)
    history = cn_frame[cn_frame.index < index[0]]
    forecast = get_forecaster("gbm", timezone=TZ, scenarios=1, **SMALL).forecast(history, index)
    yesterday = cn_frame.loc[index - pd.Timedelta(days=1), "da_price"].to_numpy()
    np.testing.assert_allclose(forecast.point.to_numpy(), yesterday)


def test_bad_quantile_levels_are_refused() -> None:
    with pytest.raises(InputError, match=r"include 0\.5"):
        get_forecaster("gbm", quantiles=(0.1, 0.9))


@settings(max_examples=50, deadline=None)
@given(
    values=arrays(np.float64, (6, 3), elements=st.floats(-500, 2000)),
    scenarios=st.integers(1, 9),
)
def test_quantile_scenarios_never_cross(values: np.ndarray, scenarios: int) -> None:
    index = pd.date_range("2025-05-01", periods=6, freq="15min", tz="UTC")
    forecast = Forecast.from_quantiles(pd.DataFrame(values, index=index, columns=[0.1, 0.5, 0.9]), scenarios)
    matrix = forecast.matrix
    assert (np.diff(matrix, axis=0) >= -1e-9).all()
    assert (matrix >= values.min(axis=1) - 1e-9).all()
    assert (matrix <= values.max(axis=1) + 1e-9).all()
    assert forecast.quantiles is not None
    assert (np.diff(forecast.quantiles.to_numpy(), axis=1) >= 0).all()
    levels = forecast.quantile_values([0.05, 0.1, 0.3, 0.5, 0.9, 0.95])
    assert (np.diff(levels, axis=1) >= -1e-9).all()
