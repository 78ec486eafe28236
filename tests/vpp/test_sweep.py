"""Backtest sweeps on a real ``dask.distributed.LocalCluster`` (nothing mocked).

Four small cells (one day each of the shipped Chinese slice, two scenarios, one
real-time solve a day, no baselines): the sweep matches the same cells run
serially through :func:`run_backtest`; resuming computes only the missing
cells; two workers give the same table as one, even when a worker process dies
mid-cell and Dask re-runs its task.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from market_replay.canonical import write_prices
from market_replay.importers import import_prices
from vpp.backtest.run import run_backtest
from vpp.backtest.sweep import (
    RESULT_KEYS,
    Cell,
    SweepResult,
    cell_inputs,
    dask_client,
    run_cell,
    run_sweep,
    sweep_cells,
)
from vpp.cli import app
from vpp.config import SweepSpec, load_config, load_sweep
from vpp.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"
#: Numbers compared between runs (times differ from run to run).
COMPARED = [k for k in RESULT_KEYS if not k.endswith("time_s")]


@pytest.fixture(scope="module")
def price_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = load_config(REPO / "config").markets["cn-province-a"]
    frame = import_prices(CN, "cn-spot-96", market, policy="drop-day").prices
    frame = frame.between(pd.Timestamp("2025-05-04T16:00Z"), pd.Timestamp("2025-05-13T16:00Z"))
    path = tmp_path_factory.mktemp("prices") / "cn.csv"
    write_prices(frame, path, source="shipped slice")
    return path


def _spec(price_file: Path, days: list[str]) -> SweepSpec:
    return SweepSpec.model_validate({
        "baselines": False,
        "grid": {"scenarios": [2], "reoptimise_every": [96], "carbon_price_per_t": [0.0, 300.0]},
        "periods": [{"start": d, "end": d} for d in days],
        "markets": [{"prices": str(price_file)}],
    })


@pytest.fixture(scope="module")
def cells(price_file: Path) -> list[Cell]:
    return sweep_cells(_spec(price_file, ["2025-05-12", "2025-05-13"]), load_config(REPO / "config"))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with dask_client(None, workers=1) as c:
        yield c


@pytest.fixture(scope="module")
def first(cells: list[Cell], client: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SweepResult]:
    out = tmp_path_factory.mktemp("sweep") / "out"
    seen: list[tuple[int, int]] = []
    result = run_sweep(cells, REPO / "config", out, client, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 4)
    assert seen[-1] == (4, 4)
    return out, result


def _numbers(table: pd.DataFrame) -> pd.DataFrame:
    return table.set_index("cell_id")[COMPARED].sort_index()


def test_a_sweep_of_four_cells_matches_the_cells_run_serially(
    cells: list[Cell], first: tuple[Path, SweepResult]
) -> None:
    out, result = first
    assert len(cells) == 4
    assert len({c.cell_id for c in cells}) == 4
    assert sorted(result.computed) == sorted(c.cell_id for c in cells)
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["cell_id"]) == [c.cell_id for c in cells]
    assert {"strategy", "scenarios", "carbon_price_per_t", "start", "wall_time_s"} <= set(table)
    assert (out / "sweep.png").stat().st_size > 5_000
    cfg = load_config(REPO / "config")
    for cell, row in zip(cells, result.table.to_dict("records"), strict=True):
        portfolio, prices, days, options = cell_inputs(cfg, cell)
        serial = run_backtest(portfolio, prices, days, options).summary()
        assert {k: row[k] for k in COMPARED} == {k: serial[k] for k in COMPARED}
        folder = out / "cells" / cell.cell_id
        assert (folder / "report.html").is_file()
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        assert summary["net_revenue"] == row["net_revenue"]
        assert summary["carbon_price_per_t"] == dict(cell.parameters)["carbon_price_per_t"]


def test_resuming_skips_the_finished_cells(
    cells: list[Cell], client: Any, first: tuple[Path, SweepResult]
) -> None:
    out, result = first
    lost = cells[2].cell_id
    shutil.rmtree(out / "cells" / lost)  # as if the sweep had stopped before it
    (out / "cells" / f".{lost}.tmp-x").mkdir()  # a half-written folder left by a crash
    again = run_sweep(cells, REPO / "config", out, client)
    assert again.computed == [lost]
    assert sorted(again.skipped) == sorted(c.cell_id for c in cells if c.cell_id != lost)
    pd.testing.assert_frame_equal(_numbers(again.table), _numbers(result.table))


def _dies_once(cell: Cell, config_root: str, cells_dir: str, *, marker: str) -> dict[str, Any]:
    """The first call kills its worker process (as a crash or an OOM kill would)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return run_cell(cell, config_root, cells_dir)
    os.close(fd)
    os._exit(1)


def test_two_workers_give_the_same_table_even_when_one_dies(
    cells: list[Cell], first: tuple[Path, SweepResult], tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    with dask_client(None, workers=2) as two:
        assert len(two.scheduler_info()["workers"]) == 2
        result = run_sweep(
            cells, REPO / "config", tmp_path / "out", two, retries=2,
            task=functools.partial(_dies_once, marker=str(marker)),
        )
    assert marker.exists()  # a worker did die
    assert len(result.computed) == 4
    pd.testing.assert_frame_equal(_numbers(result.table), _numbers(first[1].table))


def test_the_cli_runs_a_sweep_file_and_resumes_it_on_an_existing_cluster(
    price_file: Path, tmp_path: Path, client: Any
) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        "baselines = false\n[grid]\nscenarios = [2]\nreoptimise_every = [96]\n"
        "carbon_price_per_t = [0.0, 300.0]\n[[periods]]\nstart = 2025-05-12\nend = 2025-05-12\n"
        f"[[markets]]\nprices = {json.dumps(str(price_file))}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["--log-level", "ERROR", "backtest", "-c", str(REPO / "config"), "--sweep", str(sweep),
            "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 computed, 0 already finished" in result.output
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["carbon_price_per_t"]) == [0.0, 300.0]
    assert (out / "sweep.png").is_file()
    # resumed on a running cluster (--scheduler): nothing left to compute
    (out / "cells" / table["cell_id"][1]).rename(tmp_path / "moved")
    address = client.scheduler.address
    again = CliRunner().invoke(app, [*args, "--scheduler", address])
    assert again.exit_code == 0, again.output
    assert f"on {address}" in again.output
    assert "1 computed, 1 already finished" in again.output


def test_the_example_sweep_file_is_valid() -> None:
    spec = load_sweep(REPO / "config" / "sweep.example.toml")
    assert spec.grid.axes()["scenarios"] == [3, 5]
    assert spec.periods is not None
    assert len(spec.periods) == 2
    assert spec.markets is not None
    assert spec.markets[0].prices.is_absolute()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nscenarios = [2, 0]\n", "sweep.toml: grid.scenarios[1] = 0: must be >= 1"),
        ("[grid]\nstrategy = ['stochastic', 'magic']\n", "sweep.toml: grid.strategy[1] = 'magic': unknown"),
        ("[grid]\nsecnarios = [2]\n", "sweep.toml: grid.secnarios"),
        ("[grid]\ndeviation_penalty_per_mwh = [1.0, inf]\n", "grid.deviation_penalty_per_mwh[1] = inf"),
        ("[[periods]]\nstart = 2025-05-12\nend = 2025-05-11\n", "end 2025-05-11 is before start"),
    ],
)
def test_a_bad_sweep_file_fails_in_one_line_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["backtest", "-c", str(REPO / "config"), "--sweep", str(sweep), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert message in result.output.replace("\n", "")


def test_a_bad_scheduler_address_is_refused(tmp_path: Path, config_copy: Path) -> None:
    toml = config_copy / "vpp.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("[compute]", '[compute]\nscheduler = "nohost"'),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"vpp.toml: compute.scheduler = 'nohost': .*tcp://host:8786"):
        load_config(config_copy)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("[grid]\nscenarios = [2]\n", encoding="utf-8")
    bad = CliRunner().invoke(
        app, ["backtest", "-c", str(REPO / "config"), "--sweep", str(sweep), "--scheduler",
              "http://x:1", "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code != 0
    assert "--scheduler 'http://x:1'" in bad.output.replace("\n", "")
