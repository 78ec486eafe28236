"""The store is trusted only when it is right: plans are data (never pickle), one daemon per
store (a lease that survives kill -9), a failing store stops dispatch, and ``vpp status``
does not show a dead daemon's jobs and assets as healthy.

Real peers only: SQLite files on disk, daemons as processes (``vpp run --simulate``) or
in-process with the replay exchange over HTTP on loopback and simulated devices.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import queue
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import structlog
from sqlalchemy import create_engine, inspect, text
from sqlmodel import select
from structlog.testing import LogCapture, capture_logs
from typer.testing import CliRunner

from market_replay.canonical import write_prices
from market_replay.exchange import ReplayExchange
from strategies import DayAheadResult, StrategyOptions, get_strategy
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices, wait_for
from tests.vpp.daemon_support import count_rows as _count
from vpp import StoreError, StoreLockedError, StoreSchemaError
from vpp.cli import app
from vpp.config import ConfigSet
from vpp.daemon.build import SimulationWorld, default_window, serve_metrics, simulated_daemon
from vpp.runtime.clock import ReplayClock
from vpp.runtime.jobs import day_jobs
from vpp.runtime.operator import MarketPortfolio, Operator
from vpp.runtime.recording import StoreRecorder
from vpp.store import (
    AwardRecord,
    BidRecord,
    DaemonLockRecord,
    DayPlanRecord,
    ParkRecord,
    SetpointRecord,
    Store,
    StoreLock,
    TelemetryRecord,
    upgrade_store,
)
from vpp.types import Award, Setpoint

VPP = [sys.executable, "-c", "from vpp.cli import main; main()"]
MARGIN = dt.timedelta(minutes=30)
HOST = socket.gethostname()


# --------------------------------------------------------------------------- helpers


def _operator(cfg: ConfigSet, exchange: ReplayExchange, clock: ReplayClock, store: Store) -> Operator:
    return Operator(
        MarketPortfolio.from_config(cfg, MARKET),
        get_strategy(StrategyOptions(name="deterministic", deviation_penalty_per_mwh=0.0)),
        exchange=exchange,
        data=exchange,  # type: ignore[arg-type]
        clock=clock,
        devices={},
        recorder=StoreRecorder(store),
    )


def _bid_once(tmp_path: Path) -> tuple[Store, Operator, DayAheadResult]:
    """A real bid and plan for DAY written to a fresh store (the write-ahead path)."""
    cfg = load(make_config(tmp_path))
    market = cfg.markets[MARKET]
    clock = ReplayClock(day_jobs(market.rules_on(DAY), DAY, MARGIN)[0].run_at)
    replay = ReplayExchange(prices(cfg).frame, market, clock)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    operator = _operator(cfg, replay, clock, store)
    result = operator.submit_day_ahead(DAY)
    assert result is not None
    return store, operator, result


class _Live:
    """A pickle payload that creates ``path`` when unpickled: the code a tampered row would run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.path),))


def _one_line(message: str) -> None:
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message, message


class _Process:
    """``vpp run --simulate`` as a process, its JSON log lines collected from stderr."""

    def __init__(self, config: Path, price_file: Path, url: str, *, speed: float) -> None:
        self.process = subprocess.Popen(
            [*VPP, "run", "--simulate", "--config", str(config), "--prices", str(price_file),
             "--first-day", DAY.isoformat(), "--days", "1", "--speed", str(speed),
             "--metrics-port", "0"],
            env={**os.environ, "VPP_DATABASE_URL": url},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []  # non-JSON lines: the CLI's one-line error
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.put(line)

    def _drain(self) -> None:
        while not self.lines.empty():
            line = self.lines.get()
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.other.append(line.rstrip("\n"))

    def logged(self, event: str) -> bool:
        self._drain()
        return any(e.get("event") == event for e in self.events)

    def finish(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self.pump.join(10)
        self._drain()
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.pump.join(10)
        self.process.stdout.close()  # type: ignore[union-attr]
        self.process.stderr.close()  # type: ignore[union-attr]


def _setup(tmp_path: Path) -> tuple[Path, Path, str]:
    config = make_config(tmp_path)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(load(config)), price_file)
    return config, price_file, f"sqlite:///{tmp_path / 'daemon.db'}"


def _snapshot(store: Store) -> dict[str, Any]:
    with store.session() as session:
        return {
            "bids": sorted((b.id, b.status, b.curves_json) for b in session.exec(select(BidRecord))),
            "awards": _count(store, AwardRecord),
            "parks": sorted((p.id, p.enrolled_at) for p in session.exec(select(ParkRecord))),
        }


#: The tables the running daemon keeps writing; _corrupt garbles the disk under them.
_DAEMON_DATA = ("bids", "awards", "day_plans", "setpoints", "telemetry")


def _daemon_data_pages(path: Path) -> list[int] | None:
    """The pages of the daemon's data tables and their indexes (SQLite's ``dbstat``), or None.

    Naming the pages keeps the test independent of the file's layout: every table
    the store creates (the carbon ledger's, say) moves where "the second half"
    falls, and could leave the daemon's data untouched.
    """
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        owners = {
            name
            for name, table in connection.execute("SELECT name, tbl_name FROM sqlite_master")
            if table in _DAEMON_DATA
        }
        rows = connection.execute("SELECT name, pageno FROM dbstat").fetchall()
    except sqlite3.OperationalError:  # a SQLite built without dbstat
        return None
    finally:
        connection.close()
    return sorted({page for name, page in rows if name in owners})


def _corrupt(path: Path) -> None:
    """Overwrite the pages of the daemon's data with garbage, as a bad disk would.

    Without ``dbstat``, the second half of the file. The header's change counter
    moves too (as any other writer's commit would), so every connection rereads
    pages from the file instead of its cache.
    """
    size = path.stat().st_size
    pages = _daemon_data_pages(path)
    with path.open("r+b") as handle:
        handle.seek(16)  # the header's page size; 1 stands for 65536
        (page_size,) = struct.unpack(">H", handle.read(2))
        page_size = 65536 if page_size == 1 else page_size
        garbage = b"\xde\xad\xbe\xef" * (page_size // 4)
        handle.seek(24)
        (counter,) = struct.unpack(">I", handle.read(4))
        handle.seek(24)
        handle.write(struct.pack(">I", counter + 1))
        if pages is None:
            start = size // 2 // page_size * page_size
            handle.seek(start)
            handle.write(b"\xde\xad\xbe\xef" * ((size - start) // 4))
            return
        for page in pages:  # 1-based page numbers
            handle.seek((page - 1) * page_size)
            handle.write(garbage)


# --------------------------------------------------------------------------- plans as data


def test_plan_is_stored_as_versioned_json_and_read_back_exactly(tmp_path: Path) -> None:
    store, operator, result = _bid_once(tmp_path)
    key = operator.bid_key(DAY)
    with store.session() as session:
        row = session.get(DayPlanRecord, key)
    assert row is not None
    document = json.loads(row.plan_json)  # plain JSON text, no pickle anywhere
    assert document["schema_version"] == 1
    assert "result_pickle" not in {c["name"] for c in inspect(store.engine).get_columns("day_plans")}

    back = StoreRecorder(store).plan(key)
    assert back is not None
    assert back.bid == result.bid
    assert back.fallback == result.fallback
    assert result.allocation is not None
    assert back.allocation is not None
    assert back.allocation.index.equals(result.allocation.index)
    assert back.allocation.product_starts.equals(result.allocation.product_starts)
    assert np.array_equal(back.allocation.product_of, result.allocation.product_of)
    for asset, values in result.allocation.asset_power_kw.items():
        assert np.array_equal(back.allocation.asset_power_kw[asset], values), asset
    assert back.expected_schedule.asset_power_kw.equals(result.expected_schedule.asset_power_kw)
    assert back.expected_schedule.park_power_kw.equals(result.expected_schedule.park_power_kw)
    # The same award splits the same way through the stored allocation.
    sample = [Award(c.interval_start, c.points[-1].quantity_mw, 300.0) for c in result.bid.curves]
    assert back.allocation.award(sample).park_kw.equals(result.allocation.award(sample).park_kw)
    assert back.allocation.award(sample).asset_kw.equals(result.allocation.award(sample).asset_kw)


def _tamper(document: dict[str, Any], case: str, marker: Path) -> str | bytes:
    if case == "not_json":
        return "{this is not json"
    if case == "pickle":
        return pickle.dumps(_Live(marker))
    if case == "unknown_key":
        document["exec"] = "import os"
    elif case == "missing_key":
        del document["allocation"]
    elif case == "wrong_type":
        document["allocation"]["product_of"][0] = "0"
    elif case == "non_finite":
        return json.dumps(document).replace(
            json.dumps(document["expected_schedule"]["objective"]), "NaN", 1
        )
    elif case == "schema_version":
        document["schema_version"] = 99
    return json.dumps(document)


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("not_json", "(document)"),
        ("pickle", "(document)"),
        ("unknown_key", "(document)"),
        ("missing_key", "(document)"),
        ("wrong_type", "allocation.product_of[0]"),
        ("non_finite", "(document)"),
        ("schema_version", "schema_version"),
    ],
)
def test_tampered_plan_row_is_refused_in_one_line_and_runs_no_code(
    tmp_path: Path, case: str, field: str
) -> None:
    store, operator, _ = _bid_once(tmp_path)
    key = operator.bid_key(DAY)
    marker = tmp_path / "pwned"
    with store.session() as session:
        row = session.get(DayPlanRecord, key)
        assert row is not None
        document = json.loads(row.plan_json)
    payload = _tamper(document, case, marker)
    if case == "pickle":  # the payload is live: unpickling it does create a file
        probe = tmp_path / "probe"
        pickle.loads(pickle.dumps(_Live(probe)))
        assert probe.exists()
    with store.engine.begin() as connection:  # a writer of the shared database, not vpp
        connection.execute(
            text("UPDATE day_plans SET plan_json = :p WHERE idempotency_key = :k"),
            {"p": payload, "k": key},
        )
    before = _snapshot(store)

    with pytest.raises(StoreError) as caught:
        StoreRecorder(store).plan(key)

    message = str(caught.value)
    _one_line(message)
    assert message.startswith(f"day_plans[{key}]: field {field}: "), message
    assert message.endswith("the plan is refused")
    assert not marker.exists()
    assert _snapshot(store) == before  # refusing wrote nothing, lost nothing


def test_daemon_restart_refuses_a_pickled_plan_row_and_dispatches_without_it(
    tmp_path: Path,
) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    begin, first_day, last_day = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=20_000.0, start=begin, first_day=first_day, last_day=last_day
    )
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    marker = tmp_path / "pwned"
    try:
        first = simulated_daemon(cfg, store, world)
        first.start()
        wait_for(lambda: _count(store, AwardRecord) == 96, 60, "the awards")
        first.abort()  # a crash
        key = first.operators[MARKET].bid_key(DAY)
        with store.engine.begin() as connection:  # someone with write access to the database
            connection.execute(
                text("UPDATE day_plans SET plan_json = :p WHERE idempotency_key = :k"),
                {"p": pickle.dumps(_Live(marker)), "k": key},
            )
        before = _snapshot(store)
        with capture_logs() as logs:
            second = simulated_daemon(cfg, store, world)
            second.start()
            second.stop()
    finally:
        world.close()
    assert not marker.exists()  # the payload never ran
    (refused,) = [e for e in logs if e["event"] == "day_plan_refused"]
    _one_line(refused["reason"])
    assert refused["reason"].startswith(f"day_plans[{key}]: field (document): is not UTF-8 text")
    (recovered,) = [e for e in logs if e["event"] == "day_recovered"]
    # Treated as missing: the documented fallback splits the stored awards by the stand-in
    # (idle schedule + equal residual), never a zero share.
    assert recovered["plan"] is True
    assert recovered["plan_source"] == "stand-in"
    assert recovered["bid_status"] == "accepted"
    assert recovered["awards"] == 96
    plan = second.operators[MARKET].day_plan(DAY)
    assert plan.award is not None
    award_kw = sum(a.quantity_mw for a in plan.awards) * 1000.0 if plan.awards else 0.0
    split_kw = float(plan.award.park_kw.to_numpy().sum())
    # The parks' shares add up to the award (96 products on 96 intervals), and it is not zero.
    assert split_kw == pytest.approx(award_kw * len(plan.award.park_kw) / len(plan.awards), rel=1e-9)
    assert abs(split_kw) > 1.0
    assert "job_failed" not in [e["event"] for e in logs]
    after = _snapshot(store)
    assert after["bids"] == before["bids"]  # the accepted bid is kept, not re-sent
    assert after["awards"] == before["awards"]
    assert len(world.server.exchange._bids) == 1


def test_old_store_with_pickled_plans_is_migrated_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    bid = Setpoint("jinan-north", "bess-1", dt.datetime(2025, 5, 8, tzinfo=dt.UTC), 10.0)
    StoreRecorder(store).record_setpoints([bid])
    store.engine.dispose()
    marker = tmp_path / "pwned"
    engine = create_engine(url)
    with engine.begin() as connection:  # day_plans as the releases with pickles created it
        connection.execute(text("DROP TABLE alembic_version"))  # they predate Alembic
        connection.execute(text("DROP TABLE day_plans"))
        connection.execute(
            text(
                "CREATE TABLE day_plans (idempotency_key VARCHAR NOT NULL PRIMARY KEY, "
                "market_id VARCHAR NOT NULL, delivery_day DATE NOT NULL, "
                "created_at DATETIME NOT NULL, result_pickle BLOB NOT NULL)"
            )
        )
        connection.execute(
            text("INSERT INTO day_plans VALUES ('k', 'm', '2025-05-08', '2025-05-07 00:00:00', :p)"),
            {"p": pickle.dumps(_Live(marker))},
        )
    engine.dispose()

    with pytest.raises(StoreSchemaError, match="vpp db upgrade"):  # refused until upgraded
        Store(url)
    with capture_logs() as logs:
        upgrade_store(url)  # vpp db upgrade
    migrated = Store(url)

    columns = {c["name"] for c in inspect(migrated.engine).get_columns("day_plans")}
    assert "result_pickle" not in columns
    assert "plan_json" in columns
    assert _count(migrated, DayPlanRecord) == 0
    assert not marker.exists()  # dropped unread
    assert [e for e in logs if e["event"] == "store_pickled_plans_dropped"] == [
        {"event": "store_pickled_plans_dropped", "table": "day_plans", "rows": 1,
         "log_level": "warning"}
    ]
    assert _count(migrated, SetpointRecord) == 1  # everything else is kept
    assert StoreRecorder(migrated).plan("k") is None  # missing: the documented fallback
    Store(url)  # opening again is a no-op


# --------------------------------------------------------------------------- the lock


def test_lock_refuses_a_live_holder_and_takes_over_a_dead_or_silent_one(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'lock.db'}")
    first = StoreLock(store, ttl_s=30)
    first.acquire()
    second = StoreLock(store, ttl_s=30)
    with pytest.raises(StoreLockedError) as caught:
        second.acquire()
    message = str(caught.value)
    _one_line(message)
    assert message.startswith(
        f"store {store.safe_url} is held by daemon pid {os.getpid()} on host {HOST} since "
    )
    assert message.endswith("stop it or wait 30 s after it died")
    holder = first.holder()
    assert holder is not None
    assert holder.instance_id == first.instance_id  # the refusal changed nothing

    # Another host's holder whose heartbeat stopped longer than the TTL ago: taken over.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=31)
    with store.engine.begin() as connection:
        connection.execute(
            DaemonLockRecord.__table__.update().values(  # type: ignore[attr-defined]
                hostname="elsewhere", heartbeat_at=old
            )
        )
    with capture_logs() as logs:
        second.acquire()
    assert [e["event"] for e in logs] == ["store_lock_taken_over"]
    assert logs[0]["previous_host"] == "elsewhere"
    assert not first.renew()  # the old holder learns it lost the lease
    first.release()  # and its release leaves the new holder alone
    holder = second.holder()
    assert holder is not None
    assert holder.instance_id == second.instance_id

    # A holder on this host whose pid is gone (kill -9): taken over at once, TTL or not.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with store.engine.begin() as connection:
        connection.execute(
            DaemonLockRecord.__table__.update().values(pid=dead.pid)  # type: ignore[attr-defined]
        )
    third = StoreLock(store, ttl_s=3600)
    third.acquire()
    assert third.holder().instance_id == third.instance_id  # type: ignore[union-attr]
    third.release()
    assert third.holder() is None


def test_second_daemon_on_one_store_refuses_and_writes_nothing(tmp_path: Path) -> None:
    config, price_file, url = _setup(tmp_path)
    first = _Process(config, price_file, url, speed=500)
    second: _Process | None = None
    try:
        wait_for(lambda: first.logged("bid_submitted"), 90, "the first daemon to submit its bid")
        store = Store(url)
        before = _snapshot(store)
        second = _Process(config, price_file, url, speed=500)
        assert second.finish(timeout=60) == 1
        assert second.events == []  # refused before it logged (or wrote) anything
        (line,) = second.other
        assert line.startswith(
            f"error: store {url} is held by daemon pid {first.process.pid} on host {HOST} since "
        ), line
        assert line.endswith("stop it or wait 30 s after it died"), line
        assert _snapshot(store) == before  # parks not re-enrolled, bids untouched
        holder = StoreLock(store).holder()
        assert holder is not None
        assert holder.pid == first.process.pid
        first.process.send_signal(signal.SIGTERM)
        assert first.finish(timeout=30) == 0
    finally:
        first.close()
        if second is not None:
            second.close()
    assert StoreLock(store).holder() is None  # released at the clean stop
    assert [b[1] for b in _snapshot(store)["bids"]] == ["accepted"]


def test_kill_9_then_status_shows_it_dead_and_a_new_daemon_takes_over(tmp_path: Path) -> None:
    config, price_file, url = _setup(tmp_path)
    env = {**os.environ, "VPP_DATABASE_URL": url}
    first = _Process(config, price_file, url, speed=500)
    try:
        wait_for(lambda: first.logged("bid_submitted"), 90, "the first daemon to submit its bid")
        wait_for(lambda: first.logged("awards_received"), 90, "the awards")
        store = Store(url)
        wait_for(lambda: _count(store, TelemetryRecord) > 0, 60, "telemetry")
        first.process.send_signal(signal.SIGKILL)
        assert first.finish(timeout=30) == -signal.SIGKILL
    finally:
        first.close()
    before = _snapshot(store)
    holder = StoreLock(store).holder()
    assert holder is not None  # a killed daemon cannot release its lease
    assert holder.pid == first.process.pid

    result = CliRunner().invoke(app, ["status", "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    assert "daemon: dead" in result.output
    assert "unknown (last seen" in result.output
    assert "unavailable" not in result.output
    assert "bess-1" in result.output
    assert "not scheduled: daemon not running" in result.output
    assert "as planned by the running daemon" not in result.output
    assert " ok " not in result.output.split("Assets: health")[1].split("Next jobs")[0]

    second = _Process(config, price_file, url, speed=500)
    try:
        wait_for(lambda: second.logged("daemon_started"), 90, "the second daemon to start")
        taken = [e for e in second.events if e["event"] == "store_lock_taken_over"]
        assert len(taken) == 1
        assert taken[0]["previous_pid"] == first.process.pid
        second.process.send_signal(signal.SIGTERM)
        assert second.finish(timeout=30) == 0
    finally:
        second.close()
    after = _snapshot(store)
    assert after["bids"] == before["bids"]  # the accepted bid was neither re-sent nor lost
    assert after["awards"] == before["awards"]


# --------------------------------------------------------------------------- a failing store


class _CountingDevice:
    """A simulated device whose writes are counted (the device stays the real simulated one)."""

    def __init__(self, device: Any, writes: list[Setpoint]) -> None:
        self._device = device
        self._writes = writes

    def write(self, setpoint: Setpoint) -> Setpoint:
        self._writes.append(setpoint)
        return self._device.write(setpoint)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._device, name)


def test_corrupted_store_stops_dispatch_releases_devices_and_fails_health(tmp_path: Path) -> None:
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    begin, first_day, last_day = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=2_000.0, start=begin, first_day=first_day, last_day=last_day
    )
    path = tmp_path / "daemon.db"
    store = Store(f"sqlite:///{path}")
    daemon = simulated_daemon(cfg, store, world)
    writes: list[Setpoint] = []
    counted: dict[Any, Any] = {}

    def devices(operator: Operator) -> tuple[dict[Any, Any], dict[Any, Any]]:
        real, sessions = world.devices(operator)
        if not counted:
            counted.update({k: _CountingDevice(d, writes) for k, d in real.items()})
        return dict(counted), sessions

    daemon.device_factory = devices
    at_failure: list[int] = []

    def snapshot(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        if event["event"] == "store_failed":
            at_failure.append(len(writes))
        return event

    capture = LogCapture()
    structlog.configure(processors=[snapshot, capture])
    metrics_server = serve_metrics(daemon, "127.0.0.1", 0)
    try:
        daemon.start()
        wait_for(lambda: _count(store, SetpointRecord) >= 6 * 4, 90, "4 dispatched intervals")
        stored_before = _count(store, SetpointRecord)
        _corrupt(path)
        assert daemon.finished.wait(60), "the daemon did not stop after the store failed"
        with httpx.Client(base_url=metrics_server.url, timeout=5) as client:
            health = client.get("/healthz")
    finally:
        if not daemon.finished.is_set():
            daemon.stop()
        metrics_server.shutdown()
        metrics_server.server_close()
        world.close()

    assert daemon.exit_code == 3
    assert daemon.failure is not None
    _one_line(daemon.failure)
    assert daemon.failure.startswith(f"store {store.safe_url}: transaction failed: ")
    assert "database disk image is malformed" in daemon.failure or "not a database" in daemon.failure
    assert health.status_code == 503
    assert health.json()["status"] == "failed"
    assert health.json()["reasons"][0] == f"store failed: {daemon.failure}"
    events = [e["event"] for e in capture.entries]
    assert events.count("store_failed") == 1
    # A store that reports corruption is not retried: a later write that happens to land
    # would not make it trustworthy.
    assert "store_write_retry" not in events
    # Every device released to its own control, and nothing sent after the failure.
    released = {(e["park"], e["asset"]) for e in capture.entries if e["event"] == "device_released"}
    assert released == set(counted)
    assert at_failure
    assert len(writes) == at_failure[0]
    for device in counted.values():
        assert not device.health().available
    assert stored_before >= 6 * 4


def test_run_exits_3_in_one_line_when_the_store_is_corrupted(tmp_path: Path) -> None:
    config, price_file, url = _setup(tmp_path)
    path = tmp_path / "daemon.db"
    process = _Process(config, price_file, url, speed=2_000)
    try:
        wait_for(lambda: process.logged("awards_received"), 90, "the awards")
        _corrupt(path)
        code = process.finish(timeout=120)
    finally:
        process.close()
    assert code == 3
    (line,) = process.other
    assert line.startswith(
        "error: store failed, dispatch stopped and devices released to their own control: "
        f"store {url}: transaction failed: "
    ), line
    events = [e["event"] for e in process.events]
    assert events.count("store_failed") == 1
    assert "device_released" in events
    assert events.index("store_failed") < events.index("daemon_stopped")
