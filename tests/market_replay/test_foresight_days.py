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


def test_an_infeasible_bound_day_is_unbounded_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A day whose perfect-foresight LP is infeasible without being an unmet demand (seen on
    EPEX DE-LU 2021: a store's content balance the realized inputs cannot close) used to
    raise out of a whole run after the simulation; it is now a day without a bound, logged
    ``foresight_infeasible``, and the next day keeps its bound."""
    from structlog.testing import capture_logs

    from vpp.backtest import run as run_module
    from vpp.config import load_config
    from vpp.errors import InfeasibleError
    from vpp.runtime.operator import MarketPortfolio

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "config")
    prices = import_prices(repo / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv",
                           "cn-spot-96", cfg.markets["cn-province-a"], policy="drop-day").prices
    portfolio = MarketPortfolio.from_config(cfg, "cn-province-a")
    days = [dt.date(2025, 5, 12), dt.date(2025, 5, 13)]
    real_best = run_module._best
    calls = {"n": 0}

    def best(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise InfeasibleError("the model is infeasible", constraint="tank-55-content-balance")
        return real_best(*args, **kwargs)

    monkeypatch.setattr(run_module, "_best", best)
    with capture_logs() as logs:
        bound = run_module.foresight(portfolio, prices, days,
                                     BacktestOptions(StrategyOptions(), baselines=False))
    by_day = bound.set_index("day")["revenue"]
    assert by_day.isna().tolist() == [True, False]
    events = [e for e in logs if e["event"] == "foresight_infeasible"]
    assert len(events) == 1
    assert "tank-55-content-balance" in events[0]["reason"]
