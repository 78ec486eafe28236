"""A day without a perfect-foresight bound is left out of the capture ratios on both sides."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from market_replay import import_prices
from strategies import StrategyOptions
from tests.market_replay._support import NORDPOOL, market
from tests.market_replay.test_backtest import _portfolio_on, _slice
from vpp.backtest.run import BacktestOptions, run_backtest


def test_unbounded_day_is_left_out_of_both_sides(shared_prices: Path, tmp_path: Path) -> None:
    # The oilfield moved onto DK1 cannot meet its hot-water demand on the cold 2016-01-12
    # (no schedule serves it), so that day has no bound; 2016-01-13 has one.
    dk1 = market("nordpool-dk1")
    prices = import_prices(shared_prices / NORDPOOL, "nordpool-regulating", dk1, zone="DK1").prices
    portfolio = _portfolio_on(tmp_path, "nordpool-dk1", "Europe/Copenhagen")
    days = [dt.date(2016, 1, 12), dt.date(2016, 1, 13)]
    options = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3))
    out = run_backtest(portfolio, _slice(prices, days[0], days[-1], "Europe/Copenhagen"), days,
                       options)
    assert out.unbounded_days() == [dt.date(2016, 1, 12)]
    summary = out.summary()
    assert summary["foresight_unbounded_days"] == 1

    def day_net(run, day: dt.date) -> float:  # type: ignore[no-untyped-def]
        rows = run.settlement[run.settlement["day"] == day.isoformat()]
        return float(rows["net_revenue"].sum())

    bound = float(out.foresight.set_index("day").loc[days[1], "revenue"])
    net, idle = day_net(out.main, days[1]), day_net(out.baselines["idle"], days[1])
    assert summary["flexibility_capture_ratio"] == pytest.approx(
        (net - idle) / (bound - idle), abs=1e-4)
    assert summary["capture_ratio"] == pytest.approx(net / bound, abs=1e-4)
