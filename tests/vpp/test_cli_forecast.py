"""``vpp forecast evaluate``: scores as JSON, and bad input as one line with exit 2."""

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
    "unknown-target": (lambda t, p: ["--prices", str(p), "--target", "pv"], r"--target 'pv': unknown"),
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
def test_bad_input_is_one_line_exit_2(case: str, tmp_path: Path, price_file: Path) -> None:
    build, pattern = CASES[case]
    result = _invoke(*build(tmp_path, price_file))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = one_error_line(result.stderr)
    assert re.search(pattern, line), line
