"""Perfect foresight bounds a backtest that bids mFRR energy (real DK1 regulating prices)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from market_replay import import_prices
from tests.market_replay._support import NORDPOOL, market

DK1 = market("nordpool-dk1")


def test_foresight_bounds_a_run_with_real_time_bids(shared_prices: Path, tmp_path: Path) -> None:
    """Two DK1 days with mFRR bids: the strategy and persistence are activated and paid the
    regulating prices, and perfect foresight is still at least what each earned (capture <= 1);
    without real-time bids the bound is the old one (the day-ahead schedule)."""
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
    bound = summary["perfect_foresight_revenue"]
    assert isinstance(bound, float)
    assert bound >= out.main.net_revenue
    assert bound >= out.baselines["persistence"].net_revenue
    assert bound >= out.baselines["idle"].net_revenue
    ratio = summary["flexibility_capture_ratio"]
    assert isinstance(ratio, float)
    assert ratio <= 1.0
    # The regulating bound is above the day-ahead schedule here (both regulating directions
    # occur on these days), and without real-time bids the bound is the day-ahead schedule.
    assert (out.foresight["revenue"] > out.foresight["da_schedule"] + 1.0).all()
    off = foresight(portfolio, prices, days, BacktestOptions(StrategyOptions(scenarios=3)))
    assert off["revenue"].to_numpy() == pytest.approx(off["da_schedule"].to_numpy())
    assert off["da_schedule"].to_numpy() == pytest.approx(out.foresight["da_schedule"].to_numpy())
