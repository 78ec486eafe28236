"""Every backtest folder carries its carbon books: carbon.csv, the summary keys, the report section."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from market_replay.canonical import PriceFrame
from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.report import write_backtest
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.carbon.instruments import Instrument
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio

REPO = Path(__file__).resolve().parents[2]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
FAST = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False)
DAY = dt.date(2025, 5, 12)


@pytest.fixture(scope="module")
def prices() -> PriceFrame:
    market = load_config(REPO / "config").markets["cn-province-a"]
    frame = import_prices(CN, "cn-spot-96", market, policy="drop-day").prices
    return frame.between(pd.Timestamp("2025-05-09T16:00Z"), pd.Timestamp("2025-05-12T16:00Z"))


@pytest.fixture(scope="module")
def portfolio() -> MarketPortfolio:
    return MarketPortfolio.from_config(load_config(REPO / "config"), "cn-province-a")


def test_a_backtest_writes_its_carbon_books(
    prices: PriceFrame, portfolio: MarketPortfolio, tmp_path: Path
) -> None:
    result = run_backtest(portfolio, prices, [DAY], FAST)
    files = {p.name for p in write_backtest(result, tmp_path)}
    assert {"carbon.csv", "carbon.png"} <= files
    carbon = pd.read_csv(tmp_path / "carbon.csv")
    assert len(carbon) == 96 * len(portfolio.parks)
    settlement = pd.read_csv(tmp_path / "settlement.csv")
    # The carbon books read the same meters as the settlement.
    for park_id, rows in carbon.groupby("park_id"):
        bought = settlement.loc[settlement["park_id"] == park_id, "energy_bought_mwh"].sum()
        assert rows["import_mwh"].sum() == pytest.approx(bought, rel=1e-5)  # %.6g in CSVs
    # 2025-05-12: the 2022 factors are in force; no instruments: market = import x residual.
    assert (carbon["annual_factor_tco2_per_mwh"] == 0.5366).all()
    assert carbon["intensity_estimated"].all()
    assert carbon["market_tco2"].sum() == pytest.approx(carbon["import_mwh"].sum() * 0.5856)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for key in (
        "emissions_location_tco2",
        "emissions_market_tco2",
        "carbon_intensity_tco2_per_tce",
        "clean_energy_share",
        "carbon_price_per_t",
    ):
        assert key in summary, key
    assert summary["carbon_price_per_t"] == 0.0
    assert summary["emissions_location_tco2"] == pytest.approx(
        carbon["location_interval_tco2"].sum(), abs=1e-4
    )
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<h2>Carbon</h2>" in report
    assert "当量值" in report


def test_certificates_given_to_a_backtest_lower_market_based(
    prices: PriceFrame, portfolio: MarketPortfolio
) -> None:
    certificate = Instrument("gec-1", "gec", 2025, 1_000.0, park_id="jinan-north")
    options = BacktestOptions(
        FAST.strategy, baselines=False, carbon_instruments=(certificate,), carbon_matching="annual"
    )
    result = run_backtest(portfolio, prices, [DAY], options)
    assert result.carbon is not None
    jinan = next(p for p in result.carbon.parks if p.park_id == "jinan-north")
    assert jinan.market_tco2 == pytest.approx(0.0)  # 1,000 MWh covers a day's import
    assert jinan.location_tco2 is not None
    assert jinan.location_tco2 > 0
