"""``vpp run``, ``vpp status`` and ``vpp exchange serve``: the daemon and its operator view."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
import typer
from rich.table import Table

from vpp.cli._common import (
    check_log_level,
    console,
    fail,
    fail_on,
    load,
    open_store,
    parse_day,
)
from vpp.config.loader import ConfigSet
from vpp.errors import VppError
from vpp.files import describe_os_error
from vpp.logging import configure_logging

if TYPE_CHECKING:
    from vpp.web import WebServer

log = structlog.get_logger(__name__)

exchange_app = typer.Typer(help="The replay exchange over HTTP.", no_args_is_help=True)


def _on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns a function restoring the old handlers."""

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _prices_path(cfg: ConfigSet, prices: Path | None) -> Path:
    settings = cfg.settings.backtest
    path = prices or (cfg.root / settings.prices if settings.prices else None)
    if path is None:
        fail("no price file: pass --prices or set [backtest] prices in vpp.toml")
    return path


def _parse_time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        fail(f"{name}: {exc} (use ISO 8601 with an offset, e.g. 2025-05-07T09:00+08:00)")
    if moment.tzinfo is None:
        fail(f"{name} = {value!r}: needs a UTC offset, e.g. 2025-05-07T09:00+08:00")
    return moment


def run(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder or vpp.toml")
    ] = None,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Against the replay exchange (served on loopback) and simulated devices",
        ),
    ] = False,
    prices: Annotated[
        Path | None,
        typer.Option(help="--simulate: canonical price file [default: [backtest] prices]"),
    ] = None,
    speed: Annotated[
        float,
        typer.Option(help="--simulate: simulated seconds per wall second", min=1.0, max=1e6),
    ] = 1440.0,
    start: Annotated[
        str | None,
        typer.Option(help="--simulate: simulated start, ISO with offset [default: before the first bid]"),
    ] = None,
    first_day: Annotated[
        str | None, typer.Option(help="--simulate: first delivery day YYYY-MM-DD")
    ] = None,
    days: Annotated[
        int | None,
        typer.Option(
            help="--simulate: delivery days to run, then stop [default: to the file's end]", min=1
        ),
    ] = None,
    exchange_url: Annotated[
        str | None,
        typer.Option(help="--simulate: follow an exchange from `vpp exchange serve` instead"),
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Metrics port [default: [daemon] metrics_port; 0: any]")
    ] = None,
    http_port: Annotated[
        int | None,
        typer.Option(help="Dashboard and API port [default: [daemon] http_port; 0: any]"),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Run the daemon: bid, collect awards, dispatch and settle on schedule (JSON logs).

    Stops cleanly on SIGTERM/SIGINT: the running job finishes its write and
    devices are released to their own (safe) control. Exits 1 if another
    daemon holds the store, 3 if the store failed while running (dispatch
    stopped, devices released).
    """
    from vpp.daemon.build import (
        SimulationWorld,
        default_window,
        live_daemon,
        remote_simulated_daemon,
        serve_metrics,
        simulated_daemon,
    )
    from vpp.daemon.service import Daemon
    from vpp.store import StoreLock

    configure_logging(json=True, level=check_log_level(log_level))
    first = parse_day(first_day, "--first-day")
    # APScheduler reports coalesced runs of the periodic jobs at WARNING; they are expected.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    cfg = load(config)
    store = open_store(cfg)
    # The single-writer lock comes first: building the daemon already writes (enrols parks).
    lock = StoreLock(store)
    try:
        lock.acquire()
    except VppError as exc:
        fail_on(exc)
    world: SimulationWorld | None = None
    daemon: Daemon
    try:
        if not simulate:
            daemon = live_daemon(cfg, store)
        elif exchange_url:
            last = first + dt.timedelta(days=days - 1) if first and days else None
            daemon = remote_simulated_daemon(cfg, store, exchange_url, first_day=first, last_day=last)
        else:
            from market_replay.canonical import read_prices
            from vpp.runtime.operator import MarketPortfolio

            frame = read_prices(_prices_path(cfg, prices))
            portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
            margin = dt.timedelta(minutes=cfg.settings.daemon.da_safety_margin_minutes)
            begin, first_trading, last_trading = default_window(
                portfolio, frame, margin, first, days
            )
            begin = _parse_time(start, "--start") or begin
            world = SimulationWorld.start(
                portfolio,
                frame,
                speed=speed,
                start=begin,
                first_day=first_trading,
                last_day=last_trading,
            )
            daemon = simulated_daemon(cfg, store, world)
    except VppError as exc:
        if world is not None:
            world.close()
        lock.release()
        fail_on(exc)
    lock.ttl_s = daemon.options.lock_ttl_s
    daemon.store_lock = lock
    settings = cfg.settings.daemon
    port = settings.metrics_port if metrics_port is None else metrics_port
    try:
        metrics_server = serve_metrics(daemon, settings.metrics_host, port)
    except OSError as exc:
        if world is not None:
            world.close()
        fail(describe_os_error(exc, f"metrics server {settings.metrics_host}:{port}"))
    web = _serve_web(cfg, settings.http_host, settings.http_port if http_port is None else http_port,
                     explicit=http_port is not None)
    stop = threading.Event()
    restore = _on_signals(stop)
    try:
        daemon.start()
    except VppError as exc:  # another daemon holds the store, or the store cannot be read
        daemon.abort()  # nothing was sent yet; gives the lease up
        metrics_server.shutdown()
        metrics_server.server_close()
        if web is not None:
            web.stop()
        if world is not None:
            world.close()
        restore()
        fail_on(exc)
    try:
        while not stop.is_set() and not daemon.finished.is_set():
            stop.wait(0.2)
    finally:
        if not daemon.finished.is_set():
            daemon.stop()
        daemon.finished.wait()
        metrics_server.shutdown()
        metrics_server.server_close()
        if web is not None:
            web.stop()
        if world is not None:
            world.close()
        restore()
    if daemon.failure is not None:
        fail(
            f"store failed, dispatch stopped and devices released to their own control: "
            f"{daemon.failure}",
            code=daemon.exit_code,
        )


def _serve_web(cfg: ConfigSet, host: str, port: int, *, explicit: bool) -> WebServer | None:
    """The dashboard and API beside the daemon, over their own connections to its store.

    A port given with ``--http-port`` that cannot be bound is an error; the configured
    default taken by something else is logged (``web_not_started``) and the daemon runs
    without its dashboard: the dashboard must never keep a daemon from dispatching.
    """
    from vpp.cli._web import backtest_roots
    from vpp.web import create_app, serve_in_thread

    app = create_app(open_store(cfg), cfg, backtest_dirs=backtest_roots(cfg))
    try:
        return serve_in_thread(app, host, port)
    except OSError as exc:
        if explicit:
            fail(describe_os_error(exc, f"web server {host}:{port}"))
        log.warning("web_not_started", host=host, port=port, reason=describe_os_error(exc))
        return None


def status(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder or vpp.toml")
    ] = None,
    jobs: Annotated[int, typer.Option(help="How many upcoming jobs to list")] = 8,
) -> None:
    """Portfolio, today's bids and awards, asset health and last telemetry, next jobs."""
    from vpp.cli._config import print_portfolio
    from vpp.daemon.status import collect_status

    cfg = load(config)
    store = open_store(cfg)
    try:
        report = collect_status(cfg, store, jobs=jobs)
    except VppError as exc:
        fail_on(exc)
    print_portfolio(list(cfg.parks.values()), title="Portfolio")
    daemon = report["daemon"]
    if daemon is None:
        console.print("daemon: [yellow]never started[/] against this store")
    elif daemon["state"] == "unreadable":
        console.print(
            f"daemon: [red]unknown[/]: its state row is unreadable ({daemon['reason']}); "
            "shown as not running",
            highlight=False,
        )
    else:
        state = daemon["health"]
        detail = ""
        if daemon["state"] == "dead":
            state = "[red]dead[/]"
            detail = " (it did not stop cleanly and holds no live lock on the store)"
        console.print(
            f"daemon: [bold]{state}[/]{detail} ({daemon['mode']}, pid {daemon['pid']}, "
            f"speed {daemon['speed']:g}); clock {daemon['clock_now']}; "
            f"last heartbeat {daemon['heartbeat_at']}",
            highlight=False,
        )
    table = Table(title=f"Bids and awards ({report['today']} and the next day, market time)")
    for column in ("market", "day", "bid", "submitted", "detail", "awards", "net MWh", "settled net"):
        table.add_column(column, justify="right" if column in ("awards", "net MWh", "settled net") else "left")
    for row in report["bids"]:
        table.add_row(
            row["market"],
            row["day"],
            row["status"],
            row["submitted_at"] or "",
            row["reason"] or "",
            str(row["awards"]),
            f"{row['award_mwh']:.2f}" if row["awards"] else "",
            f"{row['settled_net']:,.2f}" if row["settled_net"] is not None else "",
        )
    console.print(table)
    if report["rt_bids"]:
        table = Table(title=f"Real-time bids and awards ({report['today']}, periods starting today)")
        for column in ("market", "product", "period (UTC)", "direction", "bid", "detail",
                       "awards", "MWh", "priced", "value"):
            table.add_column(
                column, justify="right" if column in ("awards", "MWh", "priced", "value") else "left"
            )
        for row in report["rt_bids"]:
            table.add_row(
                row["market"],
                row["product"],
                row["period_start"] or "",
                row["direction"],
                row["status"],
                row["reason"] or (f"receipt {row['receipt']}" if row["receipt"] else ""),
                str(row["awards"]),
                f"{row['award_mwh']:.2f}" if row["awards"] else "",
                str(row["priced"]) if row["awards"] else "",
                f"{row['value']:,.2f}" if row["priced"] else "",
            )
        console.print(table)
    table = Table(title="Assets: health and last telemetry")
    for column in ("park", "asset", "health", "measured at", "power kW", "SoC"):
        table.add_column(column, justify="right" if column in ("power kW", "SoC") else "left")
    for row in report["assets"]:
        health = {
            "ok": "ok",
            "unavailable": f"[red]unavailable[/] {row['reason'] or ''}",
            "unknown": f"[yellow]unknown[/] (last seen {row['measured_at']})",
            "no telemetry": "[yellow]no telemetry[/]",
        }[row["health"]]
        table.add_row(
            row["park"],
            row["asset"],
            health,
            row["measured_at"] or "",
            f"{row['power_kw']:,.1f}" if row["power_kw"] is not None else "",
            f"{row['soc']:.1%}" if row["soc"] is not None else "",
        )
    console.print(table)
    table = Table(title=f"Next jobs ({report['jobs_source']})")
    for column in ("run at (UTC)", "market", "job", "delivery day", "interval"):
        table.add_column(column)
    for job in report["next_jobs"]:
        table.add_row(
            job["run_at"], job["market"], job["kind"], job["delivery_day"], job["interval_start"] or ""
        )
    console.print(table)


@exchange_app.command("serve")
def serve(
    prices: Annotated[Path, typer.Option(help="Canonical price file")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config folder or vpp.toml")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second", min=0.001)] = 1.0,
    start: Annotated[
        str | None,
        typer.Option(help="Simulated start, ISO with offset [default: a minute before the first bid]"),
    ] = None,
    host: Annotated[str, typer.Option(help="Listen address (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port (0: any free port)")] = 8480,
    tokens_env: Annotated[
        str,
        typer.Option(
            help="Env variable holding the accepted tokens: portfolio_id=token pairs, comma-separated"
        ),
    ] = "VPP_EXCHANGE_TOKENS",
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without authentication (anyone reaching the port may bid for any portfolio)",
        ),
    ] = False,
) -> None:
    """Serve the replay exchange over HTTP (bids, awards, published prices; gate closure enforced).

    Every route but /v1/health needs a bearer token from --tokens-env; see
    docs/exchange-api.md.
    """
    import os

    from market_replay.canonical import read_prices
    from market_replay.exchange import ReplayExchange
    from market_replay.server import ExchangeServer, TokenError, parse_tokens
    from vpp.daemon.build import default_window
    from vpp.runtime.clock import AcceleratedClock
    from vpp.runtime.operator import MarketPortfolio

    configure_logging(json=True)
    cfg = load(config)
    try:
        tokens = parse_tokens(os.environ.get(tokens_env, ""))
    except TokenError as exc:
        fail(f"{tokens_env}: {exc}")
    if not tokens and not insecure_no_auth:
        fail(
            f"{tokens_env} holds no tokens: export portfolio_id=token pairs in it "
            "(e.g. my-portfolio=$(python -c 'import secrets; print(secrets.token_urlsafe())')), "
            "or pass --insecure-no-auth"
        )
    try:
        frame = read_prices(prices)
        portfolio = MarketPortfolio.from_config(cfg, frame.market_id)
        margin = dt.timedelta(minutes=cfg.settings.daemon.da_safety_margin_minutes)
        begin = _parse_time(start, "--start") or default_window(portfolio, frame, margin)[0]
        clock = AcceleratedClock(begin, speed)
        server = ExchangeServer(
            ReplayExchange(frame.frame, portfolio.market, clock),
            host,
            port,
            tokens=tokens,
            insecure_no_auth=insecure_no_auth,
        )
    except OSError as exc:  # a file names itself; a bind (port in use) names nothing
        fail(describe_os_error(exc, None if exc.filename else f"exchange server {host}:{port}"))
    except VppError as exc:
        fail_on(exc)
    stop = threading.Event()
    restore = _on_signals(stop)
    thread = threading.Thread(target=server.serve_forever, name="vpp-exchange", daemon=True)
    thread.start()
    console.print(
        json.dumps(
            {"url": server.url, "market_id": frame.market_id, "start": begin.isoformat(), "speed": speed}
        ),
        highlight=False,
        soft_wrap=True,
    )
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        restore()
