"""The ``vpp`` command line.

Each command group lives in its own module and is registered here; every
command then runs inside one error mapping (:func:`vpp.cli._common.guarded`):
one line on stderr, exit 1 for errors, 2 for usage, 130 on Ctrl-C.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vpp import __version__
from vpp.cli import _adapters, _carbon, _config, _db, _forecast, _plan, _web
from vpp.cli._backtest import backtest
from vpp.cli._common import check_log_level, guard_app
from vpp.cli._daemon import exchange_app, run, status
from vpp.cli._data import data_app
from vpp.cli._demo import demo
from vpp.logging import configure_logging

app = typer.Typer(
    name="vpp",
    help="Virtual power plant aggregator: enrol parks, bid into spot markets, dispatch, backtest.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines to stderr")] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
    version: Annotated[bool, typer.Option("--version", help="Print the version")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    configure_logging(json=True if log_json else None, level=check_log_level(log_level))


app.command()(_config.validate)
app.command()(_config.schema)
app.command()(_config.enroll)
app.command()(_config.parks)
app.command()(demo)
app.add_typer(data_app, name="data")
app.add_typer(_adapters.app, name="adapters")
app.command()(_plan.plan)
app.command()(backtest)
app.command()(run)
app.command()(status)
app.add_typer(exchange_app, name="exchange")
app.add_typer(_carbon.app, name="carbon")
app.add_typer(_forecast.app, name="forecast")
app.add_typer(_db.app, name="db")
app.command()(_web.serve)
app.add_typer(_web.token_app, name="token")
guard_app(app)


def main() -> None:
    app()
