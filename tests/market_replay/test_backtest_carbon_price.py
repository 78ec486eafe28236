"""A carbon price in a backtest week lowers its emissions; a sweep writes its table and plot.

The week runs the daemon's code path (operator, replay exchange, real-time
re-optimisation) on the shipped Chinese prices, whose fundamentals give the
interval intensity the strategy sees at gate closure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, write_prices
from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.cli import app
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio

REPO = Path(__file__).resolve().parents[2]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
FAST = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False)
WEEK = [dt.date(2025, 5, 12) + dt.timedelta(days=i) for i in range(7)]


@pytest.fixture(scope="module")
def prices() -> PriceFrame:
    market = load_config(REPO / "config").markets["cn-province-a"]
    frame = import_prices(CN, "cn-spot-96", market, policy="drop-day").prices
    return frame.between(pd.Timestamp("2025-05-01T16:00Z"), pd.Timestamp("2025-05-19T16:00Z"))


@pytest.fixture(scope="module")
def portfolio() -> MarketPortfolio:
    return MarketPortfolio.from_config(load_config(REPO / "config"), "cn-province-a")


def test_a_carbon_price_lowers_a_weeks_emissions(
    prices: PriceFrame, portfolio: MarketPortfolio
) -> None:
    blind = run_backtest(portfolio, prices, WEEK, FAST)
    priced_options = dataclasses.replace(
        FAST, strategy=FAST.strategy.replace(carbon_price_per_t=300.0)
    )
    priced = run_backtest(portfolio, prices, WEEK, priced_options)
    a, b = blind.summary(), priced.summary()
    assert a["carbon_price_per_t"] == 0.0
    assert b["carbon_price_per_t"] == 300.0
    assert b["emissions_location_tco2"] < a["emissions_location_tco2"] * 0.98  # type: ignore[operator]
    # the strategy gives up revenue for it, not more than the carbon it saved is worth
    saved_t = a["emissions_location_tco2"] - b["emissions_location_tco2"]  # type: ignore[operator]
    lost = a["net_revenue"] - b["net_revenue"]  # type: ignore[operator]
    assert lost < 300.0 * saved_t


def test_a_sweep_writes_one_run_per_price_and_the_plot(
    prices: PriceFrame, tmp_path: Path
) -> None:
    path = tmp_path / "cn.csv"
    write_prices(prices, path, source="shipped slice")
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, [
        "--log-level", "ERROR", "backtest", "-c", str(REPO / "config"), "--prices", str(path),
        "--start", "2025-05-12", "--end", "2025-05-12", "--no-baselines",
        "--reoptimise-every", "8", "--carbon-price-per-t", "0", "--carbon-price-per-t", "1000",
        "--out", str(out),
    ])
    assert result.exit_code == 0, result.stderr
    sweep = pd.read_csv(out / "carbon_sweep.csv")
    assert list(sweep["carbon_price_per_t"]) == [0, 1000]
    assert list(sweep["folder"]) == ["carbon_price_0", "carbon_price_1000"]
    assert (out / "carbon_sweep.png").stat().st_size > 5_000
    for folder, price in zip(sweep["folder"], sweep["carbon_price_per_t"], strict=True):
        summary = json.loads((out / folder / "summary.json").read_text(encoding="utf-8"))
        assert summary["carbon_price_per_t"] == price
        row = sweep[sweep["folder"] == folder].iloc[0]
        assert row["net_revenue"] == pytest.approx(summary["net_revenue"], rel=1e-5)
        assert "internal carbon price" in (out / folder / "report.html").read_text("utf-8")
    assert sweep["emissions_location_tco2"].iloc[1] <= sweep["emissions_location_tco2"].iloc[0]
    # a second sweep into the same folder replaces it (its own files only)
    again = CliRunner().invoke(app, [
        "--log-level", "ERROR", "backtest", "-c", str(REPO / "config"), "--prices", str(path),
        "--start", "2025-05-12", "--end", "2025-05-12", "--no-baselines",
        "--reoptimise-every", "8", "--carbon-price-per-t", "0", "--carbon-price-per-t", "1000",
        "--out", str(out),
    ])
    assert again.exit_code == 0, again.stderr
