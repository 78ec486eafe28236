"""Perfect foresight bounds a backtest that bids mFRR energy (real DK1 regulating prices)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_replay import import_prices
from tests.market_replay._support import NORDPOOL, market

DK1 = market("nordpool-dk1")


def test_foresight_bounds_a_run_with_real_time_bids(shared_prices: Path, tmp_path: Path) -> None:
    """Two DK1 days with mFRR bids: the strategy and persistence are activated and paid the
    regulating prices, and perfect foresight is still at least what each earned on each day
    (capture <= 1); without real-time bids the bound is the old one (the day-ahead schedule)."""
    from strategies import StrategyOptions
    from tests.market_replay.test_backtest import _portfolio_on, _slice
    from vpp.backtest.run import BacktestOptions, foresight, run_backtest

    result = import_prices(shared_prices / NORDPOOL, "nordpool-regulating", DK1, zone="DK1")
    portfolio = _portfolio_on(tmp_path, "nordpool-dk1", "Europe/Copenhagen")
    days = [dt.date(2016, 1, 12), dt.date(2016, 1, 13)]
    prices = _slice(result.prices, days[0], days[-1], "Europe/Copenhagen")
    options = BacktestOptions(
        StrategyOptions(reoptimise_every=4, scenarios=3, real_time_bids=True), baselines=True
    )
    out = run_backtest(portfolio, prices, days, options)
    summary = out.summary()
    assert summary["rt_awarded_mwh"] > 0  # activations happened: the bound has work to do
    bounds = out.foresight.set_index("day")
    # A day whose heat no schedule serves has no bound (NaN, logged foresight_unmeetable:
    # daqing's hot water on the coldest January hours); compare day by day where it has one.
    bounded = [d for d in days if np.isfinite(bounds.loc[d, "revenue"])]
    assert bounded
    for run in (out.main, out.baselines["persistence"], out.baselines["idle"]):
        earned = _net_per_day(run.portfolio, "Europe/Copenhagen")
        for day in bounded:
            assert bounds.loc[day, "revenue"] >= earned[day] - 1e-6, (run.strategy, day)
    # The regulating bound is above the day-ahead schedule here (activations at the
    # regulating price pay), and without real-time bids the bound is the day-ahead schedule.
    assert (bounds.loc[bounded, "revenue"] > bounds.loc[bounded, "da_schedule"] + 1.0).all()
    off = foresight(portfolio, prices, days, BacktestOptions(StrategyOptions(scenarios=3)))
    off_bounds = off.set_index("day").loc[bounded]
    assert off_bounds["revenue"].to_numpy() == pytest.approx(off_bounds["da_schedule"].to_numpy())
    assert off_bounds["da_schedule"].to_numpy() == pytest.approx(
        bounds.loc[bounded, "da_schedule"].to_numpy())


def _net_per_day(portfolio: pd.DataFrame, timezone: str) -> dict[dt.date, float]:
    """Net revenue per local delivery day of a run's per-interval portfolio frame."""
    net = portfolio["da_revenue"] + portfolio["rt_revenue"] - portfolio["degradation_cost"]
    local = pd.DatetimeIndex(portfolio.index).tz_convert(timezone).date
    return {day: float(value) for day, value in net.groupby(local).sum().items()}
