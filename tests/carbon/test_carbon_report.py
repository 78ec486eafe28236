"""`vpp carbon report` over a backtest folder: the numbers are carbon.csv's, recounted;
retired certificates lower market-based scope 2; bad inputs fail in one line."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.report import write_backtest
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.carbon.instruments import Instrument
from vpp.cli import app
from vpp.config import load_config
from vpp.runtime.operator import MarketPortfolio
from vpp.store import Store

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config")
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
DAYS = [dt.date(2025, 5, 12), dt.date(2025, 5, 13)]
runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config(REPO / "config")
    prices = import_prices(CN, "cn-spot-96", cfg.markets["cn-province-a"], policy="drop-day").prices
    prices = prices.between(pd.Timestamp("2025-05-08T16:00Z"), pd.Timestamp("2025-05-13T16:00Z"))
    options = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False)
    result = run_backtest(MarketPortfolio.from_config(cfg, "cn-province-a"), prices, DAYS, options)
    out = tmp_path_factory.mktemp("bt")
    write_backtest(result, out)
    return out


def _report(args: list[str], store: Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--log-level", "ERROR", "carbon", "report", "-c", CONFIG,
                               "--store", f"sqlite:///{store}", *args])


def test_the_report_recounts_carbon_csv(folder: Path, tmp_path: Path) -> None:
    result = _report(["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-13",
                      "--backtest", str(folder), "--json"], tmp_path / "vpp.db")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    carbon = pd.read_csv(folder / "carbon.csv")
    rows = carbon[carbon["park_id"] == "jinan-north"]
    assert data["intervals"] == 192
    assert data["import_mwh"] == pytest.approx(rows["import_mwh"].sum(), abs=1e-3)
    assert data["scope2_location_tco2"] == pytest.approx(rows["location_interval_tco2"].sum(), rel=1e-4)
    assert data["scope2_location_annual_tco2"] == pytest.approx(rows["location_annual_tco2"].sum(), rel=1e-4)
    assert data["scope2_market_tco2"] == pytest.approx(rows["market_tco2"].sum(), rel=1e-4)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    park = summary["carbon_parks"]["jinan-north"]
    assert data["carbon_intensity_tco2_per_tce"] == pytest.approx(park["intensity_tco2_per_tce"], abs=1e-4)
    assert data["threshold_tco2_per_tce"] == park["threshold_tco2_per_tce"]
    if data["threshold_tco2_per_tce"] is not None:
        assert data["gap_tco2_per_tce"] == pytest.approx(
            data["carbon_intensity_tco2_per_tce"] - data["threshold_tco2_per_tce"], abs=1e-4)
    assert data["retired"] == []
    table = _report(["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-12",
                     "--backtest", str(folder)], tmp_path / "vpp.db")
    assert table.exit_code == 0, table.stderr
    assert "单位能耗碳排放" in table.stdout
    assert "96 intervals" in table.stdout


def test_retired_certificates_and_offsets_show_and_lower_market_based(
    folder: Path, tmp_path: Path
) -> None:
    db = tmp_path / "vpp.db"
    store = Store(f"sqlite:///{db}")
    cfg = load_config(REPO / "config")
    store.enroll([(cfg.parks["jinan-north"], cfg.park_files["jinan-north"])])
    store.add_instruments([
        Instrument("gec-a", "gec", 2025, 5.0, park_id="jinan-north"),
        Instrument("ccer-a", "ccer", 2025, 2.0, park_id="jinan-north"),
    ])
    store.retire("jinan-north", "2025-05", ["gec-a", "ccer-a"])
    args = ["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-13",
            "--backtest", str(folder), "--matching", "annual", "--json"]
    data = json.loads(_report(args, db).stdout)
    rows = pd.read_csv(folder / "carbon.csv").query("park_id == 'jinan-north'")
    residual = rows["residual_factor_tco2_per_mwh"].iloc[0]
    assert data["certificates_retired_mwh"] == 5.0
    assert data["certificates_matched_mwh"] == pytest.approx(5.0)
    assert data["scope2_market_tco2"] == pytest.approx(rows["market_tco2"].sum() - 5.0 * residual, rel=1e-4)
    assert data["offsets_retired_tco2"] == 2.0
    assert data["net_after_offsets_tco2"] == pytest.approx(data["gross_tco2"] - 2.0, abs=1e-3)
    assert {r["id"] for r in data["retired"]} == {"gec-a", "ccer-a"}


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--park", "nowhere", "--start", "2025-05-12", "--end", "2025-05-12"],
         r"--park 'nowhere': unknown park; known: .*jinan-north"),
        (["--park", "jinan-north", "--start", "2025-05-13", "--end", "2025-05-12"],
         r"--start 2025-05-13 is after --end 2025-05-12"),
        (["--park", "jinan-north", "--start", "2025-05-32", "--end", "2025-06-01"],
         r"--start '2025-05-32'"),
        (["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-12",
          "--matching", "weekly"], r"--matching 'weekly': unknown; choose one of"),
        (["--park", "jinan-north", "--start", "2024-01-01", "--end", "2024-01-02", "--backtest",
          "FOLDER"], r"no carbon intervals of park jinan-north between 2024-01-01 and 2024-01-02"),
        (["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-12", "--backtest",
          "MISSING"], r"no such backtest folder"),
        (["--park", "jinan-north", "--start", "2025-05-12", "--end", "2025-05-12"],
         r"store sqlite:///.*: no carbon intervals of park jinan-north"),
    ],
)
def test_bad_inputs_fail_in_one_line(
    args: list[str], pattern: str, folder: Path, tmp_path: Path
) -> None:
    args = [str(folder) if a == "FOLDER" else str(tmp_path / "none") if a == "MISSING" else a
            for a in args]
    result = _report(args, tmp_path / "vpp.db")
    assert result.exit_code == 1, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]
