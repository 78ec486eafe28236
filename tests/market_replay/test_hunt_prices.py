"""Re-test of issue #10's price-file classes on the canonical file with new cases.

pandas read the canonical file's cells before: a repeated column came back as
``da_price.1`` (so the "appears twice" check never fired and the message named a column
that is not in the file), a truncated row was padded with NaN and passed ``vpp data
check`` (exit 0), and an overlong row gave pandas' "Error tokenizing data" without the
file name and with a line number off by the header lines. Each is now one line naming
the file and the real line number, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from market_replay.canonical import PriceFrame, read_prices, write_prices
from tests.strategies.conftest import cn_prices
from vpp import DataQualityError
from vpp.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "cn.csv"
    write_prices(PriceFrame(cn_prices(), "cn-province-a", "CNY", 15), path, source="test slice")
    return path


def _edit(good: Path, tmp_path: Path, edit) -> tuple[Path, list[str]]:  # type: ignore[no-untyped-def]
    lines = good.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, lines


def _header_line(lines: list[str]) -> int:
    """The 0-based index of the column header line."""
    return next(i for i, line in enumerate(lines) if not line.startswith("#"))


def _check_line(path: Path) -> str:
    result = runner.invoke(app, ["--log-level", "ERROR", "data", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_the_unedited_file_checks(good: Path) -> None:
    result = runner.invoke(app, ["--log-level", "ERROR", "data", "check", str(good)])
    assert result.exit_code == 0, result.output


def test_a_column_that_appears_twice_is_named_as_written(good: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        h = _header_line(lines)
        lines[h] += ",da_price"
        for i in range(h + 1, len(lines)):
            lines[i] += ",1.0"

    path, lines = _edit(good, tmp_path, edit)
    row = _header_line(lines) + 1
    assert _check_line(path) == (
        f"error: {path}: row {row}, column 'da_price': column appears twice"
    )


@pytest.mark.parametrize(
    ("change", "cells"),
    [(lambda line: ",".join(line.split(",")[:2]), 2), (lambda line: line + ",7.5", None)],
    ids=["truncated", "overlong"],
)
def test_a_row_with_the_wrong_number_of_cells_is_refused(
    good: Path, tmp_path: Path, change, cells: int | None  # type: ignore[no-untyped-def]
) -> None:
    target: list[int] = []

    def edit(lines: list[str]) -> None:
        i = _header_line(lines) + 40
        target.append(i + 1)
        lines[i] = change(lines[i])

    path, lines = _edit(good, tmp_path, edit)
    width = len(lines[_header_line(lines)].split(","))
    got = cells if cells is not None else width + 1
    assert _check_line(path) == (
        f"error: {path}: row {target[0]}: {got} cells but the column header has {width}; "
        "a truncated or overlong row (or another delimiter than ',')"
    )
    with pytest.raises(DataQualityError):
        read_prices(path)  # the backtest and plan read through the same function


def test_a_semicolon_separated_file_says_so(good: Path, tmp_path: Path) -> None:
    def edit(lines: list[str]) -> None:
        for i in range(_header_line(lines), len(lines)):
            lines[i] = lines[i].replace(",", ";")

    path, lines = _edit(good, tmp_path, edit)
    assert _check_line(path) == (
        f"error: {path}: row {_header_line(lines) + 1}: cells are separated by ';'; "
        "a canonical price file separates them by ','"
    )


def test_empty_cells_are_still_missing_values_not_truncation(good: Path, tmp_path: Path) -> None:
    """A flag-policy file keeps a missing value as an empty cell: that stays readable."""

    def edit(lines: list[str]) -> None:
        i = _header_line(lines) + 3
        cells = lines[i].split(",")
        cells[1] = ""
        lines[i] = ",".join(cells)

    path, _ = _edit(good, tmp_path, edit)
    frame = read_prices(path)
    assert frame.frame["da_price"].isna().sum() == 1


def test_check_of_a_file_for_a_market_not_in_the_config_says_so_plainly(
    good: Path, tmp_path: Path
) -> None:
    """It printed 'checked without (market not in config) market limits'."""

    def edit(lines: list[str]) -> None:
        lines[:] = [
            "# market_id=nowhere" if line.startswith("# market_id=") else line for line in lines
        ]

    path, _ = _edit(good, tmp_path, edit)
    result = runner.invoke(app, ["--log-level", "ERROR", "data", "check", str(path)])
    assert result.exit_code == 0, result.output
    first = " ".join(result.output.split("\n")[0:2])
    assert (
        "checked without market limits (market 'nowhere' is not in the config)"
        in " ".join(first.split())
    ), result.output
