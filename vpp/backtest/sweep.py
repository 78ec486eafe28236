"""Backtest sweeps on Dask distributed: a grid of cells, each one :func:`run_backtest`.

A sweep file (:class:`vpp.config.SweepSpec`, ``docs/sweeps.md``) names the
parameters to vary; :func:`sweep_cells` expands it into :class:`Cell` values
(strategy × forecaster × parameters × period × market). Each cell is one Dask
task (:func:`run_cell`) that runs the ordinary backtest and writes its full
report folder under ``OUT/cells/<cell-id>/`` -- written into a temporary
sibling and swapped into place, so a folder that exists is complete.
:func:`run_sweep` submits only the cells whose folder is missing: after a crash
or Ctrl-C, finished cells are not recomputed. A task whose worker dies is
re-run by the scheduler, and one that raises is re-run ``retries`` times.

Dask brings the cluster, the queue and the transport; nothing here is
home-made. The embedded default is a :class:`distributed.LocalCluster` of
worker processes on this machine; an address sends the cells to a running
scheduler, whose workers must see the same config and data paths.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import structlog

from market_replay.canonical import PriceFrame, read_prices
from strategies import StrategyOptions
from vpp.backtest.report import check_out, write_backtest
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.config import ConfigSet, SweepSpec, load_config
from vpp.errors import InputError
from vpp.runtime.operator import MarketPortfolio

log = structlog.get_logger(__name__)

#: The files and folder of a sweep's output folder.
SWEEP_OUTPUTS = ("sweep.csv", "sweep.png", "cells")

#: The summary numbers a sweep's table keeps per cell.
RESULT_KEYS = (
    "net_revenue",
    "flexibility_capture_ratio",
    "capture_ratio",
    "perfect_foresight_revenue",
    "imbalance_mwh",
    "emissions_location_tco2",
    "emissions_market_tco2",
    "solve_time_s",
    "wall_time_s",
)

#: The strategy parameters a cell may set (the fields of ``[grid]``).
PARAMETERS = (
    "strategy",
    "forecaster",
    "rt_forecaster",
    "scenarios",
    "reoptimise_every",
    "deviation_penalty_per_mwh",
    "carbon_price_per_t",
)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One backtest of a sweep: a price file, a period and the strategy's parameters."""

    prices: str  # absolute path of the canonical price file
    market_id: str
    start: dt.date
    end: dt.date
    parameters: tuple[tuple[str, Any], ...]  # (name, value) in PARAMETERS order
    baselines: bool = True

    @property
    def cell_id(self) -> str:
        """``<market>_<start>_<end>_<strategy>_<hash>``: stable for the same inputs, so a
        resumed or enlarged sweep finds its finished cells whatever the grid's order."""
        text = json.dumps(
            [self.prices, self.market_id, str(self.start), str(self.end), self.parameters,
             self.baselines],
            default=str,
        )
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        strategy = dict(self.parameters).get("strategy", "strategy")
        return f"{self.market_id}_{self.start}_{self.end}_{strategy}_{digest}"

    def row(self) -> dict[str, Any]:
        """The cell's identity and parameters, the first columns of its row in sweep.csv."""
        return {
            "cell_id": self.cell_id,
            "market": self.market_id,
            "prices": self.prices,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            **dict(self.parameters),
            "baselines": self.baselines,
        }


def sweep_cells(spec: SweepSpec, cfg: ConfigSet) -> list[Cell]:
    """The cells of ``spec``: every combination of its grid, periods and markets.

    A grid field, the periods or the markets left out take their ``[backtest]``
    value. Each price file's market comes from the file itself.
    """
    settings = cfg.settings.backtest
    # The strategy and forecaster are always named (a cell's id and row say what ran).
    axes = {
        "strategy": [settings.strategy],
        "forecaster": [settings.forecaster],
        **spec.grid.axes(),
    }
    if spec.periods is not None:
        periods = [(p.start, p.end) for p in spec.periods]
    elif settings.start is not None and settings.end is not None:
        periods = [(settings.start, settings.end)]
    else:
        raise InputError("no [[periods]] in the sweep file and no [backtest] start and end")
    if spec.markets is not None:
        files = [m.prices for m in spec.markets]
    elif settings.prices is not None:
        files = [(cfg.root / settings.prices).resolve()]
    else:
        raise InputError("no [[markets]] in the sweep file and no [backtest] prices")
    names = list(axes)
    cells = []
    for path in files:
        market_id = _prices(str(path)).market_id
        for start, end in periods:
            for values in itertools.product(*(axes[n] for n in names)):
                chosen = dict(zip(names, values, strict=True))
                cells.append(
                    Cell(
                        str(path),
                        market_id,
                        start,
                        end,
                        tuple((n, chosen[n]) for n in PARAMETERS if n in chosen),
                        spec.baselines,
                    )
                )
    return cells


@functools.lru_cache(maxsize=8)
def _prices_cached(path: str, mtime_ns: int) -> PriceFrame:
    return read_prices(Path(path))


def _prices(path: str) -> PriceFrame:
    """The price file, read once per process (a worker runs many cells of one file)."""
    return _prices_cached(path, Path(path).stat().st_mtime_ns)


def cell_options(cfg: ConfigSet, cell: Cell) -> BacktestOptions:
    """The backtest options of ``cell``: ``[backtest]`` and ``[solver]`` with its parameters.

    One process per cell (``workers=1``): the cluster's workers are the parallelism.
    """
    settings = cfg.settings.backtest.model_copy(update=dict(cell.parameters))
    strategy = StrategyOptions.from_settings(settings, cfg.settings.solver)
    return BacktestOptions(
        strategy=strategy,
        baselines=cell.baselines,
        allow_out_of_rule_prices=settings.allow_out_of_rule_prices,
        price_file=cell.prices,
        workers=1,
    )


def cell_inputs(
    cfg: ConfigSet, cell: Cell
) -> tuple[MarketPortfolio, PriceFrame, list[dt.date], BacktestOptions]:
    """Everything :func:`run_backtest` takes for ``cell``."""
    frame = _prices(cell.prices)
    portfolio = MarketPortfolio.from_config(cfg, cell.market_id)
    days = [
        d for d in frame.days(portfolio.market.timezone) if cell.start <= d <= cell.end
    ]
    return portfolio, frame, days, cell_options(cfg, cell)


def cell_row(cell: Cell, summary: dict[str, Any]) -> dict[str, Any]:
    """The cell's row of sweep.csv: its parameters and its summary's key numbers."""
    return {**cell.row(), **{k: summary.get(k) for k in RESULT_KEYS}}


def run_cell(cell: Cell, config_root: str, cells_dir: str) -> dict[str, Any]:
    """The Dask task of one cell: run its backtest, write its folder, return its row."""
    from vpp.logging import configure_logging

    configure_logging(json=True, level="WARNING")  # the client shows the progress
    cfg = load_config(Path(config_root))
    portfolio, frame, days, options = cell_inputs(cfg, cell)
    result = run_backtest(portfolio, frame, days, options)
    write_backtest(result, Path(cells_dir) / cell.cell_id)
    return cell_row(cell, result.summary())


def finished(cell: Cell, cells_dir: Path) -> dict[str, Any] | None:
    """The row of a cell whose folder is complete (its summary is written), else None."""
    path = cells_dir / cell.cell_id / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return cell_row(cell, summary)


@dataclasses.dataclass
class SweepResult:
    """The rows of a sweep (one per cell, in the grid's order) and what ran this time."""

    table: pd.DataFrame
    computed: list[str]
    skipped: list[str]


def _worker_env() -> dict[str, str]:
    """The environment of embedded workers. Run from a checkout (not installed), the
    checkout goes first on the workers' import path so spawned workers import the same
    code; an installed vpp is found by the workers as it is here."""
    here = Path(__file__).resolve().parents[2]
    if not (here / "pyproject.toml").is_file():
        return {}
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join([str(here), *[p for p in parts if p != str(here)]])}


@contextmanager
def dask_client(scheduler: str | None, workers: int = 1) -> Iterator[Any]:
    """A :class:`distributed.Client` of ``scheduler``, or of an embedded LocalCluster of
    ``workers`` single-threaded processes (HiGHS keeps threads; one solve per process)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: several clusters may run at once
            env=_worker_env(),
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run_sweep(
    cells: Sequence[Cell],
    config_root: Path,
    out: Path,
    client: Any,
    *,
    retries: int = 2,
    progress: Callable[[int, int], None] | None = None,
    task: Callable[[Cell, str, str], dict[str, Any]] = run_cell,
) -> SweepResult:
    """Run the cells not finished yet on ``client``; write sweep.csv and sweep.png.

    ``task`` is the function each cell runs (:func:`run_cell`; tests swap in one that
    kills its worker once). Returns the table in the cells' order.
    """
    from distributed import as_completed

    cells_dir = out / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    for cell in cells:
        check_out(cells_dir / cell.cell_id)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for cell in cells:
        done = finished(cell, cells_dir)
        if done is None:
            todo.append(cell)
        else:
            rows[cell.cell_id] = done
    skipped = list(rows)
    total = len(cells)
    log.info("sweep_started", cells=total, finished=len(skipped), to_run=len(todo))
    if progress:
        progress(len(rows), total)
    futures = [
        client.submit(
            task,
            cell,
            str(config_root.resolve()),
            str(cells_dir.resolve()),
            key=f"cell-{cell.cell_id}",
            retries=retries,
            pure=False,
        )
        for cell in todo
    ]
    computed = []
    for future in as_completed(futures):
        row = future.result()
        rows[row["cell_id"]] = row
        computed.append(row["cell_id"])
        log.info("sweep_cell_finished", cell=row["cell_id"], wall_time_s=row["wall_time_s"])
        if progress:
            progress(len(rows), total)
    table = pd.DataFrame([rows[c.cell_id] for c in cells])
    write_sweep(table, out)
    return SweepResult(table, computed, skipped)


def write_sweep(table: pd.DataFrame, out: Path) -> list[Path]:
    """sweep.csv (one row per cell) and sweep.png (capture against each varied parameter)."""
    from vpp.backtest.report import plot_sweep, write_csv

    csv_path, png_path = out / SWEEP_OUTPUTS[0], out / SWEEP_OUTPUTS[1]
    write_csv(csv_path, table)
    plot_sweep(table, [p for p in (*PARAMETERS, "start", "market") if p in table], png_path)
    return [csv_path, png_path]
