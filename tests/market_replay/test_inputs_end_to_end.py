"""Inputs that used to validate and break later, end to end through the CLI.

* a file imported with ``--on-missing flag`` backtests and runs ``vpp run --simulate``;
* a backtest starting on the price file's first day is refused in one line;
* prices beyond the market's floor/cap: ``vpp data check`` exits 1 naming the rule, the
  backtest refuses by default and flags the run loudly when allowed;
* vendor files with duplicate or ambiguous headers are refused in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, read_prices, write_prices
from market_replay.importers import price_rule_breaks
from tests.market_replay._support import CN, ERCOT_DAM, ERCOT_RTM, market
from tests.vpp.daemon_support import PRICES, make_config
from vpp.cli import app
from vpp.store import BidRecord, Store

runner = CliRunner()
VPP = [sys.executable, "-c", "from vpp.cli import main; main()"]


def _lines(output: str) -> list[str]:
    return [x for x in output.splitlines() if x.strip() and not x.startswith("{")]


def _import(config: Path, source: Path, out: Path, policy: str, *extra: str) -> None:
    result = runner.invoke(
        app,
        [
            "data",
            "import",
            "--config",
            str(config),
            "--format",
            "cn-spot-96",
            "--on-missing",
            policy,
            *extra,
            str(source),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output


def _backtest(config: Path, prices: Path, out: Path, start: str, end: str) -> object:
    return runner.invoke(
        app,
        [
            "backtest",
            "--config",
            str(config),
            "--prices",
            str(prices),
            "--start",
            start,
            "--end",
            end,
            "--strategy",
            "deterministic",
            "--no-baselines",
            "--reoptimise-every",
            "8",
            "-o",
            str(out),
        ],
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_config(tmp_path)


@pytest.fixture
def flagged(project: Path, tmp_path: Path) -> Path:
    out = tmp_path / "flagged.csv"
    _import(project, PRICES, out, "flag")
    frame = read_prices(out).frame
    assert frame["quality_flag"].any()  # 2025-05-09 is a zero-coded day: flagged, NaN
    return out


# --------------------------------------------------------------------------- flag policy


def test_flag_imported_file_backtests_and_skips_the_flagged_day(
    project: Path, flagged: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt"
    result = _backtest(project, flagged, out, "2025-05-08", "2025-05-10")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    # 05-09 has NaN (flagged, missing) prices: it is not traded; 05-08 and 05-10 are.
    assert summary["days"] == 2
    assert summary["intervals"] == 192
    assert "warning" not in summary
    settled = pd.read_csv(out / "settlement.csv")
    assert sorted(settled["day"].unique()) == ["2025-05-08", "2025-05-10"]


def test_flag_imported_file_runs_the_simulated_daemon(
    project: Path, flagged: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'daemon.db'}"
    process = subprocess.run(
        [
            *VPP,
            "run",
            "--simulate",
            "--config",
            str(project),
            "--prices",
            str(flagged),
            "--first-day",
            "2025-05-10",
            "--days",
            "1",
            "--speed",
            "3000",
            "--metrics-port",
            "0",
        ],
        env={**os.environ, "VPP_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    events = [json.loads(line)["event"] for line in process.stderr.splitlines() if line]
    assert "job_failed" not in events
    assert "bid_accepted" in events or "bid_submitted" in events
    assert "awards_received" in events
    assert "day_settled" in events
    with Store(url).session() as session:
        (bid,) = session.exec(select(BidRecord)).all()
    assert bid.status == "accepted"


# --------------------------------------------------------------------------- first day


def test_backtest_from_the_files_first_day_is_refused_in_one_line(
    project: Path, flagged: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bt"
    result = _backtest(project, flagged, out, "2025-05-01", "2025-05-02")
    assert result.exit_code == 1, result.output
    assert f"{flagged}: --start 2025-05-01 is the price file's first day; the persistence " in (
        result.output
    )
    assert "needs 1 day of history: start on 2025-05-02 or later" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing written
    later = _backtest(project, flagged, tmp_path / "bt2", "2025-05-02", "2025-05-02")
    assert later.exit_code == 0, later.output


# --------------------------------------------------------------------------- price rules


def _beyond_cap(project: Path, tmp_path: Path) -> Path:
    drop = tmp_path / "drop.csv"
    _import(project, PRICES, drop, "drop-day")
    prices = read_prices(drop)
    frame = prices.frame.copy()
    when = pd.Timestamp("2025-05-06T04:00:00+00:00")  # 12:00 CST
    frame.loc[when, "da_price"] = 4800.0
    path = tmp_path / "beyond-cap.csv"
    write_prices(
        PriceFrame(frame, prices.market_id, prices.currency, prices.interval_minutes), path
    )
    return path


def test_prices_beyond_the_cap_fail_data_check_and_backtest(project: Path, tmp_path: Path) -> None:
    path = _beyond_cap(project, tmp_path)
    rule = "outside the cn-province-a price limits [-80, 1500] in force since 2023-09-07"
    check = runner.invoke(app, ["data", "check", str(path), "--config", str(project)])
    assert check.exit_code == 1, check.output
    line = f"{path}: da_price = 4800 CNY/MWh at 2025-05-06 12:00 CST is {rule}"
    assert any(x.startswith((f"error: {line}", line)) for x in _lines(check.output))
    assert "Shandong spot market rules" in check.output  # the rule's source
    before = path.read_bytes()
    out = tmp_path / "bt"
    result = _backtest(project, path, out, "2025-05-06", "2025-05-06")
    assert result.exit_code == 1, result.output
    assert rule in result.output
    assert "allow_out_of_rule_prices" in result.output
    assert not out.exists()
    assert path.read_bytes() == before


def test_allowed_out_of_rule_prices_are_flagged_in_the_summary(
    project: Path, tmp_path: Path
) -> None:
    path = _beyond_cap(project, tmp_path)
    settings = project / "vpp.toml"
    settings.write_text(
        settings.read_text().replace("[backtest]", "[backtest]\nallow_out_of_rule_prices = true")
    )
    out = tmp_path / "bt"
    result = _backtest(project, path, out, "2025-05-06", "2025-05-06")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["warning"].startswith("OUT-OF-RULE PRICES")
    assert "4800" in summary["warning"]
    assert "OUT-OF-RULE PRICES" in (out / "report.html").read_text()


def test_price_rules_are_checked_per_effective_date_and_column_kind() -> None:
    ercot = market("ercot-houston")
    index = pd.DatetimeIndex(
        [
            "2021-12-31T18:00:00+00:00",
            "2021-12-31T19:00:00+00:00",
            "2022-01-02T18:00:00+00:00",
            "2022-01-02T19:00:00+00:00",
        ]
    )
    frame = pd.DataFrame({"da_price": [8000.0, 20.0, 20.0, 20.0]}, index=index)
    prices = PriceFrame(frame, "ercot-houston", "USD", 60)
    assert price_rule_breaks(prices, ercot) is None  # 8000 <= the 2021 cap of 9000
    frame.loc[index[2], "da_price"] = 8000.0
    found = price_rule_breaks(PriceFrame(frame, "ercot-houston", "USD", 60), ercot)
    assert found is not None
    assert found.count == 1
    assert found.limits.cap_per_mwh == 5000.0
    assert found.interval_start == index[2]
    # a real-time price beyond the day-ahead cap, where the rule bounds day-ahead only
    day_ahead_only = ercot.model_copy(
        update={
            "price_limits": [
                p.model_copy(update={"applies_to": ["day_ahead"]}) for p in ercot.price_limits
            ]
        }
    )
    rt = pd.DataFrame({"da_price": [20.0] * 4, "rt_price": [20.0, 20.0, 7000.0, 20.0]}, index=index)
    rt_prices = PriceFrame(rt, "ercot-houston", "USD", 60)
    assert price_rule_breaks(rt_prices, ercot) is not None
    assert price_rule_breaks(rt_prices, day_ahead_only) is None


def test_shipped_real_files_pass_the_price_rules(
    project: Path, shared_prices: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cn.csv"
    _import(project, shared_prices / CN, out, "drop-day")
    check = runner.invoke(app, ["data", "check", str(out), "--config", str(project)])
    assert check.exit_code == 0, check.output
    ercot = tmp_path / "ercot.csv"
    result = runner.invoke(
        app,
        [
            "data",
            "import",
            "--config",
            str(project),
            "--format",
            "ercot-dam",
            "--on-missing",
            "drop-day",
            "--rt",
            str(shared_prices / ERCOT_RTM),
            str(shared_prices / ERCOT_DAM),
            "-o",
            str(ercot),
        ],
    )
    assert result.exit_code == 0, result.output
    check = runner.invoke(app, ["data", "check", str(ercot), "--config", str(project)])
    assert check.exit_code == 0, check.output


# --------------------------------------------------------------------------- importers


HOURLY = [f"2020-01-01 {h:02d}:00:00" for h in range(24)]


def _body(header: str, sep: str = ",", extra: bool = False) -> str:
    rows = [
        sep.join([t, f"{40 + i}.5", *([f"{50 + i}.5"] if extra else [])])
        for i, t in enumerate(HOURLY)
    ]
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize(
    ("body", "column", "words"),
    [
        (
            _body("Datetime,Price (EUR/MWh),Price (EUR/MWh)", extra=True),
            "Price (EUR/MWh)",
            "column appears twice in the header (fields 2 and 3)",
        ),
        (
            _body("Datetime,Price (EUR/MWh), Price (EUR/MWh) ", extra=True),
            "Price (EUR/MWh)",
            "column appears twice",
        ),
        (
            _body("Datetime,Price (EUR/MWh),Datetime", extra=True),
            "Datetime",
            "column appears twice",
        ),
        (
            _body("Datetime;Price (EUR/MWh)", sep=";"),
            "Datetime",
            "not comma-separated",
        ),
        (
            _body("Datetime,Price (EUR/kWh)"),
            "Price (EUR/MWh)",
            "missing column",
        ),
    ],
    ids=["duplicate-price", "duplicate-after-strip", "duplicate-time", "semicolons", "unit"],
)
def test_vendor_header_problems_are_refused_in_one_line(
    project: Path, tmp_path: Path, body: str, column: str, words: str
) -> None:
    source = tmp_path / "vendor.csv"
    source.write_text(body, encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "data",
            "import",
            "--config",
            str(project),
            "--format",
            "entsoe-day-ahead",
            str(source),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.output
    assert str(source) in lines[0], lines[0]
    assert "row 1" in lines[0], lines[0]
    assert f"column {column!r}" in lines[0], lines[0]
    assert words in lines[0], lines[0]
    assert not out.exists()


def test_vendor_file_with_a_bom_imports(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "vendor.csv"
    source.write_text("\ufeff" + _body("Datetime,Price (EUR/MWh)"), encoding="utf-8")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app,
        [
            "data",
            "import",
            "--config",
            str(project),
            "--format",
            "entsoe-day-ahead",
            str(source),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(read_prices(out)) == 24


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-inf"])
def test_canonical_file_with_a_non_finite_text_cell_is_refused(
    project: Path, tmp_path: Path, cell: str
) -> None:
    good = tmp_path / "drop.csv"
    _import(project, PRICES, good, "drop-day")
    lines = good.read_text(encoding="utf-8").splitlines()
    first = next(i for i, x in enumerate(lines) if x.startswith("interval_start")) + 1
    fields = lines[first].split(",")
    fields[1] = cell
    lines[first] = ",".join(fields)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["data", "check", str(bad), "--config", str(project)])
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert str(bad) in line
    assert f"row {first + 1}" in line
    assert "column 'da_price'" in line


def test_flag_columns_are_not_in_the_forecast_history(flagged: Path) -> None:
    from market_replay.exchange import ReplayExchange
    from vpp.runtime.clock import ReplayClock

    prices = read_prices(flagged)
    clock = ReplayClock(dt.datetime(2025, 5, 12, tzinfo=dt.UTC))
    exchange = ReplayExchange(prices.frame, market("cn-province-a"), clock)
    history = exchange.history()
    assert not [c for c in history.columns if c.startswith("flag") or c == "quality_flag"]
    flags = exchange.history(["da_price", "quality_flag"])
    assert flags["quality_flag"].dropna().isin([0.0, 1.0]).all()


def test_backtest_refuses_a_price_file_in_another_currency(project: Path, tmp_path: Path) -> None:
    from vpp import DataQualityError
    from vpp.backtest.run import BacktestOptions, run_backtest
    from vpp.config import load_config
    from vpp.runtime.operator import MarketPortfolio

    drop = tmp_path / "drop.csv"
    _import(project, PRICES, drop, "drop-day")
    prices = read_prices(drop)
    usd = PriceFrame(prices.frame, prices.market_id, "USD", prices.interval_minutes)
    portfolio = MarketPortfolio.from_config(load_config(project), prices.market_id)
    options = BacktestOptions(price_file=str(drop), baselines=False)
    with pytest.raises(DataQualityError, match=r"currency USD but market cn-province-a settles"):
        run_backtest(portfolio, usd, [dt.date(2025, 5, 6)], options)
