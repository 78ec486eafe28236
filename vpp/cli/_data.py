"""``vpp data``: import vendor price files, check and show canonical price files."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from vpp import __version__
from vpp.cli._common import config_path, console, fail, fail_on, load
from vpp.config import ConfigSet, MarketConfig
from vpp.errors import ConfigError, DataQualityError
from vpp.files import check_output_file, describe_os_error

if TYPE_CHECKING:  # market_replay loads pandas; imported lazily so `vpp --help` stays fast
    from market_replay import PriceFrame, QualityReport

data_app = typer.Typer(
    help="Market price data: import exchange files, check and show canonical price files.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
]


def _market(cfg: ConfigSet, market_id: str) -> MarketConfig:
    if market_id not in cfg.markets:
        fail(f"unknown market {market_id!r}; known: {', '.join(sorted(cfg.markets))}")
    return cfg.markets[market_id]


def _report_table(report: QualityReport) -> Table:
    table = Table(
        title=f"Quality report: {report.format} -> {report.market_id} (policy {report.policy})",
        title_justify="left",
    )
    for name in ("source", "check", "column", "count", "days", "first examples", "action"):
        table.add_column(name, overflow="fold", justify="right" if name == "count" else "left")
    for issue in report.sorted_issues():
        style = ("red" if report.policy == "error" else "yellow") if issue.is_problem else "dim"
        table.add_row(
            issue.source,
            issue.check,
            issue.column or "-",
            f"{issue.count:,}",
            issue.days_text(),
            "\n".join(issue.examples),
            report.action(issue),
            style=style,
        )
    if not report.issues:
        table.add_row("-", "all checks passed", "-", "0", "-", "-", "-")
    return table


def import_(
    input_file: Annotated[Path, typer.Argument(metavar="INPUT", help="Vendor price file (CSV)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Canonical CSV to write")],
    format_name: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="cn-spot-96, nordpool-regulating, ercot-dam, ercot-rtm, entsoe-day-ahead, "
            "or a format .toml file",
        ),
    ],
    zone: Annotated[
        str | None, typer.Option("--zone", "-z", help="Zone column, e.g. DK1 or HB_HOUSTON")
    ] = None,
    market_id: Annotated[
        str | None, typer.Option("--market", "-m", help="Market id [default: per format]")
    ] = None,
    on_missing: Annotated[
        str,
        typer.Option("--on-missing", help="Policy for quality problems: error, drop-day or flag"),
    ] = "error",
    rt: Annotated[
        Path | None,
        typer.Option("--rt", help="Real-time file to join (ercot-dam + ercot-rtm)"),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Import a vendor price file, print its quality report, write the canonical file."""
    from market_replay import POLICIES, QualityError, get_format, import_prices
    from market_replay.canonical import write_prices

    if on_missing not in POLICIES:
        fail(f"--on-missing {on_missing!r}: must be one of {', '.join(POLICIES)}")
    try:
        spec = get_format(format_name)
    except ConfigError as exc:
        fail_on(exc)
    for source in (input_file, rt):
        # realpath, not Path.resolve: it never raises on a symlink loop (reading reports it)
        if source is not None and os.path.realpath(source) == os.path.realpath(output):
            fail(f"{output}: output would overwrite the input; choose another -o")
    check_output_file(output)  # before the import: an unwritable -o fails in a second
    cfg = load(config)
    market = _market(cfg, market_id or spec.default_market)
    try:
        result = import_prices(input_file, spec, market, zone=zone, policy=on_missing, rt_path=rt)
    except QualityError as exc:
        console.print(_report_table(exc.report))
        fail_on(exc)
    report = result.report
    console.print(_report_table(report))
    command = "vpp data import " + shlex.join(
        [
            "--format",
            spec.name,
            *(["--zone", zone] if zone else []),
            "--market",
            market.id,
            "--on-missing",
            on_missing,
            *(["--rt", rt.name] if rt else []),
            input_file.name,
        ]
    )
    try:
        write_prices(
            result.prices,
            output,
            source=", ".join(Path(s).name for s in report.sources),
            created_by=f"vpp {__version__}: {command}",
            extra={"quality_policy": on_missing, "quality": report.summary()},
        )
    except OSError as exc:
        fail(f"cannot write {describe_os_error(exc, output)}")
    days = result.prices.days(market.timezone)
    dropped = (
        f", {len(report.days_dropped)} day(s) with problems left out" if report.days_dropped else ""
    )
    console.print(
        f"[green]wrote[/] {output}: {len(result.prices):,} intervals of "
        f"{result.prices.interval_minutes} min, {len(days)} complete day(s){dropped}; "
        f"read {report.rows_read:,} rows"
    )


def _read(file: Path) -> PriceFrame:
    from market_replay import read_prices

    try:
        return read_prices(file)
    except DataQualityError as exc:
        fail_on(exc)


def _market_if_known(config: Path | None, market_id: str) -> MarketConfig | None:
    """The market of a canonical file from the config folder, if one is there."""
    from vpp.config import load_config

    try:
        cfg = load_config(config_path(config))
    except ConfigError:
        return None
    return cfg.markets.get(market_id)


def check(
    file: Annotated[Path, typer.Argument(help="Canonical price file")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any finding is reported")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Validate a canonical price file and report holes, NaN, zero days, flags, limits.

    Exits 1 when a price breaks the market's floor/cap in force on its day (a rule, not a
    quality finding); other findings exit 1 only with --strict.
    """
    from market_replay.importers import check_prices, price_rule_breaks

    prices = _read(file)
    market = _market_if_known(config, prices.market_id)
    try:
        issues = check_prices(prices, market, source=file.name)
        breaks = price_rule_breaks(prices, market) if market is not None else None
    except DataQualityError as exc:
        fail_on(exc)
    table = Table(title=f"Check: {file}", title_justify="left")
    for name in ("check", "column", "count", "days", "first examples"):
        table.add_column(name, overflow="fold", justify="right" if name == "count" else "left")
    for issue in issues:
        table.add_row(
            issue.check,
            issue.column or "-",
            f"{issue.count:,}",
            issue.days_text(),
            "\n".join(issue.examples),
        )
    limits = (
        "with market limits"
        if market is not None
        else f"without market limits (market {prices.market_id!r} is not in the config)"
    )
    console.print(
        f"[green]valid[/] canonical file: {prices.market_id}, {prices.currency}, "
        f"{len(prices):,} intervals of {prices.interval_minutes} min; checked {limits}"
    )
    if issues:
        console.print(table)
        if breaks is not None:
            fail(breaks.describe(str(file)))
        if strict:
            fail(f"{len(issues)} finding(s) in {file}")
    else:
        console.print("no findings")


def show(
    file: Annotated[Path, typer.Argument(help="Canonical price file")],
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot here")] = None,
    config: ConfigOption = None,
) -> None:
    """Summarise a canonical price file (range, interval, mean/min/max, negatives)."""
    from market_replay import read_header

    prices = _read(file)
    header = read_header(file)
    market = _market_if_known(config, prices.market_id)
    tz = market.timezone if market is not None else "UTC"
    frame = prices.frame
    console.print(f"[bold]{file}[/]  market {prices.market_id}, {prices.currency}/MWh")
    if "source" in header:
        console.print(f"source: {header['source']}")
    if len(prices) == 0:
        console.print("no intervals")
        return
    first, last = frame.index[0], frame.index[-1]
    console.print(
        f"range: {first.tz_convert(tz):%Y-%m-%d %H:%M %Z} .. "
        f"{last.tz_convert(tz):%Y-%m-%d %H:%M %Z} (interval starts, {tz}); "
        f"interval {prices.interval_minutes} min; {len(prices):,} intervals; "
        f"{len(prices.days(tz))} complete day(s)"
    )
    table = Table(title_justify="left")
    for name in ("column", "mean", "min", "max", "negative", "NaN"):
        table.add_column(name, justify="left" if name == "column" else "right")
    for column in prices.price_columns:
        values = frame[column]
        table.add_row(
            f"{column} [{prices.currency}/MWh]",
            f"{values.mean():.2f}",
            f"{values.min():.2f}",
            f"{values.max():.2f}",
            f"{int((values < 0).sum()):,}",
            f"{int(values.isna().sum()):,}",
        )
    console.print(table)
    flagged = int(prices.flagged.sum())
    if flagged:
        console.print(f"[yellow]{flagged:,} flagged interval(s)[/] (policy flag at import)")
    if plot is not None:
        _plot(prices, tz, plot, file.name)
        console.print(f"[green]plot[/] written to {plot}")


def _plot(prices: PriceFrame, tz: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = prices.frame
    if len(frame) > 1:  # holes (dropped days) must show as breaks, not as straight lines
        grid = pd.date_range(frame.index[0], frame.index[-1], freq=f"{prices.interval_minutes}min")
        frame = frame.reindex(grid)
    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    local = frame.index.tz_convert(tz).tz_localize(None)
    for column in prices.price_columns:
        ax.plot(local, frame[column].to_numpy(), label=column, linewidth=0.7)
    ax.set_ylabel(f"price [{prices.currency}/MWh]")
    ax.set_xlabel(f"interval start ({tz})")
    ax.set_title(title)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        fail(f"{path}: cannot write plot: {exc.strerror}")
    finally:
        plt.close(fig)


data_app.command("import")(import_)
data_app.command()(check)
data_app.command()(show)
