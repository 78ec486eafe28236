"""Assembling a daemon: live (wall clock, remote exchange, adapters) or simulated.

``vpp run --simulate`` runs the real daemon against a :class:`SimulationWorld`:
an :class:`~vpp.runtime.clock.AcceleratedClock`, the replay exchange served
over HTTP on loopback (:class:`~market_replay.server.ExchangeServer`) and
simulated devices. The daemon talks to the exchange only over HTTP, exactly as
to a real one. The world outlives a daemon, so a daemon can be stopped (or
crash) and a new one recover against the same exchange and devices.

With ``--exchange-url`` the simulated daemon follows an exchange served
elsewhere (``vpp exchange serve``): it takes the exchange's clock and speed
from ``/v1/health`` and simulates the devices itself.

Authentication: the simulation world's exchange accepts one random token
(``secrets.token_urlsafe``) made for the run and handed to the daemon, so
``--simulate`` is authenticated like a live run. A daemon talking to a
remote exchange reads its token from the env variable named in ``[daemon]
exchange_token_env``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd
import structlog
from sqlmodel import select

from market_replay.canonical import PriceFrame
from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from strategies import Strategy, StrategyOptions, get_strategy
from vpp.config.loader import ConfigSet
from vpp.daemon.metrics import Metrics, MetricsServer
from vpp.daemon.service import Daemon, DaemonOptions, DeviceFactory
from vpp.errors import ConfigError, ConfigIssue, InputError
from vpp.gateway import HttpExchange
from vpp.runtime.clock import AcceleratedClock, SimulationClock, SystemClock
from vpp.runtime.devices import configured_devices, simulated_devices
from vpp.runtime.jobs import TimeMap, day_jobs
from vpp.runtime.operator import AssetKey, MarketPortfolio, Operator
from vpp.runtime.recording import StoreRecorder
from vpp.store import Store, TelemetryRecord
from vpp.timeutil import day_intervals_utc
from vpp.types import Clock, Device

log = structlog.get_logger(__name__)


def strategy_from(cfg: ConfigSet) -> Strategy:
    """The strategy of the ``[daemon]`` options with the ``[solver]`` settings."""
    return get_strategy(StrategyOptions.from_settings(cfg.settings.daemon, cfg.settings.solver))


def options_from(
    cfg: ConfigSet, first_day: dt.date | None = None, last_day: dt.date | None = None
) -> DaemonOptions:
    settings = cfg.settings.daemon
    return DaemonOptions(
        safety_margin=dt.timedelta(minutes=settings.da_safety_margin_minutes),
        telemetry_poll_s=settings.telemetry_poll_s,
        resend_period_s=settings.dispatch_period_s,
        retry_s=settings.retry_s,
        days_ahead=settings.days_ahead,
        first_day=first_day,
        last_day=last_day,
    )


def days_index(market_tz: str, interval_minutes: int, first: dt.date, last: dt.date) -> pd.DatetimeIndex:
    days = pd.date_range(first, last, freq="D")
    parts = [
        day_intervals_utc(d.date(), market_tz, interval_minutes).as_unit("ns").asi8 for d in days
    ]
    return pd.DatetimeIndex(np.concatenate(parts)).tz_localize("UTC")


def last_soc(store: Store, portfolio: MarketPortfolio) -> dict[AssetKey, float]:
    """Each battery's last healthy state of charge on record (for a restarted simulation)."""
    out: dict[AssetKey, float] = {}
    with store.session() as session:
        for park in portfolio.parks:
            for asset in park.assets:
                limits = asset.soc_limits
                if limits is None:  # no state of charge to carry over
                    continue
                record = session.exec(
                    select(TelemetryRecord)
                    .where(
                        TelemetryRecord.park_id == park.id,
                        TelemetryRecord.asset_id == asset.id,
                        TelemetryRecord.soc.is_not(None),  # type: ignore[union-attr]
                        TelemetryRecord.available,
                    )
                    .order_by(TelemetryRecord.measured_at.desc())  # type: ignore[attr-defined]
                ).first()
                if record is not None and record.soc is not None:
                    out[(park.id, asset.id)] = min(max(record.soc, limits[0]), limits[1])
    return out


def default_window(
    portfolio: MarketPortfolio,
    prices: PriceFrame,
    safety_margin: dt.timedelta,
    first: dt.date | None = None,
    days: int | None = None,
) -> tuple[dt.datetime, dt.date, dt.date]:
    """Simulated start (a minute before the first bid), first and last delivery day.

    The first delivery day defaults to the second day of the file (the
    forecaster needs history); it must have the day before in the file too.
    """
    available = prices.days(portfolio.market.timezone)
    if len(available) < 2:
        raise InputError("a simulation needs at least two complete days of prices")
    first_day = first or available[1]
    if first_day not in available:
        raise InputError(f"{first_day} is not a complete day of the price file")
    run = [first_day]  # the consecutive days from first_day (a dropped day ends the run)
    while run[-1] + dt.timedelta(days=1) in available:
        run.append(run[-1] + dt.timedelta(days=1))
    last_day = run[-1] if days is None else first_day + dt.timedelta(days=days - 1)
    if last_day > run[-1]:
        after = run[-1] + dt.timedelta(days=1)
        reason = "the file ends" if after > available[-1] else f"{after} is not in the file"
        raise InputError(
            f"only {len(run)} consecutive day(s) from {first_day} ({reason}); "
            f"asked for {days}: choose fewer --days or another --first-day"
        )
    jobs = day_jobs(portfolio.market.rules_on(first_day), first_day, safety_margin)
    return jobs[0].run_at - dt.timedelta(minutes=1), first_day, last_day


@dataclass
class SimulationWorld:
    """What a simulated daemon talks to, and what survives it: clock, exchange, devices."""

    portfolio: MarketPortfolio
    clock: SimulationClock
    server: ExchangeServer
    first_day: dt.date
    last_day: dt.date
    token: str = field(default="", repr=False)
    _devices: dict[AssetKey, Device] = field(default_factory=dict)
    _sessions: dict[AssetKey, pd.DataFrame] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(
        cls,
        portfolio: MarketPortfolio,
        prices: PriceFrame,
        *,
        speed: float,
        start: dt.datetime,
        first_day: dt.date,
        last_day: dt.date,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> SimulationWorld:
        clock = SimulationClock(start, speed)
        token = secrets.token_urlsafe(32)
        server = ExchangeServer(
            ReplayExchange(prices.frame, portfolio.market, clock),
            host,
            port,
            tokens={token: frozenset({portfolio.portfolio_id})},
        )
        threading.Thread(target=server.serve_forever, name="vpp-exchange", daemon=True).start()
        log.info("exchange_serving", url=server.url, market=portfolio.market.id, speed=speed)
        return cls(portfolio, clock, server, first_day, last_day, token)

    @property
    def url(self) -> str:
        return self.server.url

    def devices(
        self, operator: Operator
    ) -> tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]:
        """The simulated devices, created on the first call (the first dispatch), as in the backtest."""
        with self._lock:
            if not self._devices:
                index = days_index(
                    self.portfolio.market.timezone,
                    self.portfolio.market.rules_on(self.first_day).interval_minutes,
                    self.first_day,
                    self.last_day,
                )
                self._devices, self._sessions = simulated_devices(self.portfolio, self.clock, index)
            return self._devices, self._sessions

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _scaled_sleep(speed: float) -> Callable[[float], None]:
    """Backoff sleeps are in clock seconds: at ``speed`` X they last 1/X as long."""

    def sleep(seconds: float) -> None:
        time.sleep(seconds / speed)

    return sleep


def exchange_token(cfg: ConfigSet) -> str | None:
    """The daemon's bearer token from the env variable named in ``[daemon] exchange_token_env``.

    A :class:`~vpp.ConfigError` naming the variable when it is empty or
    missing from the environment. (None only if the setting is None, which
    the Python API allows: then no token is sent.)
    """
    name = cfg.settings.daemon.exchange_token_env
    if name is None:
        return None
    token = os.environ.get(name, "").strip()
    if not token:
        raise ConfigError(
            [
                ConfigIssue(
                    "vpp.toml",
                    "daemon.exchange_token_env",
                    name,
                    f"environment variable {name} is not set: export the daemon's exchange "
                    "token in it (vpp never reads secrets from files)",
                )
            ]
        )
    return token


def http_exchange(
    cfg: ConfigSet, url: str, speed: float = 1.0, *, token: str | None = None
) -> HttpExchange:
    """The daemon's exchange client; ``token`` defaults to :func:`exchange_token`."""
    settings = cfg.settings.daemon
    bearer = token if token is not None else exchange_token(cfg)
    client = httpx.Client(base_url=url, timeout=httpx.Timeout(settings.exchange_timeout_s))
    return HttpExchange(
        client,
        retries=settings.exchange_retries,
        backoff_s=settings.exchange_backoff_s,
        sleep=_scaled_sleep(speed),
        token=bearer,
    )


def build_daemon(
    cfg: ConfigSet,
    store: Store,
    portfolios: list[MarketPortfolio],
    exchange: HttpExchange,
    clock: Clock,
    time_map: TimeMap,
    options: DaemonOptions,
    *,
    devices: dict[str, tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]] | None = None,
    device_factory: DeviceFactory | None = None,
    metrics: Metrics | None = None,
    mode: str = "live",
    metrics_url: str | None = None,
    strategy: Strategy | None = None,
) -> Daemon:
    """One operator per portfolio, sharing the exchange, clock and store.

    ``strategy`` (default :func:`strategy_from`) brings its options, the
    operator's ``reoptimise_every`` among them.
    """
    recorder = StoreRecorder(store)
    store.enroll((p, cfg.park_files[p.id]) for portfolio in portfolios for p in portfolio.parks)
    operators = []
    for portfolio in portfolios:
        found, sessions = (devices or {}).get(portfolio.market.id, ({}, {}))
        operators.append(
            Operator(
                portfolio,
                strategy or strategy_from(cfg),
                exchange=exchange,
                data=exchange,
                clock=clock,
                devices=found,
                recorder=recorder,
                sessions=sessions,
            )
        )
    return Daemon(
        operators,
        recorder=recorder,
        clock=clock,
        time_map=time_map,
        options=options,
        metrics=metrics,
        mode=mode,
        metrics_url=metrics_url,
        device_factory=device_factory,
    )


def simulated_daemon(
    cfg: ConfigSet,
    store: Store,
    world: SimulationWorld,
    *,
    metrics: Metrics | None = None,
    metrics_url: str | None = None,
    strategy: Strategy | None = None,
    safety_margin: dt.timedelta | None = None,
) -> Daemon:
    """A daemon on the world's clock, talking HTTP to the world's exchange."""
    clock = world.clock
    time_map = _time_map(clock)
    exchange = http_exchange(cfg, world.url, clock.speed, token=world.token)
    options = options_from(cfg, world.first_day, world.last_day)
    if safety_margin is not None:
        options = dataclasses.replace(options, safety_margin=safety_margin)
    return build_daemon(
        cfg,
        store,
        [world.portfolio],
        exchange,
        clock,
        time_map,
        options,
        device_factory=world.devices,
        metrics=metrics,
        mode="simulate",
        metrics_url=metrics_url,
        strategy=strategy,
    )


def remote_simulated_daemon(
    cfg: ConfigSet,
    store: Store,
    url: str,
    *,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    metrics: Metrics | None = None,
    metrics_url: str | None = None,
) -> Daemon:
    """A simulated daemon following an exchange served elsewhere (``vpp exchange serve``)."""
    token = exchange_token(cfg)
    probe = http_exchange(cfg, url, token=token)
    health = probe.health()
    speed = float(health.get("speed", 1.0))
    market_id = str(health["market_id"])
    portfolio = MarketPortfolio.from_config(cfg, market_id)
    clock = AcceleratedClock(dt.datetime.fromisoformat(health["now"]), speed)
    tz = portfolio.market.timezone
    first = pd.Timestamp(health["first_interval"]).tz_convert(tz).date()
    last = pd.Timestamp(health["last_interval"]).tz_convert(tz).date()
    first_day = first_day or max(first + dt.timedelta(days=1), clock.now().astimezone(dt.UTC).date())
    last_day = min(last_day or last, last)
    probe.client.close()
    soc = last_soc(store, portfolio)

    def factory(operator: Operator) -> tuple[dict[AssetKey, Device], dict[AssetKey, pd.DataFrame]]:
        index = days_index(
            tz, portfolio.market.rules_on(first_day).interval_minutes, first_day, last_day
        )
        return simulated_devices(portfolio, clock, index, soc)

    return build_daemon(
        cfg,
        store,
        [portfolio],
        http_exchange(cfg, url, speed, token=token),
        clock,
        _time_map(clock),
        options_from(cfg, first_day, last_day),
        device_factory=factory,
        metrics=metrics,
        mode="simulate",
        metrics_url=metrics_url,
    )


def live_daemon(
    cfg: ConfigSet,
    store: Store,
    *,
    metrics: Metrics | None = None,
    metrics_url: str | None = None,
) -> Daemon:
    """The production daemon: wall clock, ``[daemon] exchange_url``, the parks' adapters."""
    url = cfg.settings.daemon.exchange_url
    if not url:
        raise InputError("[daemon] exchange_url is not set in vpp.toml; or run with --simulate")
    exchange = http_exchange(cfg, url)  # first: a missing token fails before devices connect
    clock = SystemClock()
    markets = sorted({p.market for p in cfg.parks.values()})
    portfolios = [MarketPortfolio.from_config(cfg, m) for m in markets]
    today = clock.now().date()
    devices = {}
    for portfolio in portfolios:
        index = days_index(
            portfolio.market.timezone,
            portfolio.market.rules_on(today).interval_minutes,
            today - dt.timedelta(days=1),
            today + dt.timedelta(days=cfg.settings.daemon.simulated_days),
        )
        devices[portfolio.market.id] = configured_devices(
            portfolio, clock, index, last_soc(store, portfolio)
        )
    now = clock.now()
    return build_daemon(
        cfg,
        store,
        portfolios,
        exchange,
        clock,
        TimeMap(now, now, 1.0),
        options_from(cfg),
        devices=devices,
        metrics=metrics,
        mode="live",
        metrics_url=metrics_url,
    )


def _time_map(clock: AcceleratedClock | SimulationClock) -> TimeMap:
    sim0 = clock.now()
    return TimeMap(sim0, dt.datetime.now(dt.UTC), clock.speed)


def serve_metrics(daemon: Daemon, host: str, port: int) -> MetricsServer:
    server = MetricsServer(daemon.metrics, daemon.health, host, port)
    threading.Thread(target=server.serve_forever, name="vpp-metrics", daemon=True).start()
    daemon.metrics_url = server.url
    return server
