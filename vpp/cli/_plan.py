"""``vpp plan``: the optimal schedule of a market's parks for one day at known prices."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from vpp.cli._common import console, exit_code, fail, fail_on, load, parse_day
from vpp.errors import InputError, VppError


def plan(
    prices: Annotated[
        Path, typer.Option("--prices", "-p", help="Canonical price file (see `vpp data import`)")
    ],
    day: Annotated[
        str, typer.Option("--day", "-d", help="Delivery day YYYY-MM-DD, market-local")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the CSVs and plan.json")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
    ] = None,
    solver: Annotated[
        str | None,
        typer.Option("--solver", "-s", help="HIGHS, ECOS or CLARABEL [default: vpp.toml solver]"),
    ] = None,
    price_column: Annotated[
        str, typer.Option("--price-column", help="Price column to plan against")
    ] = "da_price",
    carbon_price_per_t: Annotated[
        float,
        typer.Option(
            "--carbon-price-per-t",
            help="Internal carbon price on grid import [currency/tCO2]; 0: carbon-blind",
        ),
    ] = 0.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=256,
            help="Worker processes solving the parks (parks are independent; same result)",
        ),
    ] = 1,
) -> None:
    """Write the optimal schedule for DAY: per asset and per park (CSV) and plan.json."""
    from market_replay import read_prices
    from strategies import check_solver
    from strategies.plan import check_plan_out, plan_day, write_plan

    delivery_day = parse_day(day, "--day")
    if solver is not None:
        try:
            solver = check_solver(solver)
        except InputError as exc:
            fail(f"--solver: {exc}", exit_code(exc))
    if not math.isfinite(carbon_price_per_t) or carbon_price_per_t < 0:
        fail(f"--carbon-price-per-t = {carbon_price_per_t}: must be a finite number >= 0")
    check_plan_out(out)  # before the solve: an unwritable --out fails in a second
    cfg = load(config)
    try:
        frame = read_prices(prices)
        result = plan_day(
            cfg, frame.frame, delivery_day, frame.market_id, solver=solver,
            price_column=price_column, carbon_price_per_t=carbon_price_per_t,
            parallel=workers,
        )
        paths = write_plan(result, out)
    except VppError as exc:
        fail_on(exc)
    table = Table(title=f"Plan {frame.market_id} {delivery_day.isoformat()}")
    for name in ("status", "objective", "energy revenue", "emissions tCO2", "build s",
                 "solve s", "total s"):
        table.add_column(name, justify="right")
    stats = result.stats
    emissions = result.emissions_location_tco2()
    table.add_row(
        result.status,
        f"{result.schedule.objective:,.2f} {result.currency}",
        f"{result.energy_revenue():,.2f} {result.currency}",
        "-" if emissions is None else f"{emissions:,.3f}",
        f"{stats.build_s:.3f}" if stats else "-",
        f"{stats.solve_s:.3f}" if stats else "-",
        f"{result.total_s:.3f}",
    )
    console.print(table)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    if result.status not in ("optimal", "optimal_inaccurate"):
        fail(f"no optimal plan ({result.status}): {result.error}; wrote the idle fallback")
