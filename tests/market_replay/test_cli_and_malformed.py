"""`vpp data` commands; malformed inputs give one line naming file, row and column, exit 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_replay import read_prices
from tests.market_replay._support import CN, MARKETS, NORDPOOL

runner = CliRunner()
CONFIG = str(MARKETS.parent)


def _run(*args: str):
    return runner.invoke(
        __import__("vpp.cli", fromlist=["app"]).app, ["--log-level", "ERROR", *args]
    )


def _error_lines(result) -> list[str]:
    text = result.stderr if result.stderr else result.output
    return [line for line in text.splitlines() if line.startswith("error:")]


def _entsoe(tmp_path: Path, body: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


HOURLY = "".join(f"2020-01-01 {h:02d}:00:00,{40 + h}.5\n" for h in range(24))


@pytest.mark.parametrize(
    ("body", "row", "column", "words"),
    [
        ("", 1, None, "empty file"),
        ("Datetime,Price\n" + HOURLY, 1, "Price (EUR/MWh)", "missing column"),
        (
            "Datetime,Price (EUR/MWh)\n2020-01-01 00:00:00,1\n2020-01-01 0X:00:00,2\n",
            3,
            "Datetime",
            "cannot parse time '2020-01-01 0X:00:00'",
        ),
        (
            "Datetime,Price (EUR/MWh)\n"
            + HOURLY
            + "".join(f"2020-01-02 00:{m:02d}:00,1\n" for m in (0, 15, 30, 45)),
            27,
            "Datetime",
            "mixed resolutions",
        ),
        (
            "Datetime,Price (EUR/MWh)\n2020-01-01 00:00:00,1\n2020-01-01 01:00:00,abc\n",
            3,
            "Price (EUR/MWh)",
            "cannot parse 'abc' as a number",
        ),
        ("Datetime,Price (EUR/MWh)\n2020-01-01 00:00:00,1,7\n", 2, None, "3 fields"),
        ("Datetime,Price (EUR/MWh)\n", 2, None, "no data rows"),
    ],
    ids=[
        "empty",
        "missing-column",
        "bad-time",
        "mixed-resolution",
        "bad-number",
        "ragged",
        "header-only",
    ],
)
def test_malformed_input_one_line_error(tmp_path, body, row, column, words):
    source = _entsoe(tmp_path, body)
    out = tmp_path / "out.csv"
    result = _run(
        "data",
        "import",
        "--format",
        "entsoe-day-ahead",
        "--config",
        CONFIG,
        str(source),
        "-o",
        str(out),
    )
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1, result.output
    line = lines[0]
    assert str(source) in line
    assert f"row {row}" in line
    if column is not None:
        assert f"column {column!r}" in line
    assert words in line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [source]  # no temp file left either


def test_unknown_zone_lists_zones(shared_prices, tmp_path):
    out = tmp_path / "out.csv"
    result = _run(
        "data",
        "import",
        "--format",
        "nordpool-regulating",
        "--zone",
        "DK3",
        "--config",
        CONFIG,
        str(shared_prices / NORDPOOL),
        "-o",
        str(out),
    )
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert "row 1, column 'DK3_spot'" in line
    assert "zones in this file: DK1, DK2" in line
    assert not out.exists()


def test_failed_quality_import_prints_report_and_writes_nothing(shared_prices, tmp_path):
    out = tmp_path / "cn.csv"
    result = _run(
        "data",
        "import",
        "--format",
        "cn-spot-96",
        "--config",
        CONFIG,
        str(shared_prices / CN),
        "-o",
        str(out),
    )
    assert result.exit_code == 1
    assert "zero_day" in result.output
    assert "fails import" in result.output
    (line,) = _error_lines(result)
    assert "under policy 'error'; nothing written" in line
    assert not out.exists()


def test_import_check_show(shared_prices, tmp_path):
    out = tmp_path / "cn.csv"
    result = _run(
        "data",
        "import",
        "--format",
        "cn-spot-96",
        "--on-missing",
        "drop-day",
        "--config",
        CONFIG,
        str(shared_prices / CN),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "dropped 1 day(s)" in result.output
    assert re.search(r"wrote .*5,472 intervals of 15 min, 57 complete day", result.output)
    prices = read_prices(out)
    assert prices.market_id == "cn-province-a"
    assert prices.currency == "CNY"
    header = out.read_text(encoding="utf-8").splitlines()[:8]
    assert "# quality_policy=drop-day" in header
    assert any(h.startswith("# created_by=vpp ") for h in header)

    checked = _run("data", "check", "--config", CONFIG, str(out))
    assert checked.exit_code == 0, checked.output
    assert "valid" in checked.output
    assert "gap" in checked.output  # the dropped days show up as holes
    strict = _run("data", "check", "--strict", "--config", CONFIG, str(out))
    assert strict.exit_code == 1

    png = tmp_path / "cn.png"
    shown = _run("data", "show", "--config", CONFIG, str(out), "--plot", str(png))
    assert shown.exit_code == 0, shown.output
    assert "da_price [CNY/MWh]" in shown.output
    assert "57 complete day(s)" in shown.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_rejects_broken_canonical_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "# market_id=x\n# currency=EUR\n# interval_minutes=60\n"
        "interval_start,da_price\n"
        "2020-01-01T00:00:00+00:00,1\n2020-01-01T00:00:00+00:00,2\n",
        encoding="utf-8",
    )
    result = _run("data", "check", str(path))
    assert result.exit_code == 1
    (line,) = _error_lines(result)
    assert f"{path}: row 6, column 'interval_start': duplicate timestamp" in line


def test_unknown_format_and_policy(tmp_path):
    src = _entsoe(tmp_path, "Datetime,Price (EUR/MWh)\n" + HOURLY)
    bad_format = _run("data", "import", "--format", "nope", str(src), "-o", str(tmp_path / "o"))
    assert bad_format.exit_code == 1
    assert "unknown format" in bad_format.output + (bad_format.stderr or "")
    bad_policy = _run(
        "data",
        "import",
        "--format",
        "entsoe-day-ahead",
        "--on-missing",
        "fill",
        str(src),
        "-o",
        str(tmp_path / "o"),
    )
    assert bad_policy.exit_code == 1
    assert "must be one of error, drop-day, flag" in bad_policy.output + (bad_policy.stderr or "")
