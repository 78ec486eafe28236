"""``vpp forecast evaluate``: walk-forward forecast errors on prices, PV, load or EV energy.

Each target reads one input file:

* ``--target da|rt --prices FILE`` (a canonical price file): each delivery day
  is forecast from what the replay exchange has published at the decision
  time: the day-ahead gate closure for ``da``, the day-ahead publication for
  ``rt`` (the first moment the delivery day's day-ahead prices, which the
  real-time forecasters start from, are known);
* ``--target pv --weather FILE`` (a TMY3 file): the output [kW] of a 1000 kWp
  reference plant at the file's site (:func:`vpp.profiles.pv_reference_frame`),
  hourly on the site's local standard time;
* ``--target load --load FILE`` (a steel-plant UCI file): the measured load
  [kW] per 15 minutes, on the plant's clock (Asia/Seoul);
* ``--target ev --sessions FILE`` (an ACN sessions file): the energy delivered
  to the sessions arriving in each hour [kWh], on the garage's clock
  (America/Los_Angeles).

PV, load and EV days are forecast at noon local time on the day before
(:func:`strategies.evaluation.series_decision_time`) from the rows before it.
Scores per forecaster: MAE, RMSE, pinball loss, 10-90 % band coverage and MAE
over persistence's (:mod:`strategies.evaluation`). The progress bar goes to
stderr, so ``--json`` output stays clean.

Bad input is one line naming the option (or file and field) and the value,
exit 1 as for every other command (``docs/cli.md``): a missing file, a file
option that does not belong to the target, an unknown forecaster or target,
a malformed date, ``--start`` after ``--end``, dates outside the file, a
market with no ``config/markets`` file, a file that does not parse.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vpp.cli._common import check_range, config_path, console, err_console, fail, parse_day

if TYPE_CHECKING:
    from strategies import ForecastScore

app = typer.Typer(help="Forecasts: evaluate forecasters walk-forward on prices, PV, load or EV data.",
                  no_args_is_help=True)

TARGETS = {"da": "da_price", "rt": "rt_price", "pv": "pv_kw", "load": "load_kw",
           "ev": "arriving_energy_kwh"}
#: The file option each target reads.
INPUTS = {"da": "--prices", "rt": "--prices", "pv": "--weather", "load": "--load",
          "ev": "--sessions"}
DEFAULTS = {
    "da": ["persistence", "gbm"],
    "rt": ["persistence", "day_ahead", "da_spread"],
    "pv": ["persistence", "recent_mean", "clear_sky"],
    "load": ["persistence", "weekly", "gbm"],
    "ev": ["persistence", "weekly", "gbm"],
}
HINTS = {"--prices": "a canonical price file (vpp data import)", "--weather": "a TMY3 file",
         "--load": "a steel-plant UCI load file", "--sessions": "an ACN sessions file"}
UNITS = {"pv": "kW per MWp", "load": "kW", "ev": "kWh per hour"}
KEYS = ("forecaster", "target", "mae", "rmse", "pinball", "coverage", "mae_vs_persistence")


class _Clock:
    """The replay exchange's clock, moved to each decision time."""

    def __init__(self) -> None:
        self.at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.at


def _known_forecasters(target: str) -> list[str]:
    from strategies import FORECASTERS, PV_FORECASTERS, RT_FORECASTERS

    extra = {"rt": list(RT_FORECASTERS), "pv": list(PV_FORECASTERS)}.get(target, [])
    return [*FORECASTERS, *extra]


def _days(
    first: dt.date | None, last: dt.date | None, covered: tuple[dt.date, dt.date], name: str
) -> list[dt.date]:
    """The delivery days asked for, within the file's local days ``covered``; by default
    from the file's second day (the first has no history) to its last."""
    file_first, file_last = covered
    for option, value in (("--start", first), ("--end", last)):
        if value is not None and not file_first <= value <= file_last:
            fail(f"{option} {value} is outside {name} ({file_first} .. {file_last}); "
                 "give a day within the file")
    first = first or file_first + dt.timedelta(days=1)
    last = last or file_last
    return [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]


def _run(
    description: str, days: list[dt.date], score: Callable[[Callable[[dt.date], None]], Any]
) -> Any:
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    ) as bar:
        task = bar.add_task(description, total=len(days))
        return score(lambda _day: bar.advance(task))


def _report(
    scores: list[ForecastScore], as_json: bool, title: str, digits: int = 2
) -> None:
    if as_json:
        typer.echo(json.dumps([{k: getattr(s, k) for k in KEYS} for s in scores], indent=2))
        return
    table = Table(title=escape(title))  # '[kW]' is text, not rich markup
    for heading in ("forecaster", "MAE", "RMSE", "pinball", "10-90% coverage", "MAE / persistence"):
        table.add_column(heading, justify="left" if heading == "forecaster" else "right")
    for s in scores:
        table.add_row(s.forecaster, f"{s.mae:.{digits}f}", f"{s.rmse:.{digits}f}",
                      f"{s.pinball:.{digits}f}", f"{s.coverage:.2f}", f"{s.mae_vs_persistence:.3f}")
    console.print(table)


@app.command()
def evaluate(
    prices: Annotated[
        Path | None, typer.Option("--prices", help="Canonical price file (--target da|rt)")
    ] = None,
    weather: Annotated[
        Path | None, typer.Option("--weather", help="TMY3 weather file (--target pv)")
    ] = None,
    load: Annotated[
        Path | None, typer.Option("--load", help="Steel-plant UCI load file (--target load)")
    ] = None,
    sessions: Annotated[
        Path | None, typer.Option("--sessions", help="ACN EV sessions file (--target ev)")
    ] = None,
    forecaster: Annotated[
        list[str] | None,
        typer.Option("--forecaster", "-f", help="Forecaster to score (repeat) [default: by target]"),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First delivery day YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="Last delivery day YYYY-MM-DD")] = None,
    target: Annotated[
        str, typer.Option(help="da, rt (prices), pv (PV output), load, ev (EV arriving energy)")
    ] = "da",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of scores")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder [default: ./config]")
    ] = None,
) -> None:
    """Score forecasters day by day, each forecast made only from data known by then."""
    if target not in TARGETS:
        fail(f"--target {target!r}: unknown; choose one of {', '.join(TARGETS)}")
    known = _known_forecasters(target)
    names = forecaster or DEFAULTS[target]
    for name in names:
        if name not in known:
            fail(f"--forecaster {name!r}: unknown for --target {target}; choose one of "
                 f"{', '.join(known)}")
    first_day, last_day = parse_day(start, "--start"), parse_day(end, "--end")
    check_range(first_day, last_day, ("--start", "--end"))
    given = {"--prices": prices, "--weather": weather, "--load": load, "--sessions": sessions}
    wanted = INPUTS[target]
    for option, value in given.items():
        if value is not None and option != wanted:
            fail(f"{option} {value}: not read by --target {target}; give {wanted} FILE")
    path = given[wanted]
    if path is None:
        fail(f"--target {target} needs {wanted} FILE")
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "file not found"
        fail(f"{wanted} {path}: {what}; give {HINTS[wanted]}")
    if target in ("da", "rt"):
        _evaluate_prices(path, names, first_day, last_day, target, as_json, config)
    else:
        _evaluate_series(path, names, first_day, last_day, target, as_json)


def _evaluate_series(
    path: Path, names: list[str], first_day: dt.date | None, last_day: dt.date | None,
    target: str, as_json: bool,
) -> None:
    from strategies import walk_forward_series
    from vpp.profiles import (
        ACN_TIMEZONE,
        STEEL_PLANT_TIMEZONE,
        ev_arrival_energy_kwh,
        load_series_kw,
        pv_reference_frame,
        tmy3_site,
    )

    column = TARGETS[target]
    known: list[str] = []
    options: dict[str, dict[str, Any]] = {}
    if target == "pv":
        timezone = tmy3_site(path).timezone
        frame = pv_reference_frame(path)
        known = ["clear_sky_kw"]
        options = {"gbm": {"feature_columns": known}}
    elif target == "load":
        timezone = STEEL_PLANT_TIMEZONE
        frame = load_series_kw(path).to_frame()
        options = {"gbm": {"holiday_country": "KR"}}
    else:
        timezone = ACN_TIMEZONE
        frame = ev_arrival_energy_kwh(path).to_frame()
        options = {"gbm": {"holiday_country": "US-CA"}}
    local = pd.DatetimeIndex(frame.index).tz_convert(timezone)
    days = _days(first_day, last_day, (local[0].date(), local[-1].date()), path.name)
    scores = _run(
        f"{path.name} {target}", days,
        lambda progress: walk_forward_series(
            frame, days, target=column, label=target, timezone=timezone, forecasters=names,
            known_in_advance=known, options=options, progress=progress,
        ),
    )
    _report(scores, as_json, f"{path.name}: {target} forecasts, {days[0]} .. {days[-1]} "
            f"({scores[0].days} days scored) [{UNITS[target]}]")


def _evaluate_prices(
    prices: Path, names: list[str], first_day: dt.date | None, last_day: dt.date | None,
    target: str, as_json: bool, config: Path | None,
) -> None:
    from market_replay.canonical import read_prices
    from market_replay.exchange import ReplayExchange
    from strategies import walk_forward
    from vpp.config import load_market
    from vpp.timeutil import day_intervals_utc

    frame = read_prices(prices)
    column = TARGETS[target]
    if column not in frame.frame.columns:
        fail(f"--prices {prices}: no {column} column for --target {target}; "
             f"the file has {', '.join(frame.frame.columns)}")
    market_file = config_path(config) / "markets" / f"{frame.market_id}.toml"
    if not market_file.is_file():
        fail(f"{market_file}: no market file for {frame.market_id!r} (the price file's market); "
             "pass --config DIR")
    market = load_market(market_file)
    tz = market.timezone
    local = frame.frame.index.tz_convert(tz)
    days = _days(first_day, last_day, (local[0].date(), local[-1].date()), prices.name)

    clock = _Clock()
    exchange = ReplayExchange(frame.frame, market, clock)

    def history_at(when: dt.datetime) -> pd.DataFrame:
        clock.at = when
        return exchange.history()

    def decision(day: dt.date) -> dt.datetime:
        rules = market.rules_on(day)
        return rules.gate_closure(day) if target == "da" else rules.da_publication(day)

    scores = _run(
        f"{frame.market_id} {target}", days,
        lambda progress: walk_forward(
            days,
            history_at=history_at,
            decision_time=decision,
            day_index=lambda day: day_intervals_utc(day, tz, frame.interval_minutes),
            actual=frame.frame[column],
            forecasters=names,
            timezone=tz,
            target=column,
            progress=progress,
        ),
    )
    _report(scores, as_json, f"{prices.name}: {target} forecasts, {days[0]} .. {days[-1]} "
            f"({scores[0].days} days scored) [{frame.price_unit}]")
