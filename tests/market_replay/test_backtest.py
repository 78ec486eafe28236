"""Backtests end to end on real prices: honesty (no look-ahead), bounds, every shared market."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from market_replay import import_prices
from market_replay.canonical import PriceFrame
from strategies import StrategyOptions
from strategies.registry import StochasticStrategy
from tests.market_replay._support import CN, ENTSOE, ERCOT_DAM, ERCOT_RTM, NORDPOOL, REPO, market
from vpp import LookAheadError
from vpp.backtest.report import write_backtest
from vpp.backtest.run import BacktestOptions, foresight, run_backtest, simulate
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio

FAST = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False)


def _slice(
    prices: PriceFrame, first: dt.date, last: dt.date, tz: str, history_days: int = 8
) -> PriceFrame:
    start = pd.Timestamp(first - dt.timedelta(days=history_days), tz=tz)
    end = pd.Timestamp(last + dt.timedelta(days=1), tz=tz)
    return prices.between(start, end)


@pytest.fixture(scope="module")
def cn_prices() -> PriceFrame:
    result = import_prices(
        REPO / "data" / "prices" / CN, "cn-spot-96", market("cn-province-a"), policy="drop-day"
    )
    return _slice(result.prices, dt.date(2025, 5, 10), dt.date(2025, 5, 11), "Asia/Shanghai")


@pytest.fixture(scope="module")
def cn_portfolio() -> MarketPortfolio:
    return MarketPortfolio.from_config(load_config(REPO / "config"), "cn-province-a")


def _portfolio_on(tmp_path: Path, market_id: str, timezone: str) -> MarketPortfolio:
    """The example parks moved onto another market (same assets, that market's time zone)."""
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    for park in (config / "parks").glob("*.toml"):
        text = park.read_text(encoding="utf-8")
        if 'market = "cn-province-a"' in text:
            text = text.replace('market = "cn-province-a"', f'market = "{market_id}"')
            text = text.replace('timezone = "Asia/Shanghai"', f'timezone = "{timezone}"')
            park.write_text(text, encoding="utf-8")
    return MarketPortfolio.from_config(load_config(config), market_id)


class _Spy(StochasticStrategy):
    """Records what the strategy is handed at each decision and the decision time."""

    def __init__(self, clock: Callable[[], dt.datetime], options: StrategyOptions) -> None:
        super().__init__(options)
        self.clock = clock
        self.seen: list[tuple[dt.datetime, pd.DataFrame]] = []

    def day_ahead(self, parks, inputs, states, rules, history, **kwargs):  # type: ignore[no-untyped-def]
        self.seen.append((kwargs["created_at"], history))
        return super().day_ahead(parks, inputs, states, rules, history, **kwargs)


class _Peeker(StochasticStrategy):
    """A strategy that wants the delivery day's realized day-ahead price at gate closure."""

    def day_ahead(self, parks, inputs, states, rules, history, **kwargs):  # type: ignore[no-untyped-def]
        peek = history["da_price"].reindex(kwargs["index"])
        if peek.isna().any():
            raise LookAheadError("the delivery day's prices are not in the history")
        return super().day_ahead(parks, inputs, states, rules, history, **kwargs)


def test_strategy_only_sees_published_data(
    cn_prices: PriceFrame, cn_portfolio: MarketPortfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpp.backtest.run as backtest

    spies: list[_Spy] = []

    def spy_factory(options: StrategyOptions) -> _Spy:
        spy = _Spy(lambda: dt.datetime.now(dt.UTC), options)
        spies.append(spy)
        return spy

    monkeypatch.setattr(backtest, "get_strategy", spy_factory)
    days = [dt.date(2025, 5, 10)]
    simulate(cn_portfolio, cn_prices, days, FAST)
    assert spies[0].options == FAST.strategy  # the run's options, passed down unchanged
    ((decided_at, history),) = spies[0].seen
    rules = cn_portfolio.market.rules_on(days[0])
    assert decided_at < rules.gate_closure(days[0])
    # Nothing of the delivery day, no real-time price of an interval not yet ended.
    delivery_start = pd.Timestamp(rules.gate_closure(days[0])).normalize() + pd.Timedelta(hours=16)
    assert history["da_price"].dropna().index.max() < delivery_start
    rt_last = history["rt_price"].dropna().index.max()
    assert rt_last + pd.Timedelta(minutes=15) <= pd.Timestamp(decided_at)


def test_a_peeking_strategy_fails_the_run(
    cn_prices: PriceFrame, cn_portfolio: MarketPortfolio, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpp.backtest.run as backtest

    monkeypatch.setattr(backtest, "get_strategy", _Peeker)
    with pytest.raises(LookAheadError, match="not in the history"):
        simulate(cn_portfolio, cn_prices, [dt.date(2025, 5, 10)], FAST)


@pytest.mark.parametrize("strategy", ["stochastic", "deterministic", "idle"])
def test_perfect_foresight_bounds_every_strategy(
    cn_prices: PriceFrame, cn_portfolio: MarketPortfolio, strategy: str
) -> None:
    days = [dt.date(2025, 5, 10), dt.date(2025, 5, 11)]
    run = simulate(cn_portfolio, cn_prices, days, FAST, strategy)
    bound = foresight(cn_portfolio, cn_prices, days, FAST)
    assert run.net_revenue <= bound["revenue"].sum() + 1e-6
    assert (bound["revenue"] >= bound["da_schedule"] - 1e-6).all()


def test_backtest_outputs(
    cn_prices: PriceFrame, cn_portfolio: MarketPortfolio, tmp_path: Path
) -> None:
    days = [dt.date(2025, 5, 10)]
    options = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=True)
    result = run_backtest(cn_portfolio, cn_prices, days, options)
    files = write_backtest(result, tmp_path)
    assert {f.name for f in files} >= {
        "summary.json",
        "intervals.csv",
        "settlement.csv",
        "report.html",
        "soc.png",
        "prices_dispatch.png",
        "cumulative_revenue.png",
    }
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "market",
        "currency",
        "start",
        "end",
        "days",
        "intervals",
        "strategy",
        "net_revenue",
        "da_revenue",
        "rt_revenue",
        "degradation_cost",
        "perfect_foresight_revenue",
        "capture_ratio",
        "baseline_strategy",
        "baseline_revenue",
        "imbalance_mwh",
        "rt_bid_revenue",
        "imbalance_revenue",
        "clawback_revenue",
        "rt_bids_submitted",
        "rt_awarded_mwh",
        "deviation_price",
        "battery_equivalent_cycles",
        "solve_time_s",
        "wall_time_s",
    ):
        assert key in summary, key
    # No real-time bids yet: the whole real-time revenue is imbalance, at the RT price.
    assert (summary["rt_bids_submitted"], summary["rt_awarded_mwh"], summary["rt_bid_revenue"]) == (0, 0, 0)
    assert summary["imbalance_revenue"] == summary["rt_revenue"]
    assert summary["clawback_revenue"] == 0  # shipped off in cn-province-a
    assert summary["deviation_price"] == "rt_price (two_settlement)"
    assert summary["intervals"] == 96
    assert summary["net_revenue"] == pytest.approx(
        summary["da_revenue"] + summary["rt_revenue"] - summary["degradation_cost"], abs=0.05
    )
    settlement = pd.read_csv(tmp_path / "settlement.csv")
    assert set(settlement["park_id"]) == {"daqing-oilfield", "jinan-north", "qingdao-logistics"}
    # Per-park settlement adds up to the portfolio's.
    assert settlement["da_revenue"].sum() == pytest.approx(summary["da_revenue"], abs=1.0)
    for column in ("rt_bid_revenue", "imbalance_revenue", "clawback_revenue", "rt_awarded_mwh"):
        assert column in settlement, column
    assert settlement["rt_revenue"].to_numpy() == pytest.approx(
        (settlement["rt_bid_revenue"] + settlement["imbalance_revenue"]).to_numpy()
    )
    intervals = pd.read_csv(tmp_path / "intervals.csv")
    assert len(intervals) == 96 * 12  # jinan 3, qingdao 3, the oilfield 6 assets
    battery = intervals[intervals["asset_id"] == "bess-1"]
    assert battery["soc_end"].between(0.1 - 1e-6, 0.9 + 1e-6).all()
    assert "<img" in (tmp_path / "report.html").read_text()


def test_backtest_on_nordpool_dst_day(shared_prices: Path, tmp_path: Path) -> None:
    """Two-price imbalance settlement, hourly, on the 23-hour spring-forward day."""
    result = import_prices(
        shared_prices / NORDPOOL, "nordpool-regulating", market("nordpool-dk1"), zone="DK1"
    )
    portfolio = _portfolio_on(tmp_path, "nordpool-dk1", "Europe/Copenhagen")
    day = dt.date(2016, 3, 27)
    prices = _slice(result.prices, day, day, "Europe/Copenhagen")
    out = run_backtest(portfolio, prices, [day], FAST)
    assert len(out.main.portfolio) == 23
    assert out.summary()["perfect_foresight_revenue"] >= out.main.net_revenue
    assert out.summary()["deviation_price"] == "rt_price_up/rt_price_down (two_price_imbalance)"


def test_backtest_on_ercot_hourly_products(shared_prices: Path) -> None:
    """Hourly day-ahead products over 15-min real-time settlement (the documented join)."""
    result = import_prices(
        shared_prices / ERCOT_DAM,
        "ercot-dam",
        market("ercot-houston"),
        zone="HB_HOUSTON",
        policy="drop-day",
        rt_path=shared_prices / ERCOT_RTM,
    )
    portfolio = MarketPortfolio.from_config(load_config(REPO / "config"), "ercot-houston")
    day = dt.date(2022, 1, 12)
    prices = _slice(result.prices, day, day, "America/Chicago")
    out = run_backtest(portfolio, prices, [day], FAST)
    assert len(out.main.portfolio) == 96
    awards = out.main.portfolio["award_mw"].to_numpy().reshape(24, 4)
    assert (awards == awards[:, :1]).all()  # one award per hourly product
    assert out.summary()["perfect_foresight_revenue"] >= out.main.net_revenue


def test_backtest_on_epex_day_ahead_only(shared_prices: Path, tmp_path: Path) -> None:
    """A day-ahead-only file: hourly prices on the 15-min schedule, deliveries settle exactly."""
    result = import_prices(
        shared_prices / ENTSOE, "entsoe-day-ahead", market("epex-de-lu"), policy="drop-day"
    )
    portfolio = _portfolio_on(tmp_path, "epex-de-lu", "Europe/Berlin")
    day = dt.date(2021, 6, 15)
    prices = _slice(result.prices, day, day, "Europe/Berlin")
    out = run_backtest(portfolio, prices, [day], FAST)
    assert len(out.main.portfolio) == 96
    summary = out.summary()
    assert summary["deviation_price"] == (
        "da_price (two_settlement; the price file has no real-time prices)"
    )
    assert summary["perfect_foresight_revenue"] >= out.main.net_revenue


def test_reference_runs_in_a_worker_process_give_the_same_numbers(
    cn_prices: PriceFrame, cn_portfolio: MarketPortfolio
) -> None:
    days = [dt.date(2025, 5, 11)]
    options = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=True)
    serial = run_backtest(cn_portfolio, cn_prices, days, options).summary()
    parallel = run_backtest(
        cn_portfolio, cn_prices, days, BacktestOptions(**{**options.__dict__, "workers": 2})
    ).summary()
    for key in (
        "net_revenue",
        "perfect_foresight_revenue",
        "baseline_revenue",
        "no_flexibility_revenue",
    ):
        assert parallel[key] == pytest.approx(serial[key]), key


def test_hourly_real_time_prices_are_not_spread_onto_quarter_hours() -> None:
    from vpp.backtest.run import on_schedule_grid

    index = pd.date_range(
        "2021-06-14 22:00", periods=48, freq="1h", tz="UTC", name="interval_start"
    )
    hourly = PriceFrame(
        pd.DataFrame({"da_price": 50.0, "rt_price": 55.0}, index=index), "epex-de-lu", "EUR", 60
    )
    with pytest.raises(ValueError, match="real-time prices"):
        on_schedule_grid(hourly, 15)
    day_ahead_only = PriceFrame(hourly.frame[["da_price"]], "epex-de-lu", "EUR", 60)
    assert len(on_schedule_grid(day_ahead_only, 15).frame) == 48 * 4
