"""The daemon against an exchange that holds what it did not send, and after losing its store.

Real daemon, real replay exchange over HTTP on loopback (authenticated),
simulated devices, SQLite files. An attacker's bid under the daemon's
portfolio id is never followed; a store deleted mid-day is reconciled from
the exchange; the health server answers garbage with a JSON 400; a missing
token is a one-line error naming the variable.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices, wait_for
from tests.vpp.daemon_support import count_rows as _count
from vpp.cli import app
from vpp.daemon.build import SimulationWorld, default_window, serve_metrics, simulated_daemon
from vpp.daemon.metrics import Metrics, MetricsServer
from vpp.runtime.clock import SimulationClock
from vpp.runtime.operator import MarketPortfolio
from vpp.store import AwardRecord, BidRecord, SetpointRecord, SettlementRecord, Store
from vpp.timeutil import day_intervals_utc
from vpp.types import Award, BidCurve, BidPoint, DayAheadBid
from vpp.units import KW_PER_MW
from vpp.wire import bid_content_hash, bid_to_json

MARGIN = dt.timedelta(minutes=30)
ATTACKER = "attacker-token-0123456789abcdef"


def _world(cfg, frame, speed: float, early: dt.timedelta = dt.timedelta(0)) -> SimulationWorld:  # type: ignore[no-untyped-def]
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    return SimulationWorld.start(
        portfolio, frame, speed=speed, start=start - early, first_day=first, last_day=last
    )


def _attack(world: SimulationWorld, quantity_mw: float) -> DayAheadBid:
    """Place a bid under the daemon's portfolio id with a leaked (or pre-auth) token."""
    portfolio = world.portfolio
    world.server.tokens[ATTACKER] = frozenset({portfolio.portfolio_id})
    rules = portfolio.market.rules_on(DAY)
    index = day_intervals_utc(DAY, rules.timezone, rules.day_ahead.interval_minutes)
    floor = rules.price_limits.floor_per_mwh
    bid = DayAheadBid(
        MARKET,
        portfolio.portfolio_id,
        DAY,
        tuple(BidCurve(t.to_pydatetime(), (BidPoint(floor, quantity_mw),)) for t in index),
        world.clock.now(),
    )
    response = httpx.post(
        f"{world.url}/v1/day-ahead/bids",
        json=bid_to_json(bid),
        headers={"Authorization": f"Bearer {ATTACKER}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return bid


def _battery_setpoints(store: Store) -> list[float]:
    with store.session() as session:
        rows = session.exec(
            select(SetpointRecord).where(SetpointRecord.asset_id.startswith("bess"))  # type: ignore[attr-defined]
        ).all()
    return [r.power_kw for r in rows]


def _assert_idle_and_unfollowed(store: Store, logs: list[dict[str, object]]) -> None:
    with store.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
    assert record.status == "conflict"
    assert record.reason is not None
    assert record.reason.startswith("conflict:")
    assert _count(store, AwardRecord) == 0  # the attacker's awards were never taken
    batteries = _battery_setpoints(store)
    assert batteries, "no battery setpoint was sent"
    assert all(p == 0.0 for p in batteries)  # the idle schedule: no flexibility used
    dispatched = [e for e in logs if e["event"] == "dispatch_without_awards"]
    assert dispatched  # every dispatch held the safe schedule
    alerts = [e for e in logs if e["event"] == "position_not_followed"]
    assert alerts
    assert alerts[0]["alert"] is True


def test_an_attacker_bid_placed_first_is_a_conflict_never_followed(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    # Six simulated hours (about a second of wall time) before the daemon's bid job.
    world = _world(cfg, frame, speed=20_000.0, early=dt.timedelta(hours=6))
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        with capture_logs() as logs:
            daemon.start()
            attack = _attack(world, quantity_mw=5.0)  # plausible size, not our bid
            wait_for(
                lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north")
                >= 3 * 10,
                90,
                "10 dispatched intervals",
            )
            health = daemon.health()
    finally:
        daemon.stop()
        world.close()
    conflicts = [e for e in logs if e["event"] == "bid_conflict"]
    assert len(conflicts) == 1
    assert conflicts[0]["alert"] is True
    assert conflicts[0]["log_level"] == "error"
    assert conflicts[0]["held_hash"] == bid_content_hash(attack)
    assert conflicts[0]["our_hash"] != bid_content_hash(attack)
    assert "bid_confirmed_by_duplicate" not in [e["event"] for e in logs]
    assert daemon.metrics.get("vpp_bid_conflicts_total", market=MARKET, kind="bid") == 1
    assert daemon.metrics.get("vpp_bids_submitted_total", market=MARKET) == 0
    assert health["status"] == "degraded"
    assert f"{MARKET}: exchange holds a position that is not ours" in health["reasons"]
    _assert_idle_and_unfollowed(store, logs)
    with store.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
    assert bid_content_hash(attack) in (record.reason or "")


def test_an_attacker_bid_found_at_start_beyond_the_grid_is_not_adopted(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    world = _world(cfg, frame, speed=20_000.0, early=dt.timedelta(hours=1))
    _attack(world, quantity_mw=2000.0)  # thousands of MWh for a portfolio of 7 MW export
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        with capture_logs() as logs:
            daemon.start()
            wait_for(
                lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north")
                >= 3 * 10,
                90,
                "10 dispatched intervals",
            )
    finally:
        daemon.stop()
        world.close()
    events = [e["event"] for e in logs]
    assert "bid_reconciled" not in events
    assert "bid_submitted" not in events
    (conflict,) = [e for e in logs if e["event"] == "bid_conflict"]
    assert "2000 MW outside the grid connections' [-23, 11] MW" in str(conflict["reason"])
    assert daemon.metrics.get("vpp_bid_conflicts_total", market=MARKET, kind="bid") == 1
    assert len(world.server.exchange._bids) == 1  # ours was never sent on top
    _assert_idle_and_unfollowed(store, logs)


def test_a_store_deleted_mid_day_is_reconciled_from_the_exchange(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    # The world's clock runs on between the two daemons: a slower speed leaves slack.
    world = _world(cfg, frame, speed=5_000.0)
    path = tmp_path / "daemon.db"
    store = Store(f"sqlite:///{path}")
    try:
        first = simulated_daemon(cfg, store, world)
        first.start()
        wait_for(
            lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north") >= 3 * 8,
            60,
            "8 dispatched intervals",
        )
        first.abort()
        assert _count(store, AwardRecord) == 96
        store.engine.dispose()
        for leftover in tmp_path.glob("daemon.db*"):
            leftover.unlink()  # the store is lost mid-day
        held_hash = bid_content_hash(next(iter(world.server.exchange._bids.values())))

        fresh = Store(f"sqlite:///{path}")
        with capture_logs() as logs:
            second = simulated_daemon(cfg, fresh, world)
            second.start()
            finished = second.finished.wait(120)
            if not finished:
                second.stop()
            assert finished, sorted({str(e["event"]) for e in logs})
    finally:
        world.close()

    (reconciled,) = [e for e in logs if e["event"] == "bid_reconciled"]
    assert reconciled["day"] == DAY.isoformat()
    assert reconciled["plan"] == "stand-in"
    assert reconciled["content_hash"] == held_hash
    events = [e["event"] for e in logs]
    assert "auction_missed" not in events
    assert "bid_submitted" not in events
    assert len(world.server.exchange._bids) == 1
    with fresh.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
        awards = session.exec(select(AwardRecord).order_by(AwardRecord.interval_start)).all()  # type: ignore[arg-type]
        settlement = session.exec(select(SettlementRecord)).all()
        setpoints = session.exec(select(SetpointRecord)).all()
    assert record.status == "accepted"
    assert record.reason == "reconciled from the exchange"
    assert _count(fresh, BidRecord, BidRecord.status == "missed") == 0
    expected = world.server.exchange.day_ahead_awards(MARKET, world.portfolio.portfolio_id, DAY)
    assert [(a.interval_start, a.quantity_mw) for a in awards] == [
        (e.interval_start, e.quantity_mw) for e in expected
    ]
    assert any(a.quantity_mw != 0 for a in expected)
    # Dispatch followed the awarded position: the parks' shares add up to every award.
    plan = second.operators[MARKET].day_plan(DAY)
    assert plan.award is not None
    split = plan.award.park_kw.sum(axis=1).to_numpy()
    assert split == pytest.approx([a.quantity_mw * KW_PER_MW for a in expected], abs=1e-6)
    assert setpoints
    # Settled against the awards (day-ahead revenue of the awarded position, not zero).
    da_revenue = sum(r.da_revenue for r in settlement)
    expected_revenue = sum(a.quantity_mw * a.price_per_mwh * 0.25 for a in expected)
    assert da_revenue == pytest.approx(expected_revenue, rel=1e-6)


def test_the_health_server_answers_garbage_with_a_json_400() -> None:
    with capture_logs() as logs:
        server = MetricsServer(Metrics(), lambda: {"status": "ok"}, "127.0.0.1", 0)
    assert logs == []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        for garbage in (b"\x16\x03\x01garbage\r\n\r\n", b"GET\r\n\r\n", b"POST /healthz HTTP/1.1\r\n\r\n"):
            with socket.create_connection((str(host), port), timeout=5) as conn:
                conn.sendall(garbage)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ")[1])
            assert status in (400, 405), garbage
            assert b"application/json" in head
            assert json.loads(body)["error"] == "bad_request"
        ok = httpx.get(f"{server.url}/healthz?verbose=1", timeout=5)
        assert ok.status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_bound_beyond_loopback_is_warned_at_start(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    world = _world(cfg, frame, speed=1.0)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        with capture_logs() as logs:
            server = serve_metrics(daemon, "0.0.0.0", 0)
        server.shutdown()
        server.server_close()
    finally:
        world.close()
    (warned,) = [e for e in logs if e["event"] == "metrics_bound_non_loopback"]
    assert warned["log_level"] == "warning"
    assert warned["host"] == "0.0.0.0"


def test_a_missing_token_variable_is_one_line_naming_it(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        daemon={"exchange_url": "http://127.0.0.1:9", "exchange_token_env": "VPP_TEST_NO_SUCH_TOKEN"},
    )
    env = {"VPP_DATABASE_URL": f"sqlite:///{tmp_path / 'daemon.db'}"}
    result = CliRunner().invoke(app, ["run", "--config", str(config)], env=env)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if "VPP_TEST_NO_SUCH_TOKEN" in line]
    assert len(lines) == 1
    assert "environment variable VPP_TEST_NO_SUCH_TOKEN is not set" in lines[0]
    assert "Traceback" not in result.output


def test_a_token_value_in_place_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path, daemon={"exchange_token_env": "abc-def.secret/value"})
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code != 0
    assert "exchange_token_env" in result.output
    assert "never the secret itself" in result.output


class _InflatingExchange(ReplayExchange):
    """A broken (or hostile) exchange: awards far outside the bids it cleared."""

    def day_ahead_awards(self, market_id: str, portfolio_id: str, delivery_day: dt.date) -> list[Award]:
        honest = super().day_ahead_awards(market_id, portfolio_id, delivery_day)
        return [Award(a.interval_start, a.quantity_mw + 1000.0, a.price_per_mwh) for a in honest]


def test_awards_outside_the_bid_are_alerted_and_not_followed(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    clock = SimulationClock(start, 20_000.0)
    token = "inflating-test-token-0123456789"
    server = ExchangeServer(
        _InflatingExchange(frame.frame, portfolio.market, clock),
        tokens={token: frozenset({portfolio.portfolio_id})},
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    world = SimulationWorld(portfolio, clock, server, first, last, token)
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        with capture_logs() as logs:
            daemon.start()
            wait_for(
                lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north")
                >= 3 * 10,
                90,
                "10 dispatched intervals",
            )
    finally:
        daemon.stop()
        world.close()
    (inconsistent,) = [e for e in logs if e["event"] == "awards_inconsistent"]
    assert inconsistent["alert"] is True
    assert "outside the bid's" in str(inconsistent["issues"])
    assert daemon.metrics.get("vpp_bid_conflicts_total", market=MARKET, kind="awards") == 1
    assert daemon.metrics.get("vpp_bids_submitted_total", market=MARKET) == 1
    with store.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
    assert "awards inconsistent" in (record.reason or "")
    _assert_idle_and_unfollowed(store, logs)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ("", "VPP_EXCHANGE_TOKENS holds no tokens"),
        ("pf=short", "VPP_EXCHANGE_TOKENS: token pair 1 (pf): the token has 5 characters"),
        ("justatokenwithoutportfolio", "token pair 1: expected portfolio_id=token"),
    ],
)
def test_exchange_serve_refuses_to_start_without_valid_tokens(
    tmp_path: Path, tokens: str, expected: str
) -> None:
    from market_replay.canonical import write_prices

    config = make_config(tmp_path)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(load(config)), price_file)
    result = CliRunner().invoke(
        app,
        ["exchange", "serve", "--config", str(config), "--prices", str(price_file)],
        env={"VPP_EXCHANGE_TOKENS": tokens},
    )
    assert result.exit_code != 0
    assert expected in result.output
    if tokens:
        assert tokens.split("=")[-1] not in result.output  # the secret is never echoed
    assert "Traceback" not in result.output
