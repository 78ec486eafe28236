"""The daemon's building blocks: write-ahead bids, idempotent re-sends, the store's additive
migration, published history over HTTP, the safe schedule without awards, counter settlement."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from structlog.testing import capture_logs

from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from strategies import StrategyOptions, get_strategy
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices
from vpp.config import ConfigSet
from vpp.errors import ExchangeError, StoreSchemaError
from vpp.gateway import HttpExchange
from vpp.runtime.clock import ReplayClock, SimulationClock
from vpp.runtime.devices import simulated_devices
from vpp.runtime.jobs import day_jobs
from vpp.runtime.metering import interval_energy
from vpp.runtime.operator import MarketPortfolio, Operator
from vpp.runtime.recording import StoreRecorder
from vpp.store import Store, upgrade_store
from vpp.types import DayAheadBid, Telemetry

MARGIN = dt.timedelta(minutes=30)


class _AnswerLost:
    """The real exchange receives the bid, but the answer never reaches us (a dropped
    connection after the request landed)."""

    def __init__(self, exchange: ReplayExchange) -> None:
        self.exchange = exchange
        self.drop_next = True

    def submit_day_ahead(self, bid: DayAheadBid) -> str:
        receipt = self.exchange.submit_day_ahead(bid)
        if self.drop_next:
            self.drop_next = False
            raise ExchangeError("connection reset after the request was sent")
        return receipt

    def day_ahead_awards(self, market_id: str, portfolio_id: str, day: dt.date) -> object:
        return self.exchange.day_ahead_awards(market_id, portfolio_id, day)


def _operator(cfg: ConfigSet, exchange: object, clock: ReplayClock, store: Store) -> Operator:
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    data = exchange.exchange if isinstance(exchange, _AnswerLost) else exchange
    return Operator(
        portfolio,
        get_strategy(StrategyOptions(name="deterministic", deviation_penalty_per_mwh=0.0)),
        exchange=exchange,  # type: ignore[arg-type]
        data=data,  # type: ignore[arg-type]
        clock=clock,
        devices={},
        recorder=StoreRecorder(store),
    )


def test_lost_answer_is_resent_and_confirmed_by_duplicate_after_a_restart(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    market = cfg.markets[MARKET]
    first_job = day_jobs(market.rules_on(DAY), DAY, MARGIN)[0]
    clock = ReplayClock(first_job.run_at)
    replay = ReplayExchange(prices(cfg).frame, market, clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    recorder = StoreRecorder(store)
    operator = _operator(cfg, _AnswerLost(replay), clock, store)
    key = operator.bid_key(DAY)
    with pytest.raises(ExchangeError):
        operator.submit_day_ahead(DAY)
    record = recorder.bid_record(key)
    assert record is not None
    assert record.status == "submitted"  # written ahead; outcome unknown
    assert not recorder.has_bid(key)
    sent = replay._bids[key]

    # A new process: nothing in memory, the plan comes back from the store and is re-sent.
    restarted = _operator(cfg, replay, clock, store)
    plan = recorder.plan(key)
    assert plan is not None
    assert plan.bid == sent
    restarted.restore(DAY, plan, None)
    with capture_logs() as logs:
        assert restarted.submit_day_ahead(DAY) is plan
    assert [e["event"] for e in logs if e["event"].startswith("bid_")] == [
        "bid_confirmed_by_duplicate",
        "bid_submitted",
    ]
    record = recorder.bid_record(key)
    assert record is not None
    assert record.status == "accepted"
    assert record.reason == "confirmed by duplicate_bid"
    assert len(replay._bids) == 1
    # Accepted now: a third call does not even build a bid.
    assert restarted.submit_day_ahead(DAY) is None


def test_rule_rejection_is_recorded_and_not_confused_with_a_duplicate(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    market = cfg.markets[MARKET]
    gate = market.rules_on(DAY).gate_closure(DAY)
    clock = ReplayClock(gate + dt.timedelta(minutes=1))  # too late
    replay = ReplayExchange(prices(cfg).frame, market, clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    operator = _operator(cfg, replay, clock, store)
    operator.submit_day_ahead(DAY)
    record = StoreRecorder(store).bid_record(operator.bid_key(DAY))
    assert record is not None
    assert record.status == "rejected"
    assert "gate_closure" in (record.reason or "")


def test_store_adds_columns_newer_versions_introduced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:  # the telemetry table as the first release created it
        connection.execute(
            text(
                "CREATE TABLE telemetry (id INTEGER PRIMARY KEY, park_id VARCHAR NOT NULL, "
                "asset_id VARCHAR NOT NULL, measured_at DATETIME NOT NULL, power_kw FLOAT, "
                "soc FLOAT, available BOOLEAN NOT NULL, reason VARCHAR)"
            )
        )
    engine.dispose()
    with pytest.raises(StoreSchemaError, match="vpp db upgrade"):  # an old schema is refused
        Store(url)
    with capture_logs() as logs:
        upgrade_store(url)  # vpp db upgrade
    assert {"event": "store_column_added", "table": "telemetry", "column": "extra_json",
            "log_level": "info"} in logs
    store = Store(url)
    reading = Telemetry("p", "a", dt.datetime(2025, 5, 8, tzinfo=dt.UTC), 1.0,
                        extra={"produced_kwh": 2.5})
    StoreRecorder(store).record_telemetry([reading])
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT extra_json FROM telemetry")).scalar_one()
    assert stored == '{"produced_kwh": 2.5}'


def test_history_over_http_is_what_the_exchange_has_published(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    market = cfg.markets[MARKET]
    rules = market.rules_on(DAY)
    clock = ReplayClock(rules.gate_closure(DAY) - MARGIN)
    replay = ReplayExchange(prices(cfg).frame, market, clock)
    token = "parts-test-token-0123456789"
    server = ExchangeServer(replay, tokens={token: frozenset({"any"})})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gateway = HttpExchange(
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0)), token=token
    )
    try:
        before = gateway.history()
        pd.testing.assert_frame_equal(before, replay.history(), check_freq=False)
        day_start = pd.Timestamp(DAY.isoformat(), tz=market.timezone).tz_convert("UTC")
        assert before["da_price"].get(day_start) is None or np.isnan(before.loc[day_start, "da_price"])
        clock.advance_to(rules.da_publication(DAY))
        after = gateway.history(["da_price"], start=day_start.to_pydatetime())
        assert list(after.columns) == ["da_price"]
        assert after.index[0] == day_start
        assert np.isfinite(after.loc[day_start, "da_price"])
        health = gateway.health()
        assert health["market_id"] == MARKET
        assert health["speed"] == 1.0
    finally:
        gateway.close()
        server.shutdown()
        server.server_close()


def test_dispatch_without_awards_holds_the_idle_schedule(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    market = cfg.markets[MARKET]
    replay_clock = ReplayClock(dt.datetime(2025, 5, 7, 16, tzinfo=dt.UTC))  # 00:00 on DAY
    replay = ReplayExchange(prices(cfg).frame, market, replay_clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    operator = _operator(cfg, replay, replay_clock, store)
    plan = operator.day_plan(DAY)
    operator.devices, operator.sessions = simulated_devices(operator.portfolio, replay_clock, plan.index)
    with capture_logs() as logs:
        sent = operator.dispatch(plan.index[0].to_pydatetime())
    assert "dispatch_without_awards" in [e["event"] for e in logs]
    powers = {(s.park_id, s.asset_id): s.power_kw for s in sent}
    assert powers[("jinan-north", "bess-1")] == 0.0
    assert powers[("qingdao-logistics", "bess-2")] == 0.0
    assert plan.award is None  # nothing was assumed about the awards


def test_interval_energy_interpolates_counters_to_the_boundaries() -> None:
    # 100 kW held for two hours, read at odd instants: 25 kWh per quarter-hour exactly.
    start = pd.Timestamp("2025-05-08 00:00", tz="UTC")
    reads = pd.DatetimeIndex([start - pd.Timedelta(minutes=7), start + pd.Timedelta(minutes=11),
                              start + pd.Timedelta(minutes=52), start + pd.Timedelta(minutes=70)])
    counter = pd.Series(100.0 * (reads - start).total_seconds() / 3600 + 1000.0, index=reads)
    boundaries = pd.date_range(start, periods=5, freq="15min")
    assert interval_energy(counter, boundaries) == pytest.approx([25.0, 25.0, 25.0, 25.0])
    late = pd.date_range(start, periods=6, freq="15min")  # the last boundary is not covered
    energy = interval_energy(counter, late)
    assert np.isnan(energy[-1])


def test_simulation_clock_waits_holds_and_never_goes_back() -> None:
    start = dt.datetime(2025, 5, 7, 1, 29, tzinfo=dt.UTC)
    clock = SimulationClock(start, speed=1_000_000.0)
    assert clock.now() == start  # still until the daemon starts it
    clock.run()
    due = start + dt.timedelta(minutes=1)
    with clock.hold(due) as held:
        assert held == due
        assert clock.now() == due  # however long the job runs
    later = clock.now()
    assert later >= due
    with clock.hold(start) as held:  # an older due instant: never back in time
        assert held >= due


def test_power_readings_become_a_meter_when_a_device_has_no_energy_register() -> None:
    import pandas as pd

    from vpp.runtime.metering import integrate_power, interval_energy

    stamps = pd.date_range("2025-05-01 16:00", periods=5, freq="7min30s", tz="UTC")
    counter = integrate_power(pd.Series([100.0, 100.0, 300.0, 300.0, 300.0], index=stamps))
    boundaries = pd.DatetimeIndex([stamps[0], stamps[2], stamps[4]])
    # First quarter-hour: 100 kW for 7.5 min, then a ramp to 300 over 7.5 min: 12.5 + 25 kWh.
    assert interval_energy(counter, boundaries).tolist() == pytest.approx([12.5 + 25.0, 75.0])
