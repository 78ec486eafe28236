"""The daemon end to end: real scheduler, replay exchange over HTTP on loopback, simulated
devices, SQLite store (the kill-and-restart test also PostgreSQL). Bounded by deadlines, never
by fixed sleeps."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from strategies import StrategyOptions
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices, wait_for
from tests.vpp.daemon_support import count_rows as _count
from vpp.backtest.run import BacktestOptions, simulate
from vpp.daemon.build import (
    SimulationWorld,
    build_daemon,
    default_window,
    http_exchange,
    options_from,
    serve_metrics,
    simulated_daemon,
)
from vpp.daemon.service import Daemon
from vpp.runtime.clock import SimulationClock
from vpp.runtime.jobs import TimeMap
from vpp.runtime.operator import MarketPortfolio
from vpp.store import (
    AwardRecord,
    BidRecord,
    DaemonStateRecord,
    SetpointRecord,
    SettlementRecord,
    Store,
    TelemetryRecord,
)

TOKEN = "daemon-test-token-0123456789"
SPEED = 40_000.0  # a market day in ~2 s of free-running time; jobs hold the clock (vpp.runtime.clock)
MARGIN = dt.timedelta(minutes=30)


def _world(cfg, frame, speed: float = SPEED) -> SimulationWorld:  # type: ignore[no-untyped-def]
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    return SimulationWorld.start(
        portfolio, frame, speed=speed, start=start, first_day=first, last_day=last
    )


def _settlement(store: Store) -> pd.DataFrame:
    with store.session() as session:
        rows = [r.model_dump() for r in session.exec(select(SettlementRecord))]
    return pd.DataFrame(rows).set_index("park_id").sort_index()


def test_simulated_day_settles_like_the_backtest(tmp_path: Path) -> None:
    """A full delivery day through the daemon over HTTP settles like the backtest.

    Tolerance: 1e-6 relative. The daemon's jobs run as of their due instants
    (the simulation clock holds still while a job runs), its meters are read
    at the same instants as the backtest's, so decisions and energies are the
    same numbers; the tolerance only absorbs float noise of the counter
    interpolation and the JSON round trip of prices.
    """
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    world = _world(cfg, frame)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    metrics_server = serve_metrics(daemon, "127.0.0.1", 0)
    try:
        daemon.start()
        assert daemon.finished.wait(90), "the simulated day did not finish in 90 s"
        with httpx.Client(base_url=metrics_server.url, timeout=5) as client:
            exposition = client.get("/metrics").text
            health = client.get("/healthz")
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()
        world.close()

    backtest = simulate(
        world.portfolio,
        frame,
        [DAY],
        BacktestOptions(StrategyOptions(reoptimise_every=4), safety_margin=MARGIN, baselines=False),
    )
    expected = backtest.settlement.set_index("park_id").sort_index()
    got = _settlement(store)
    assert list(got.index) == ["daqing-oilfield", "jinan-north", "qingdao-logistics"]
    # Parks of batteries, PV, EV and processes settle identically (1e-6). The oilfield's heat
    # stores float on their balance between reads; the daemon polls at other instants than the
    # backtest's boundaries, and its real-time plans see their content a few seconds apart:
    # within 1e-3 (measured 3.7e-5 to 1.3e-4 of rt_revenue on this day, varying with the polls).
    exact = np.array([park != "daqing-oilfield" for park in got.index])
    for column in ("da_revenue", "rt_revenue", "degradation_cost", "net_revenue", "imbalance_mwh"):
        assert got[column].to_numpy()[exact] == pytest.approx(
            expected[column].to_numpy()[exact], rel=1e-6, abs=1e-6
        ), column
        assert got[column].to_numpy() == pytest.approx(
            expected[column].to_numpy(), rel=1e-3, abs=1e-3
        ), column
    # Every record is in the store: one accepted bid, 96 awards, 6 setpoints per interval.
    assert _count(store, BidRecord, BidRecord.status == "accepted") == 1
    assert _count(store, AwardRecord) == 96
    with store.session() as session:
        intervals = session.exec(select(SetpointRecord.interval_start).distinct()).all()
    assert len(intervals) == 96
    assert _count(store, TelemetryRecord, TelemetryRecord.extra_json.is_not(None)) > 96 * 6  # type: ignore[union-attr]
    assert len(world.server.exchange._bids) == 1
    assert daemon.metrics.get("vpp_dispatch_total", market=MARKET) == 96
    assert daemon.metrics.get("vpp_dispatch_missed_total", market=MARKET) == 0
    assert 'vpp_bids_submitted_total{market="cn-province-a"} 1' in exposition
    assert 'vpp_settlement_net_revenue{park="jinan-north"}' in exposition
    assert health.status_code == 503
    assert "scheduler not running" in health.json()["reasons"]
    with store.session() as session:
        state = session.get(DaemonStateRecord, "daemon")
    assert state is not None
    assert state.stopped_at is not None
    assert state.mode == "simulate"


def test_kill_and_restart_mid_day_neither_duplicates_nor_loses_records(
    tmp_path: Path, store_url: str
) -> None:
    """On SQLite and on PostgreSQL (``[postgres]``: the database a production daemon uses)."""
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    world = _world(cfg, frame, speed=20_000.0)
    store = Store(store_url)
    try:
        first = simulated_daemon(cfg, store, world)
        first.start()
        wait_for(
            lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north") >= 3 * 20,
            60,
            "20 dispatched intervals",
        )
        first.abort()  # a crash: no cleanup, in-memory plans gone, devices untouched
        with store.session() as session:
            before = {
                "bids": [(b.id, b.status) for b in session.exec(select(BidRecord))],
                "awards": {a.id for a in session.exec(select(AwardRecord))},
                "setpoints": {s.id for s in session.exec(select(SetpointRecord))},
                "telemetry": {t.id for t in session.exec(select(TelemetryRecord))},
                "last_interval": max(
                    s.interval_start for s in session.exec(select(SetpointRecord))
                ),
            }
        assert before["bids"][0][1] == "accepted"
        assert len(before["awards"]) == 96

        with capture_logs() as logs:
            second = simulated_daemon(cfg, store, world)
            second.start()
            assert second.finished.wait(90), "the restarted daemon did not finish the day"
    finally:
        world.close()

    events = [e["event"] for e in logs]
    recovered = [e for e in logs if e["event"] == "day_recovered"]
    assert recovered
    assert recovered[0]["bid_status"] == "accepted"
    assert recovered[0]["awards"] == 96
    assert recovered[0]["plan"] is True
    # No second submission: the exchange holds one bid and never answered duplicate_bid.
    assert len(world.server.exchange._bids) == 1
    assert "bid_submitted" not in events
    assert "bid_confirmed_by_duplicate" not in events
    assert "bid_rejected" not in events
    with store.session() as session:
        bids = [(b.id, b.status) for b in session.exec(select(BidRecord))]
        awards = {a.id for a in session.exec(select(AwardRecord))}
        setpoints = {s.id for s in session.exec(select(SetpointRecord))}
        telemetry = {t.id for t in session.exec(select(TelemetryRecord))}
        later = session.exec(
            select(SetpointRecord).where(SetpointRecord.interval_start > before["last_interval"])
        ).all()
    assert bids == before["bids"]
    assert awards == before["awards"]
    assert before["setpoints"] <= setpoints
    assert before["telemetry"] <= telemetry
    # Dispatch resumed with the recovered allocation and the day was settled.
    assert later, "no setpoint after the restart"
    assert max(s.interval_start for s in later) == dt.datetime(2025, 5, 8, 15, 45, tzinfo=dt.UTC)
    assert set(_settlement(store).index) == {"daqing-oilfield", "jinan-north", "qingdao-logistics"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _daemon_against(cfg, store: Store, url: str, clock: SimulationClock) -> Daemon:  # type: ignore[no-untyped-def]
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    options = options_from(cfg, DAY, DAY)
    return build_daemon(
        cfg,
        store,
        [portfolio],
        http_exchange(cfg, url, clock.speed, token=TOKEN),
        clock,
        TimeMap(clock.now(), dt.datetime.now(dt.UTC), clock.speed),
        options,
        mode="simulate",
    )


def test_exchange_down_across_gate_closure_records_a_missed_auction(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, daemon={"retry_s": 300.0, "exchange_retries": 1}))
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    rules = portfolio.market.rules_on(DAY)
    gate = rules.gate_closure(DAY)
    clock = SimulationClock(gate - MARGIN - dt.timedelta(minutes=1), 5_000.0)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = _daemon_against(cfg, store, f"http://127.0.0.1:{_free_port()}", clock)
    with capture_logs() as logs:
        daemon.start()
        try:
            wait_for(
                lambda: _count(store, BidRecord, BidRecord.status == "missed") == 1,
                30,
                "the missed auction to be recorded",
            )
            health = daemon.health()
        finally:
            daemon.stop()
    with store.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
    assert record.status == "missed"
    assert "unreachable" in (record.reason or "")
    retries = [e for e in logs if e["event"] == "bid_retry_scheduled"]
    # retry_s = 5 min within a 30 min margin: the bid was tried 6 times, never after the gate.
    assert len(retries) == 5
    assert all(dt.datetime.fromisoformat(e["retry_at"]) < gate for e in retries)
    missed = [e for e in logs if e["event"] == "auction_missed"]
    assert len(missed) == 1
    assert missed[0]["alert"] is True
    assert missed[0]["log_level"] == "error"
    assert daemon.metrics.get("vpp_auctions_missed_total", market=MARKET) == 1
    assert daemon.metrics.get("vpp_exchange_errors_total", market=MARKET, call="submit") == 6
    assert health["status"] == "degraded"
    assert f"{MARKET}: auction missed" in health["reasons"]


def test_exchange_back_before_gate_closure_gets_the_bid_in(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, daemon={"retry_s": 300.0, "exchange_retries": 0}))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    gate = portfolio.market.rules_on(DAY).gate_closure(DAY)
    clock = SimulationClock(gate - MARGIN - dt.timedelta(minutes=1), 2_000.0)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    port = _free_port()
    daemon = _daemon_against(cfg, store, f"http://127.0.0.1:{port}", clock)
    server = None
    with capture_logs() as logs:
        daemon.start()
        try:
            wait_for(
                lambda: any(e["event"] == "bid_retry_scheduled" for e in logs),
                30,
                "a failed first attempt",
            )
            server = ExchangeServer(
                ReplayExchange(frame.frame, portfolio.market, clock),
                port=port,
                tokens={TOKEN: frozenset({portfolio.portfolio_id})},
            )
            threading.Thread(target=server.serve_forever, daemon=True).start()
            wait_for(
                lambda: _count(store, BidRecord, BidRecord.status == "accepted") == 1,
                30,
                "the bid to be accepted once the exchange is back",
            )
        finally:
            daemon.stop()
            if server is not None:
                server.shutdown()
                server.server_close()
    assert server is not None
    assert len(server.exchange._bids) == 1
    assert daemon.metrics.get("vpp_auctions_missed_total", market=MARKET) == 0
    submitted = [e for e in logs if e["event"] == "bid_submitted"]
    assert len(submitted) == 1


def test_a_park_whose_solve_fails_falls_back_while_the_other_proceeds(tmp_path: Path) -> None:
    # jinan-north's grid connection cannot carry its furnace's baseline: every real-time
    # solve of that park is infeasible. qingdao-logistics shares the market, not the grid.
    config = make_config(
        tmp_path,
        daemon={"reoptimise_every": 1},
        park_edits={"jinan-north": ("import_limit_kw = 8000", "import_limit_kw = 100")},
    )
    cfg = load(config)
    frame = prices(cfg)
    world = _world(cfg, frame)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    try:
        daemon = simulated_daemon(cfg, store, world)
        with capture_logs() as logs:
            daemon.start()
            wait_for(
                lambda: daemon.metrics.get("vpp_dispatch_total", market=MARKET) >= 8,
                60,
                "eight dispatches",
            )
            daemon.stop()
    finally:
        world.close()
    assert daemon.metrics.get("vpp_realtime_fallback_total", park="jinan-north") >= 8
    assert daemon.metrics.get("vpp_realtime_fallback_total", park="qingdao-logistics") == 0
    fallbacks = [e for e in logs if e["event"] == "park_fallback"]
    assert fallbacks
    assert {e["park"] for e in fallbacks} == {"jinan-north"}
    assert all("infeasible" in e["reason"] for e in fallbacks)
    with store.session() as session:
        rows = session.exec(select(SetpointRecord)).all()
    by_asset: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        by_asset.setdefault((row.park_id, row.asset_id), []).append(row.power_kw)
    # Both parks got setpoints at every dispatch; the failing park holds its idle schedule
    # (battery at rest), the other one's real-time problem was solved every time.
    assert {len(v) for v in by_asset.values()} == {len(by_asset[("jinan-north", "bess-1")])}
    assert all(p == 0.0 for p in by_asset[("jinan-north", "bess-1")])
    solved = [
        e["park"] for e in logs if e["event"] == "solve_finished" and e["model"] == "real_time"
    ]
    assert solved.count("qingdao-logistics") >= 8
    assert "jinan-north" not in solved
    assert not [e for e in logs if e["event"] == "job_failed"]
