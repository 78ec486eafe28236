"""``vpp plan`` on a canonical price file written from the pinned Chinese slice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, write_prices
from tests.strategies.conftest import CONFIG
from vpp.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def price_file(tmp_path_factory, cn_frame) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("prices") / "cn.csv"
    write_prices(PriceFrame(cn_frame, "cn-province-a", "CNY", 15), path, source="test slice")
    return path


def test_plan_writes_outputs(price_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = runner.invoke(app, ["plan", "--config", str(CONFIG), "--prices", str(price_file),
                                 "--day", "2025-05-20", "--solver", "ecos", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "plan.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["solver"] == "ECOS"
    assert summary["intervals"] == 96
    assert (out / "assets.csv").is_file()
    assert (out / "parks.csv").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day", "2025-13-01"], "YYYY-MM-DD"),
        (["--day", "2025-05-20", "--solver", "gurobi"], "HIGHS"),
        (["--day", "2025-06-20"], "missing"),
    ],
)
def test_plan_reports_bad_input(price_file: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", "--config", str(CONFIG), "--prices", str(price_file),
                                 "--out", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output
