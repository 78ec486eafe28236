"""``vpp backtest``: the strategy on historical prices, with baselines and a report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

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
) -> None:
    """Backtest a strategy on a canonical price file; write summary, CSVs, plots and report.html."""
    from market_replay.canonical import read_prices
    from strategies import FORECASTERS, SOLVERS, STRATEGIES
    from vpp.backtest.report import check_out, write_backtest
    from vpp.backtest.run import BacktestOptions, run_backtest
    from vpp.runtime.operator import MarketPortfolio

    cfg = load(config)
    settings = cfg.settings.backtest
    # Every name, date and the output folder first: nothing is read, solved or written
    # before they are right, so a typo fails in a second, not after the backtest.
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
            FORECASTERS,
        )
    solver_name = (solver or cfg.settings.solver.name).upper()
    if solver_name not in SOLVERS:
        check_name("--solver", solver or solver_name, SOLVERS)
    first = parse_day(start, "--start") if start else settings.start
    last = parse_day(end, "--end") if end else settings.end
    check_range(first, last, ("--start", "--end"))
    price_path = prices or (cfg.root / settings.prices if settings.prices else None)
    if price_path is None:
        fail("no price file: pass --prices or set [backtest] prices in vpp.toml")
    out_dir = out or (cfg.root / settings.out)
    check_out(out_dir)
    try:
        frame = read_prices(price_path)
        portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
    except (VppError, ValueError) as exc:
        fail_on(exc) if isinstance(exc, VppError) else fail(str(exc))
    days = [
        d
        for d in frame.days(portfolio.market.timezone)
        if (first is None or d >= first) and (last is None or d <= last)
    ]
    if not days:
        fail(f"{price_path}: no complete day between {first} and {last}")
    options = BacktestOptions(
        strategy=strategy_name,
        forecaster=forecaster_name,
        scenarios=settings.scenarios,
        solver=solver_name,
        time_limit_s=cfg.settings.solver.time_limit_s,
        reoptimise_every=reoptimise_every or settings.reoptimise_every,
        deviation_penalty_per_mwh=settings.deviation_penalty_per_mwh,
        rt_forecaster=rt_name,
        baselines=baselines,
        allow_out_of_rule_prices=settings.allow_out_of_rule_prices,
        price_file=str(price_path),
        workers=2 if (os.cpu_count() or 1) > 1 else 1,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(f"{options.strategy} on {portfolio.market.id}", total=len(days) * 2)
        done: dict[str, int] = {}

        def progress(name: str, day: int, total: int) -> None:
            done[name] = day
            bar.update(task, completed=sum(done.values()), description=f"{name}: day {day}/{total}")

        try:
            result = run_backtest(portfolio, frame, days, options, progress)
        except VppError as exc:
            fail_on(exc)
    files = write_backtest(result, out_dir)
    summary = result.summary()
    table = Table(
        title=f"Backtest {summary['market']} {summary['start']} to {summary['end']} ({summary['currency']})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "days",
        "intervals",
        "strategy",
        "net_revenue",
        "da_revenue",
        "rt_revenue",
        "degradation_cost",
        "perfect_foresight_revenue",
        "capture_ratio",
        "baseline_revenue",
        "no_flexibility_revenue",
        "flexibility_value",
        "flexibility_capture_ratio",
        "imbalance_mwh",
        "battery_equivalent_cycles",
        "solve_time_s",
        "wall_time_s",
    ):
        value = summary.get(key)
        text = f"{value:,.2f}" if isinstance(value, float) and abs(value) >= 1 else str(value)
        table.add_row(key, text)
    console.print(table)
    console.print(f"wrote {len(files)} files to {out_dir} (open {out_dir / 'report.html'})")
