"""Backtests of heat and hydrogen: balances booked from the devices, shortfalls measured.

The shipped oilfield park (heat pump + hot-water tank on 55 C, electrode
boiler + molten salt on 300 C) and an electrolyser park run through the same
operator and simulated devices as every backtest; the books come from the
devices' heat, hydrogen and storage registers against the realized demand.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from market_replay.canonical import PriceFrame
from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.report import write_backtest
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.config import load_config
from vpp.config.models import ParkConfig
from vpp.runtime.operator import MarketPortfolio

REPO = Path(__file__).resolve().parents[2]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
FAST = BacktestOptions(StrategyOptions(reoptimise_every=4, scenarios=3), baselines=False)
DAY = dt.date(2025, 5, 12)


@pytest.fixture(scope="module")
def prices() -> PriceFrame:
    market = load_config(REPO / "config").markets["cn-province-a"]
    frame = import_prices(CN, "cn-spot-96", market, policy="drop-day").prices
    return frame.between(pd.Timestamp("2025-05-09T16:00Z"), pd.Timestamp("2025-05-13T16:00Z"))


def _portfolio(*parks: ParkConfig) -> MarketPortfolio:
    config = load_config(REPO / "config")
    folder = config.park_files["daqing-oilfield"].parent
    return MarketPortfolio(
        config.markets["cn-province-a"], tuple(parks), {p.id: folder for p in parks},
        "vpp-test",
    )


def _oilfield(**steam: float) -> ParkConfig:
    park = load_config(REPO / "config").parks["daqing-oilfield"]
    if not steam:
        return park
    data = park.model_dump(mode="python")
    data["heat_levels"][1].update(steam)
    return ParkConfig.model_validate(data)


def _identity(balances: pd.DataFrame) -> np.ndarray:
    """demand - unmet + surplus == supply - storage_in, per row (what was served)."""
    return (
        balances["demand"] - balances["unmet"] + balances["surplus"]
        - (balances["supply"] - balances["storage_in"])
    ).to_numpy(float)


def test_the_oilfield_serves_its_heat_and_books_it(prices: PriceFrame, tmp_path: Path) -> None:
    result = run_backtest(_portfolio(_oilfield()), prices, [DAY], FAST)
    files = {p.name for p in write_backtest(result, tmp_path)}
    assert {"balances.csv", "heat_balance.png"} <= files
    balances = pd.read_csv(tmp_path / "balances.csv")
    assert len(balances) == 96 * 2
    assert set(balances["node"]) == {"hot_water_55c", "steam_300c"}
    assert np.abs(_identity(balances)).max() < 0.05  # CSV values carry 6 digits
    steam = balances[balances["node"] == "steam_300c"]
    assert np.allclose(steam["demand"], 1500.0)
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["heat_demand_kwh"] == pytest.approx(balances["demand"].sum() / 4, rel=1e-6)
    # the plan and the passive stores meet the day's heat (forecast at the past week's envelope)
    assert summary["heat_unmet_kwh"] <= 0.005 * summary["heat_demand_kwh"]
    assert summary["heat_delivered_kwh"] == pytest.approx(
        summary["heat_demand_kwh"] - summary["heat_unmet_kwh"], abs=1e-2
    )
    assert summary["fallback_days"] == 0
    # the converters' metered electricity is what settled: they drew power for the heat
    intervals = pd.read_csv(tmp_path / "intervals.csv")
    boiler = intervals[intervals["asset_id"] == "eboiler-300"]
    assert boiler["actual_kw"].max() <= 1e-6
    assert -boiler["actual_kw"].sum() / 4 == pytest.approx(
        steam["supply"].sum() / 4 / 0.99, rel=1e-3
    )
    assert "heat_balance" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_an_unmeetable_steam_demand_falls_back_and_measures_the_shortfall(
    prices: PriceFrame, tmp_path: Path
) -> None:
    # 6 MW of steam against a 4 MW boiler (3.96 MW_th) and a 1.5 MW_th salt discharge
    result = run_backtest(_portfolio(_oilfield(demand_kw=6000.0)), prices, [DAY], FAST)
    summary = result.summary()
    assert summary["fallback_days"] == 1  # the day-ahead plan refused it; the idle schedule bid
    assert summary["heat_unmet_kwh"] > 0
    steam = result.main.balances[result.main.balances["node"] == "steam_300c"]
    # the boiler ran flat out: what is missing is what no asset could deliver
    assert steam["supply"].max() == pytest.approx(4000 * 0.99, rel=1e-3)
    assert steam["unmet"].sum() / 4 >= 24 * (6000 - 3960 - 1500) * 0.9


def electrolyser_park() -> ParkConfig:
    return ParkConfig.model_validate({
        "id": "h2-park", "name": "h2", "market": "cn-province-a", "timezone": "Asia/Shanghai",
        "grid": {"import_limit_kw": 5000, "export_limit_kw": 1000},
        "assets": [
            {"id": "ely", "type": "electrolyser", "power_kw": 2000, "kwh_per_kg": 55,
             "technology": "alkaline", "min_load_fraction": 0.15, "standby_kw": 20},
            {"id": "store", "type": "hydrogen_storage", "capacity_kg": 800, "soc_min": 0.1,
             "soc_initial": 0.5, "offtake_kg_per_day": 480},
        ],
    })


def test_an_electrolyser_park_meets_its_offtake_and_never_runs_below_minimum_load(
    prices: PriceFrame, tmp_path: Path
) -> None:
    result = run_backtest(_portfolio(electrolyser_park()), prices, [DAY], FAST)
    summary = result.summary()
    assert summary["hydrogen_demand_kg"] == pytest.approx(480.0)
    assert summary["hydrogen_unmet_kg"] == 0.0
    balances = result.main.balances
    assert np.abs(_identity(balances)).max() < 1e-6
    draw = -result.main.assets.loc[result.main.assets["asset_id"] == "ely", "actual_kw"]
    # off (stand-by 20 kW) or at least the minimum load of 300 kW, never in between
    assert ((draw <= 20 + 1e-6) | (draw >= 300 - 1e-6)).all()
    produced = balances["supply"].sum() / 4
    assert produced == pytest.approx(
        ((draw[draw > 21]).sum() / 4) / 55, rel=1e-3
    )
