"""``vpp backtest``: the strategy on historical prices, with baselines and a report."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vpp._exceptions import VppError
from vpp.cli._common import console, fail, fail_on, load


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
    from market_replay.backtest import BacktestOptions, run_backtest
    from market_replay.canonical import read_prices
    from market_replay.report import write_backtest
    from vpp.engine import MarketPortfolio

    cfg = load(config)
    settings = cfg.settings.backtest
    price_path = prices or (cfg.root / settings.prices if settings.prices else None)
    if price_path is None:
        fail("no price file: pass --prices or set [backtest] prices in vpp.toml")
    out_dir = out or (cfg.root / settings.out)
    try:
        first = dt.date.fromisoformat(start) if start else settings.start
        last = dt.date.fromisoformat(end) if end else settings.end
    except ValueError as exc:
        fail(f"--start/--end: {exc} (use YYYY-MM-DD)")
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
        strategy=strategy or settings.strategy,
        forecaster=forecaster or settings.forecaster,
        scenarios=settings.scenarios,
        solver=solver or cfg.settings.solver.name,
        time_limit_s=cfg.settings.solver.time_limit_s,
        reoptimise_every=reoptimise_every or settings.reoptimise_every,
        deviation_penalty_per_mwh=settings.deviation_penalty_per_mwh,
        rt_forecaster=settings.rt_forecaster,
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
