"""Forecast scores: pinball loss and band coverage on hand examples, walk-forward on real prices."""

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
from strategies import Forecast, band_coverage, pinball_loss, walk_forward
from vpp.config import load_market
from vpp.errors import InputError
from vpp.timeutil import day_intervals_utc

REPO = Path(__file__).resolve().parents[2]
TZ = "Asia/Shanghai"


def test_pinball_by_hand() -> None:
    actual = np.array([10.0, 20.0])
    quantiles = np.array([[8.0, 10.0, 14.0], [12.0, 15.0, 30.0]])
    # interval 1: 0.1*2, 0, 0.1*4 (over: (0.9-1)*(10-14)=0.4) -> 0.2, 0, 0.4
    # interval 2: 0.1*8=0.8, 0.5*5=2.5, (0.9-1)*(20-30)=1.0
    assert pinball_loss(actual, quantiles, (0.1, 0.5, 0.9)) == pytest.approx((0.2 + 0 + 0.4 + 0.8 + 2.5 + 1.0) / 6)
    # the median alone is half the absolute error
    assert pinball_loss(actual, quantiles[:, [1]], (0.5,)) == pytest.approx(0.5 * np.mean([0.0, 5.0]))


def test_coverage_by_hand() -> None:
    actual = np.array([1.0, 5.0, 9.0, 10.0])
    lower = np.array([0.0, 6.0, 9.0, 0.0])
    upper = np.array([2.0, 8.0, 9.5, 9.9])
    assert band_coverage(actual, lower, upper) == pytest.approx(0.5)  # 1 inside, 9 on the edge
    with pytest.raises(InputError):
        band_coverage(np.array([]), np.array([]), np.array([]))


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 8), elements=st.floats(-1e3, 1e3)))
def test_coverage_is_a_share(values: np.ndarray) -> None:
    low, high = np.sort(values[1:], axis=0)
    share = band_coverage(values[0], low, high)
    assert 0.0 <= share <= 1.0


def test_quantiles_from_scenarios_by_hand() -> None:
    index = pd.date_range("2025-05-01", periods=1, freq="15min", tz="UTC")
    forecast = Forecast.from_scenarios(np.array([[30.0], [10.0], [20.0], [40.0], [50.0]]), index)
    # five equally likely scenarios: cumulative 0.2, 0.4, ... over 10, 20, 30, 40, 50
    assert forecast.quantile_values([0.1, 0.2, 0.5, 0.9]).tolist() == [[10.0, 10.0, 30.0, 50.0]]


def test_walk_forward_on_real_prices(cn_frame) -> None:  # type: ignore[no-untyped-def]
    market = load_market(REPO / "config" / "markets" / "cn-province-a.toml")

    class Clock:
        at = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)

        def now(self) -> dt.datetime:
            return self.at

    clock = Clock()
    exchange = ReplayExchange(cn_frame, market, clock)

    def history_at(when: dt.datetime) -> pd.DataFrame:
        clock.at = when
        return exchange.history()

    days = [dt.date(2025, 5, 1) + dt.timedelta(days=k) for k in range(20, 26)]
    seen: list[dt.date] = []
    scores = walk_forward(
        days, history_at=history_at,
        decision_time=lambda d: market.rules_on(d).gate_closure(d),
        day_index=lambda d: day_intervals_utc(d, TZ, 15),
        actual=cn_frame["da_price"], forecasters=["persistence", "rolling_median", "gbm"],
        timezone=TZ, options={"gbm": {"train_days": 14, "n_estimators": 40}},
        progress=seen.append,
    )
    assert seen == days
    assert [s.forecaster for s in scores] == ["persistence", "rolling_median", "gbm"]
    assert scores[0].mae_vs_persistence == pytest.approx(1.0)
    for s in scores:
        assert s.target == "da"
        assert s.days == 6
        assert s.intervals == 6 * 96
        assert 0.0 <= s.coverage <= 1.0
        assert s.rmse >= s.mae > 0
        assert s.pinball > 0


def test_walk_forward_without_a_usable_day(cn_frame) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="could be evaluated"):
        walk_forward(
            [dt.date(2025, 5, 1)], history_at=lambda _: cn_frame.iloc[:0],
            decision_time=lambda d: dt.datetime(2025, 4, 30, tzinfo=dt.UTC),
            day_index=lambda d: day_intervals_utc(d, TZ, 15), actual=cn_frame["da_price"],
            forecasters=["persistence"], timezone=TZ,
        )
