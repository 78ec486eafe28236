"""``vpp backtest``: the strategy on historical prices, with baselines and a report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpp.cli._common import (
    check_name,
    check_range,
    console,
    fail,
    fail_on,
    load,
    parse_day,
)
from vpp.errors import VppError

if TYPE_CHECKING:
    from market_replay.canonical import PriceFrame
    from vpp.backtest.run import BacktestOptions, BacktestResult
    from vpp.config import ConfigSet
    from vpp.runtime.operator import MarketPortfolio


def backtest(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder or vpp.toml")
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Canonical price file [default: [backtest] prices]")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First delivery day YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="Last delivery day YYYY-MM-DD")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="stochastic, deterministic, persistence or idle")
    ] = None,
    forecaster: Annotated[
        str | None, typer.Option(help="persistence, weekly, rolling_median or regression")
    ] = None,
    rt_forecaster: Annotated[
        str | None,
        typer.Option(help="Forecaster of real-time prices [default: [backtest] rt_forecaster]"),
    ] = None,
    solver: Annotated[str | None, typer.Option(help="HIGHS, ECOS or CLARABEL")] = None,
    reoptimise_every: Annotated[
        int | None, typer.Option(help="Re-solve real time every N intervals")
    ] = None,
    baselines: Annotated[
        bool, typer.Option(help="Also run persistence and no-flexibility baselines")
    ] = True,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder")] = None,
    carbon_price_per_t: Annotated[
        list[float] | None,
        typer.Option(
            "--carbon-price-per-t",
            help="Internal carbon price on grid import [currency/tCO2] [default: [backtest] "
            "carbon_price_per_t]; repeat it for a sweep (one run per price, carbon_sweep.csv/png)",
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            "--sweep",
            help="Sweep file (docs/sweeps.md): a grid of backtest cells run as Dask tasks; "
            "writes sweep.csv, sweep.png and cells/<cell-id>/, resumable",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address for --sweep (tcp://host:8786) [default: [compute] "
            "scheduler, else a LocalCluster of --workers processes]",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, max=256,
            help="Worker processes: of the sweep's LocalCluster (default 1), or of one "
            "backtest (2 runs the baselines beside the strategy; default 2 on a multi-core "
            "machine)",
        ),
    ] = None,
) -> None:
    """Backtest a strategy on a canonical price file; write summary, CSVs, plots and report.html."""
    from vpp.backtest.report import check_out, write_backtest

    cfg = load(config)
    if sweep is not None:
        _run_sweep_file(cfg, sweep, out or (cfg.root / cfg.settings.backtest.out), scheduler,
                        workers or 1)
        return
    if scheduler is not None:
        fail("--scheduler is for --sweep runs; give a sweep file with --sweep")
    settings = cfg.settings.backtest
    # Every name, date and the output folder first: nothing is read, solved or written
    # before they are right, so a typo fails in a second, not after the backtest.
    names = _checked_names(cfg, strategy, forecaster, rt_forecaster, solver)
    first = parse_day(start, "--start") if start else settings.start
    last = parse_day(end, "--end") if end else settings.end
    check_range(first, last, ("--start", "--end"))
    price_path = prices or (cfg.root / settings.prices if settings.prices else None)
    if price_path is None:
        fail("no price file: pass --prices or set [backtest] prices in vpp.toml")
    out_dir = out or (cfg.root / settings.out)
    prices_per_t = _carbon_prices(carbon_price_per_t)
    if len(prices_per_t) > 1:
        _check_sweep_out(out_dir, prices_per_t)
    else:
        check_out(out_dir)
    frame, portfolio, days = _load_days(cfg, price_path, first, last)
    options = _options(cfg, names, reoptimise_every, baselines, price_path)
    if workers is not None:
        options = dataclasses.replace(options, workers=workers)
    if prices_per_t:
        options = _with_carbon_price(options, prices_per_t[0])
    if len(prices_per_t) > 1:
        _sweep(portfolio, frame, days, options, prices_per_t, out_dir)
        return
    result = _run_with_progress(portfolio, frame, days, options)
    files = write_backtest(result, out_dir)
    _print_summary(result.summary())
    console.print(f"wrote {len(files)} files to {out_dir} (open {out_dir / 'report.html'})")


def _carbon_prices(values: list[float] | None) -> list[float]:
    """The ``--carbon-price-per-t`` values, each finite and >= 0, no repeats (one line otherwise)."""
    import math

    out: list[float] = []
    for value in values or []:
        if not math.isfinite(value) or value < 0:
            fail(f"--carbon-price-per-t = {value}: must be a finite number >= 0")
        if value in out:
            fail(f"--carbon-price-per-t = {value:g} is given twice; give each price once")
        out.append(float(value))
    return out


def _with_carbon_price(options: BacktestOptions, price_per_t: float) -> BacktestOptions:
    import dataclasses

    return dataclasses.replace(
        options, strategy=options.strategy.replace(carbon_price_per_t=price_per_t)
    )


def _check_sweep_out(out_dir: Path, prices_per_t: list[float]) -> None:
    """A sweep's folder holds only its files and one run folder per price (each refusable)."""
    from vpp import files
    from vpp.backtest.report import SWEEP_FILES, check_out, sweep_folder

    folders = [sweep_folder(p) for p in prices_per_t]
    try:
        files.check_output_folder(out_dir, (*SWEEP_FILES, *folders))
    except VppError as exc:
        fail_on(exc)
    for folder in folders:
        check_out(out_dir / folder)


def _sweep(
    portfolio: MarketPortfolio,
    frame: PriceFrame,
    days: list[dt.date],
    options: BacktestOptions,
    prices_per_t: list[float],
    out_dir: Path,
) -> None:
    """One run per carbon price, each in its folder, then the sweep's table and plot."""
    from vpp.backtest.report import sweep_folder, write_backtest, write_carbon_sweep

    summaries = []
    for price in prices_per_t:
        result = _run_with_progress(portfolio, frame, days, _with_carbon_price(options, price))
        write_backtest(result, out_dir / sweep_folder(price))
        summaries.append(result.summary())
    try:
        paths = write_carbon_sweep(summaries, out_dir, frame.currency)
    except VppError as exc:
        fail_on(exc)
    table = Table(title=f"Carbon price sweep {portfolio.market.id} ({frame.currency})")
    for name in ("carbon price / t", "net revenue", "emissions tCO2", "capture"):
        table.add_column(name, justify="right")
    for s in summaries:
        emissions = s.get("emissions_location_tco2")
        capture = s.get("flexibility_capture_ratio")
        table.add_row(
            f"{s['carbon_price_per_t']:g}", f"{s['net_revenue']:,.2f}",
            "-" if emissions is None else f"{emissions:,.3f}",
            "-" if capture is None else f"{capture:.3f}",
        )
    console.print(table)
    console.print(f"wrote {paths[0]}, {paths[1]} and {len(summaries)} run folders to {out_dir}")


def _run_sweep_file(
    cfg: ConfigSet, path: Path, out_dir: Path, scheduler: str | None, workers: int
) -> None:
    """``--sweep``: check the file, its names and the folder, then run the cells on Dask."""
    from strategies import FORECASTERS, RT_FORECASTERS, STRATEGIES
    from vpp import files
    from vpp.backtest.sweep import SWEEP_OUTPUTS, dask_client, run_sweep, sweep_cells
    from vpp.config import load_sweep
    from vpp.config.models import check_scheduler_address

    try:
        spec = load_sweep(path)
        grid = spec.grid
        for field, allowed in (
            ("strategy", STRATEGIES),
            ("forecaster", FORECASTERS),
            ("rt_forecaster", [*FORECASTERS, *RT_FORECASTERS]),
        ):
            for i, value in enumerate(getattr(grid, field) or []):
                if value not in allowed:
                    fail(f"{path}: grid.{field}[{i}] = {value!r}: unknown; choose one of "
                         f"{', '.join(allowed)}")
        address = scheduler or cfg.settings.compute.scheduler
        if scheduler is not None:
            try:
                check_scheduler_address(scheduler)
            except ValueError as exc:
                fail(f"--scheduler {scheduler!r}: {exc}")
        files.check_output_folder(out_dir, SWEEP_OUTPUTS)
        cells = sweep_cells(spec, cfg)
    except VppError as exc:
        fail_on(exc)
    where = address or f"a LocalCluster of {workers} worker process{'es' if workers > 1 else ''}"
    console.print(f"sweep of {len(cells)} cells on {where}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"sweep {path.name}", total=len(cells))

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, description=f"sweep {path.name}: {done}/{total} cells")

        try:
            with dask_client(address, workers) as client:
                result = run_sweep(
                    cells, cfg.root, out_dir, client, progress=progress
                )
        except VppError as exc:
            fail_on(exc)
        except OSError as exc:  # no scheduler at the address (distributed raises OSError)
            fail(f"Dask scheduler {address}: cannot connect ({exc}); start one or leave "
                 "--scheduler out for a LocalCluster")
    console.print(
        f"wrote {out_dir / 'sweep.csv'}, {out_dir / 'sweep.png'} and {len(cells)} cell folders "
        f"({len(result.computed)} computed, {len(result.skipped)} already finished)"
    )


@dataclass(frozen=True)
class _Names:
    """The checked strategy, forecaster, real-time forecaster and solver names."""

    strategy: str
    forecaster: str
    rt_forecaster: str | None
    solver: str


def _checked_names(
    cfg: ConfigSet,
    strategy: str | None,
    forecaster: str | None,
    rt_forecaster: str | None,
    solver: str | None,
) -> _Names:
    """Options over ``[backtest]`` settings, each refused (one line) unless known."""
    from strategies import FORECASTERS, RT_FORECASTERS, SOLVERS, STRATEGIES

    settings = cfg.settings.backtest
    strategy_name = check_name(
        "--strategy" if strategy else "[backtest] strategy", strategy or settings.strategy,
        STRATEGIES,
    )
    forecaster_name = check_name(
        "--forecaster" if forecaster else "[backtest] forecaster",
        forecaster or settings.forecaster, FORECASTERS,
    )
    rt_name = rt_forecaster or settings.rt_forecaster
    if rt_name is not None:
        check_name(
            "--rt-forecaster" if rt_forecaster else "[backtest] rt_forecaster", rt_name,
            [*FORECASTERS, *RT_FORECASTERS],
        )
    solver_name = (solver or cfg.settings.solver.name).upper()
    if solver_name not in SOLVERS:
        check_name("--solver", solver or solver_name, SOLVERS)
    return _Names(strategy_name, forecaster_name, rt_name, solver_name)


def _load_days(
    cfg: ConfigSet, price_path: Path, first: dt.date | None, last: dt.date | None
) -> tuple[PriceFrame, MarketPortfolio, list[dt.date]]:
    """The price file, the portfolio bidding into its market and its complete days in range."""
    from market_replay.canonical import read_prices
    from vpp.runtime.operator import MarketPortfolio

    try:
        frame = read_prices(price_path)
        portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
    except VppError as exc:
        fail_on(exc)
    days = [
        d
        for d in frame.days(portfolio.market.timezone)
        if (first is None or d >= first) and (last is None or d <= last)
    ]
    if not days:
        fail(f"{price_path}: no complete day between {first} and {last}")
    return frame, portfolio, days


def _options(
    cfg: ConfigSet, names: _Names, reoptimise_every: int | None, baselines: bool, price_path: Path
) -> BacktestOptions:
    """The run's :class:`~vpp.backtest.run.BacktestOptions` from the names and ``[backtest]``."""
    from strategies import StrategyOptions
    from vpp.backtest.run import BacktestOptions

    settings = cfg.settings.backtest
    return BacktestOptions(
        strategy=StrategyOptions.from_settings(settings, cfg.settings.solver).replace(
            name=names.strategy,
            forecaster=names.forecaster,
            solver=names.solver,
            reoptimise_every=reoptimise_every or settings.reoptimise_every,
            rt_forecaster=names.rt_forecaster,
        ),
        baselines=baselines,
        allow_out_of_rule_prices=settings.allow_out_of_rule_prices,
        price_file=str(price_path),
        workers=2 if (os.cpu_count() or 1) > 1 else 1,
    )


def _run_with_progress(
    portfolio: MarketPortfolio, frame: PriceFrame, days: list[dt.date], options: BacktestOptions
) -> BacktestResult:
    """:func:`~vpp.backtest.run.run_backtest` under a progress bar; a VppError fails in one line."""
    from vpp.backtest.run import run_backtest

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{options.strategy.name} on {portfolio.market.id}", total=len(days) * 2)
        done: dict[str, int] = {}

        def progress(name: str, day: int, total: int) -> None:
            done[name] = day
            bar.update(task, completed=sum(done.values()), description=f"{name}: day {day}/{total}")

        try:
            return run_backtest(portfolio, frame, days, options, progress)
        except VppError as exc:
            fail_on(exc)


SUMMARY_ROWS = (
    "days",
    "intervals",
    "strategy",
    "net_revenue",
    "da_revenue",
    "rt_revenue",
    "rt_bid_revenue",
    "imbalance_revenue",
    "clawback_revenue",
    "degradation_cost",
    "perfect_foresight_revenue",
    "capture_ratio",
    "baseline_revenue",
    "no_flexibility_revenue",
    "flexibility_value",
    "flexibility_capture_ratio",
    "imbalance_mwh",
    "rt_awarded_mwh",
    "deviation_price",
    "battery_equivalent_cycles",
    "emissions_location_tco2",
    "emissions_location_annual_tco2",
    "emissions_market_tco2",
    "carbon_intensity_tco2_per_tce",
    "clean_energy_share",
    "carbon_price_per_t",
    "solve_time_s",
    "wall_time_s",
)


def _print_summary(summary: dict[str, object]) -> None:
    """The summary's headline numbers as a table."""
    table = Table(
        title=f"Backtest {summary['market']} {summary['start']} to {summary['end']} ({summary['currency']})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in SUMMARY_ROWS:
        value = summary.get(key)
        text = f"{value:,.2f}" if isinstance(value, float) and abs(value) >= 1 else str(value)
        table.add_row(key, text)
    console.print(table)
