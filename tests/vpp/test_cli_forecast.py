"""``vpp forecast evaluate``: scores as JSON for prices, PV, load and EV, and bad input as one
line with exit 1 (as every other command: docs/cli.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, write_prices
from tests.strategies.conftest import CONFIG, cn_prices
from tests.vpp.test_cli_errors import one_error_line
from vpp.cli import app

runner = CliRunner()
KEYS = ["forecaster", "target", "mae", "rmse", "pinball", "coverage", "mae_vs_persistence"]


@pytest.fixture(scope="module")
def price_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "cn.csv"
    write_prices(PriceFrame(cn_prices(), "cn-province-a", "CNY", 15), path, source="test slice")
    return path


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--log-level", "ERROR", "forecast", "evaluate", "-c", str(CONFIG), *args])


def test_json_scores_per_forecaster(price_file: Path) -> None:
    result = _invoke("--prices", str(price_file), "--start", "2025-05-22", "--end", "2025-05-24",
                     "-f", "persistence", "-f", "weekly", "-f", "gbm", "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert [s["forecaster"] for s in scores] == ["persistence", "weekly", "gbm"]
    for s in scores:
        assert list(s) == KEYS
        assert s["target"] == "da"
        assert 0.0 <= s["coverage"] <= 1.0
        assert s["rmse"] >= s["mae"] > 0
    assert scores[0]["mae_vs_persistence"] == pytest.approx(1.0)


def test_real_time_target_and_table(price_file: Path) -> None:
    result = _invoke("--prices", str(price_file), "--start", "2025-05-22", "--end", "2025-05-23",
                     "--target", "rt", "-f", "persistence", "-f", "day_ahead", "-f", "da_spread")
    assert result.exit_code == 0, result.stderr
    for name in ("persistence", "day_ahead", "da_spread", "MAE / persistence"):
        assert name in result.stdout


CASES = {
    "missing-file": (lambda t, p: ["--prices", str(t / "nowhere.csv")], r"nowhere.csv: file not found"),
    "unknown-forecaster": (
        lambda t, p: ["--prices", str(p), "-f", "crystal_ball"],
        r"--forecaster 'crystal_ball': unknown for --target da; choose one of .*gbm",
    ),
    "rt-only-forecaster-for-da": (
        lambda t, p: ["--prices", str(p), "-f", "da_spread"], r"--forecaster 'da_spread': unknown",
    ),
    "unknown-target": (
        lambda t, p: ["--prices", str(p), "--target", "wind"],
        r"--target 'wind': unknown; choose one of da, rt, pv, load, ev",
    ),
    "start-after-end": (
        lambda t, p: ["--prices", str(p), "--start", "2025-05-20", "--end", "2025-05-10"],
        r"--start 2025-05-20 is after --end 2025-05-10",
    ),
    "start-outside-file": (
        lambda t, p: ["--prices", str(p), "--start", "2024-01-01"],
        r"--start 2024-01-01 is outside cn.csv \(2025-05-01 .. 2025-05-28\)",
    ),
    "end-outside-file": (
        lambda t, p: ["--prices", str(p), "--end", "2025-07-01"], r"--end 2025-07-01 is outside",
    ),
    "bad-date": (lambda t, p: ["--prices", str(p), "--start", "May 1"], r"--start 'May 1': .*YYYY-MM-DD"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_one_line_exit_1(case: str, tmp_path: Path, price_file: Path) -> None:
    build, pattern = CASES[case]
    result = _invoke(*build(tmp_path, price_file))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = one_error_line(result.stderr)
    assert re.search(pattern, line), line


# --------------------------------------------------------------------------- pv, load, ev

SERIES = {
    "pv": ("--weather", "pv/tmy3_greensboro_nc_723170.csv", "2001-06-10", "2001-06-13",
           ["persistence", "recent_mean", "clear_sky"]),
    "load": ("--load", "load/steel_plant_korea_2018_15min.csv", "2018-03-12", "2018-03-14",
             ["persistence", "weekly", "gbm"]),
    "ev": ("--sessions", "ev/acn_caltech_sessions_2019-05_2019-12.csv", "2019-06-10",
           "2019-06-12", ["persistence", "weekly", "gbm"]),
}


@pytest.mark.parametrize("target", list(SERIES))
def test_series_targets_json_scores(target: str, shared_data: Path) -> None:
    option, name, start, end, defaults = SERIES[target]
    result = _invoke("--target", target, option, str(shared_data / name), "--start", start,
                     "--end", end, "--json")
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert [s["forecaster"] for s in scores] == defaults  # the target's default forecasters
    for s in scores:
        assert list(s) == KEYS
        assert s["target"] == target
        assert 0.0 <= s["coverage"] <= 1.0
        assert s["rmse"] >= s["mae"] > 0
    assert scores[0]["mae_vs_persistence"] == pytest.approx(1.0)


def test_series_target_table(shared_data: Path) -> None:
    result = _invoke("--target", "pv", "--weather", str(shared_data / SERIES["pv"][1]),
                     "--start", "2001-06-10", "--end", "2001-06-11", "-f", "clear_sky")
    assert result.exit_code == 0, result.stderr
    for text in ("clear_sky", "MAE / persistence", "pv forecasts"):
        assert text in result.stdout
    assert "[kW per MWp]" in " ".join(result.stdout.split())  # the unit, not eaten as markup


def _bad_tmy3(tmp: Path, shared: Path) -> Path:
    lines = (shared / SERIES["pv"][1]).read_text().splitlines()
    lines[0] = lines[0].replace("-79.950", "west")
    path = tmp / "bad_site.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


SERIES_CASES = {
    "pv-without-weather": (lambda t, s: ["--target", "pv"], r"--target pv needs --weather FILE"),
    "prices-for-pv": (
        lambda t, s: ["--target", "pv", "--prices", str(s / SERIES["pv"][1])],
        r"--prices .*: not read by --target pv; give --weather FILE",
    ),
    "missing-sessions": (
        lambda t, s: ["--target", "ev", "--sessions", str(t / "none.csv")],
        r"--sessions .*none.csv: file not found; give an ACN sessions file",
    ),
    "clear-sky-for-load": (
        lambda t, s: ["--target", "load", "--load", str(s / SERIES["load"][1]), "-f", "clear_sky"],
        r"--forecaster 'clear_sky': unknown for --target load",
    ),
    "load-outside-file": (
        lambda t, s: ["--target", "load", "--load", str(s / SERIES["load"][1]), "--start",
                      "2019-02-01"],
        r"--start 2019-02-01 is outside steel_plant_korea_2018_15min.csv \(2018-01-01 .. 2018-12-31\)",
    ),
    "bad-tmy3-site": (
        lambda t, s: ["--target", "pv", "--weather", str(_bad_tmy3(t, s))],
        r"bad_site.csv: line 1, field longitude_deg = 'west': must be a number in \[-180, 180\]",
    ),
    "sessions-not-acn": (
        lambda t, s: ["--target", "ev", "--sessions", str(s / SERIES["load"][1])],
        r"steel_plant_korea_2018_15min.csv: missing column\(s\) \['arrival'",
    ),
}


@pytest.mark.parametrize("case", list(SERIES_CASES), ids=list(SERIES_CASES))
def test_series_bad_input_is_one_line_exit_1(case: str, tmp_path: Path, shared_data: Path) -> None:
    build, pattern = SERIES_CASES[case]
    result = _invoke(*build(tmp_path, shared_data))
    assert result.exit_code == 1, (result.stdout, result.stderr)
    line = one_error_line(result.stderr)
    assert re.search(pattern, line), line
