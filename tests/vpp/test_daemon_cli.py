"""``vpp run --simulate`` and ``vpp exchange serve`` as processes (SIGTERM, JSON logs), and
``vpp status`` on what they left in the store."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from market_replay.canonical import write_prices
from tests.vpp.daemon_support import DAY, load, make_config, prices, wait_for
from vpp.cli import app
from vpp.daemon.build import remote_simulated_daemon
from vpp.store import BidRecord, DaemonStateRecord, Store

VPP = [sys.executable, "-c", "from vpp.cli import main; main()"]


def _lines(stream: object, into: queue.Queue[str]) -> threading.Thread:
    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _accepted(store: Store) -> bool:
    with store.session() as session:
        found = session.exec(select(BidRecord).where(BidRecord.status == "accepted")).first()
    return found is not None


def _setup(tmp_path: Path) -> tuple[Path, Path, str]:
    config = make_config(tmp_path)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(load(config)), price_file)
    return config, price_file, f"sqlite:///{tmp_path / 'daemon.db'}"


def test_run_simulate_stops_cleanly_on_sigterm_and_status_shows_it(tmp_path: Path) -> None:
    config, price_file, url = _setup(tmp_path)
    env = {**os.environ, "VPP_DATABASE_URL": url}
    process = subprocess.Popen(
        [*VPP, "run", "--simulate", "--config", str(config), "--prices", str(price_file),
         "--first-day", DAY.isoformat(), "--days", "1", "--speed", "500", "--metrics-port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    errors: queue.Queue[str] = queue.Queue()
    pump = _lines(process.stderr, errors)
    seen: list[dict[str, object]] = []

    def logged(event: str) -> bool:
        while not errors.empty():
            seen.append(json.loads(errors.get()))  # every log line is one JSON object
        return any(e["event"] == event for e in seen)

    try:
        wait_for(lambda: logged("bid_submitted"), 60, "the daemon to submit its bid")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pump.join(10)
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    wait_for(lambda: logged("daemon_stopped"), 5, "the stop to be logged")
    events = [e["event"] for e in seen]
    assert events.index("daemon_started") < events.index("bid_submitted")
    assert events.index("bid_submitted") < events.index("daemon_stopped")
    assert "job_failed" not in events
    store = Store(url)
    with store.session() as session:
        (bid,) = session.exec(select(BidRecord)).all()
        state = session.get(DaemonStateRecord, "daemon")
    assert bid.status == "accepted"
    assert state is not None
    assert state.stopped_at is not None

    result = CliRunner().invoke(app, ["status", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    assert "daemon: stopped (simulate" in result.output
    assert "accepted" in result.output
    assert "jinan-north" in result.output
    assert "bess-2" in result.output
    assert "computed from the market rules" in result.output


def test_exchange_serve_answers_a_simulated_daemon_and_stops_on_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, price_file, url = _setup(tmp_path)
    cfg = load(config)
    from vpp.runtime.operator import MarketPortfolio

    portfolio_id = MarketPortfolio.from_config(cfg, "cn-province-a").portfolio_id
    token = "serve-test-token-0123456789"
    monkeypatch.setenv("VPP_EXCHANGE_TOKEN", token)
    gate = cfg.markets["cn-province-a"].rules_on(DAY).gate_closure(DAY)
    start = gate - dt.timedelta(minutes=31)
    exchange = subprocess.Popen(
        [*VPP, "exchange", "serve", "--config", str(config), "--prices", str(price_file),
         "--port", "0", "--speed", "120", "--start", start.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "VPP_EXCHANGE_TOKENS": f"{portfolio_id}={token}"},
    )
    out: queue.Queue[str] = queue.Queue()
    pump = _lines(exchange.stdout, out)
    try:
        first = out.get(timeout=60)
        served = json.loads(first)
        assert served["market_id"] == "cn-province-a"
        store = Store(url)
        daemon = remote_simulated_daemon(cfg, store, served["url"], first_day=DAY, last_day=DAY)
        daemon.start()
        try:
            wait_for(lambda: _accepted(store), 60, "the bid to be accepted by the served exchange")
        finally:
            daemon.stop()
        exchange.send_signal(signal.SIGTERM)
        assert exchange.wait(timeout=30) == 0
    finally:
        if exchange.poll() is None:
            exchange.kill()
            exchange.wait()
        pump.join(10)
        exchange.stdout.close()  # type: ignore[union-attr]
