"""``vpp forecast evaluate``: walk-forward forecast errors on a canonical price file.

Each delivery day is forecast from what the replay exchange has published at
the decision time: the day-ahead gate closure for ``--target da``, the
day-ahead publication for ``--target rt`` (the first moment the delivery
day's day-ahead prices, which the real-time forecasters start from, are
known). Scores per forecaster: MAE, RMSE, pinball loss, 10-90 % band
coverage and MAE over persistence's (:mod:`strategies.evaluation`). The
progress bar goes to stderr, so ``--json`` output stays clean.

Bad input exits 2 (usage) with one line naming the option and value: a
missing file, an unknown forecaster or target, a malformed date, ``--start``
after ``--end``, dates outside the file, a market with no ``config/markets``
file. A price file that does not parse exits 1, as for every command.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vpp.cli._common import config_path, console, err_console, fail

app = typer.Typer(help="Price forecasts: evaluate forecasters walk-forward on a price file.",
                  no_args_is_help=True)

TARGETS = {"da": "da_price", "rt": "rt_price"}
DEFAULTS = {"da": ["persistence", "gbm"], "rt": ["persistence", "day_ahead", "da_spread"]}
USAGE = 2


class _Clock:
    """The replay exchange's clock, moved to each decision time."""

    def __init__(self) -> None:
        self.at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.at


def _day(value: str | None, option: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` option value, or exit 2 naming the option and the value."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        fail(f"{option} {value!r}: {exc}; use a date YYYY-MM-DD", USAGE)


@app.command()
def evaluate(
    prices: Annotated[Path, typer.Option("--prices", help="Canonical price file (vpp data import)")],
    forecaster: Annotated[
        list[str] | None,
        typer.Option("--forecaster", "-f", help="Forecaster to score (repeat) [default: by target]"),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First delivery day YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="Last delivery day YYYY-MM-DD")] = None,
    target: Annotated[str, typer.Option(help="da (day-ahead) or rt (real-time) prices")] = "da",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of scores")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder [default: ./config]")
    ] = None,
) -> None:
    """Score forecasters day by day, each forecast made only from data published by then."""
    from market_replay.canonical import read_prices
    from market_replay.exchange import ReplayExchange
    from strategies import FORECASTERS, RT_FORECASTERS, walk_forward
    from vpp.config import load_market
    from vpp.timeutil import day_intervals_utc

    if target not in TARGETS:
        fail(f"--target {target!r}: unknown; choose one of {', '.join(TARGETS)}", USAGE)
    known = [*FORECASTERS, *RT_FORECASTERS] if target == "rt" else list(FORECASTERS)
    names = forecaster or DEFAULTS[target]
    for name in names:
        if name not in known:
            fail(f"--forecaster {name!r}: unknown for --target {target}; choose one of "
                 f"{', '.join(known)}", USAGE)
    first_day, last_day = _day(start, "--start"), _day(end, "--end")
    if first_day and last_day and first_day > last_day:
        fail(f"--start {first_day} is after --end {last_day}; give --start <= --end", USAGE)
    if not prices.is_file():
        what = "is a folder" if prices.is_dir() else "file not found"
        fail(f"--prices {prices}: {what}; give a canonical price file (vpp data import)", USAGE)
    frame = read_prices(prices)
    column = TARGETS[target]
    if column not in frame.frame.columns:
        fail(f"--prices {prices}: no {column} column for --target {target}; "
             f"the file has {', '.join(frame.frame.columns)}", USAGE)
    market_file = config_path(config) / "markets" / f"{frame.market_id}.toml"
    if not market_file.is_file():
        fail(f"{market_file}: no market file for {frame.market_id!r} (the price file's market); "
             "pass --config DIR", USAGE)
    market = load_market(market_file)
    tz = market.timezone
    local = frame.frame.index.tz_convert(tz)
    file_first, file_last = local[0].date(), local[-1].date()
    for option, value in (("--start", first_day), ("--end", last_day)):
        if value is not None and not file_first <= value <= file_last:
            fail(f"{option} {value} is outside {prices.name} ({file_first} .. {file_last}); "
                 "give a day within the file", USAGE)
    first_day = first_day or file_first + dt.timedelta(days=1)
    last_day = last_day or file_last
    days = [first_day + dt.timedelta(days=k) for k in range((last_day - first_day).days + 1)]

    clock = _Clock()
    exchange = ReplayExchange(frame.frame, market, clock)

    def history_at(when: dt.datetime) -> pd.DataFrame:
        clock.at = when
        return exchange.history()

    def decision(day: dt.date) -> dt.datetime:
        rules = market.rules_on(day)
        return rules.gate_closure(day) if target == "da" else rules.da_publication(day)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    ) as bar:
        task = bar.add_task(f"{frame.market_id} {target}", total=len(days))
        scores = walk_forward(
            days,
            history_at=history_at,
            decision_time=decision,
            day_index=lambda day: day_intervals_utc(day, tz, frame.interval_minutes),
            actual=frame.frame[column],
            forecasters=names,
            timezone=tz,
            target=column,
            progress=lambda _day: bar.advance(task),
        )
    if as_json:
        keys = ("forecaster", "target", "mae", "rmse", "pinball", "coverage", "mae_vs_persistence")
        typer.echo(json.dumps([{k: getattr(s, k) for k in keys} for s in scores], indent=2))
        return
    table = Table(title=f"{prices.name}: {target} forecasts, {first_day} .. {last_day} "
                  f"({scores[0].days} days scored) [{frame.price_unit}]")
    for heading in ("forecaster", "MAE", "RMSE", "pinball", "10-90% coverage", "MAE / persistence"):
        table.add_column(heading, justify="left" if heading == "forecaster" else "right")
    for s in scores:
        table.add_row(s.forecaster, f"{s.mae:.2f}", f"{s.rmse:.2f}", f"{s.pinball:.2f}",
                      f"{s.coverage:.2f}", f"{s.mae_vs_persistence:.3f}")
    console.print(table)
