"""Hostile-but-fair re-test of issue #10 on merged main: the exchange API, its client, the
daemon's trust of the exchange and of its store, meter readings.

Real peers on loopback: the replay exchange server over HTTP, real SQLite files, real
(in-process) daemons on the simulation clock. Each test is a case the first round of
tests did not try; each failed before its fix.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pandas as pd
import pytest
import typer
from sqlalchemy import text
from sqlmodel import select
from structlog.testing import capture_logs

from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer
from tests.market_replay.test_exchange import CN, RULES, _bid, _prices
from tests.market_replay.test_exchange import DAY as CN_DAY
from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices, wait_for
from tests.vpp.daemon_support import count_rows as _count
from vpp import ExchangeError
from vpp.daemon.build import SimulationWorld, default_window, simulated_daemon
from vpp.gateway import HttpExchange
from vpp.runtime.clock import ReplayClock, SimulationClock
from vpp.runtime.metering import _counters, meter_counters
from vpp.runtime.operator import MarketPortfolio
from vpp.store import AwardRecord, BidRecord, SetpointRecord, Store, TelemetryRecord
from vpp.types import Award, Health, Telemetry
from vpp.units import KW_PER_MW
from vpp.wire import WireError, award_issues, bid_to_json, loads_limited

MARGIN = dt.timedelta(minutes=30)
OURS = "ours-token-0123456789abcdef"
OTHER = "other-token-0123456789abcdef"


def _one_line(message: str) -> None:
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message, message


# --------------------------------------------------------------------------- the server


@pytest.fixture
def served() -> Iterator[ExchangeServer]:
    clock = ReplayClock(RULES.gate_closure(CN_DAY) - dt.timedelta(hours=1))
    server = ExchangeServer(
        ReplayExchange(_prices(), CN, clock),
        tokens={OURS: frozenset({"pf"}), OTHER: frozenset({"other-pf"})},
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _raw(server: ExchangeServer, request: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Send one raw request (Connection: close), return status, headers and JSON body."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=5) as conn:
        conn.sendall(request.encode("latin-1"))
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, json.loads(body) if body else {}


def _get(path: str, *headers: str) -> str:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"


QUERY = f"portfolio_id=other-pf&delivery_day={CN_DAY.isoformat()}"


def test_the_bearer_scheme_is_case_insensitive_the_token_is_not(served: ExchangeServer) -> None:
    for scheme in ("bearer", "BEARER", "Bearer"):
        status, _, body = _raw(served, _get("/v1/time", f"Authorization: {scheme} {OURS}"))
        assert status == 200, (scheme, body)
    status, _, body = _raw(served, _get("/v1/time", f"Authorization: Bearer {OURS.upper()}"))
    assert status == 401
    assert body["error"] == "unauthorized"


def test_two_authorization_headers_are_refused_whichever_comes_first(served: ExchangeServer) -> None:
    # Before: the first header won, so a request carrying our token and a stolen one was served
    # for whichever a proxy in front did not check.
    for first, second in ((OTHER, OURS), (OURS, OTHER), (OTHER, "wrong-token-0123456789abcd")):
        status, _, body = _raw(
            served,
            _get(
                f"/v1/day-ahead/bids?{QUERY}",
                f"Authorization: Bearer {first}",
                f"Authorization: Bearer {second}",
            ),
        )
        assert status == 400, body
        assert body["message"] == "2 Authorization headers: exactly one is allowed"
        assert OURS not in json.dumps(body)
        assert OTHER not in json.dumps(body)


@pytest.mark.parametrize("method", ["HEAD", "PUT", "OPTIONS", "DELETE", "PATCH"])
def test_other_methods_get_a_json_405_naming_the_allowed_ones(
    served: ExchangeServer, method: str
) -> None:
    # Before: 501 {"error": "server_error"} -- the client's mistake reported as the server's.
    request = (
        f"{method} /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OURS}\r\n"
        "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    status, headers, body = _raw(served, request)
    assert status == 405
    assert headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert body == {
            "error": "method_not_allowed",
            "message": f"method '{method}' is not allowed: use GET or POST",
            "rule": None,
        }
    assert served.exchange._bids == {}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # Before: the first 10 characters were taken, the rest silently ignored (200/404).
        (f"portfolio_id=other-pf&delivery_day={CN_DAY.isoformat()}T00:00junk",
         f"bad query: delivery_day = '{CN_DAY.isoformat()}T00:00junk': expected YYYY-MM-DD"),
        # Before: the first value was used; another component may read the last one.
        (f"portfolio_id=other-pf&portfolio_id=pf&delivery_day={CN_DAY.isoformat()}",
         "bad query: 'portfolio_id' given 2 times, once allowed"),
        (f"portfolio_id=other-pf&delivery_day={CN_DAY.isoformat()}&delivery_day=2099-01-01",
         "bad query: 'delivery_day' given 2 times, once allowed"),
    ],
)
def test_ambiguous_or_padded_queries_are_refused(
    served: ExchangeServer, query: str, message: str
) -> None:
    for route in ("bids", "awards"):
        status, _, body = _raw(
            served, _get(f"/v1/day-ahead/{route}?{query}", f"Authorization: Bearer {OTHER}")
        )
        assert status == 400, body
        assert body["message"] == message


def test_a_bid_with_a_repeated_key_is_refused_naming_it(served: ExchangeServer) -> None:
    bid = bid_to_json(_bid())
    body = json.dumps(bid)[:-1] + ', "portfolio_id": "pf"}'  # same id twice: still ambiguous
    response = httpx.post(
        f"{served.url}/v1/day-ahead/bids",
        content=body,
        headers={"Authorization": f"Bearer {OURS}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["message"] == "body: key 'portfolio_id' appears twice in one object"
    assert served.exchange._bids == {}
    with pytest.raises(WireError, match="key 'b' appears twice"):
        loads_limited(b'{"a": [{"b": 1, "b": 2}]}')


# --------------------------------------------------------------------------- the client


class _Broken(BaseHTTPRequestHandler):
    """An exchange answering 200/201 with JSON objects that lack what the client reads."""

    answers: ClassVar[dict[str, Any]] = {}

    def _answer(self) -> None:
        status, body = self.answers[self.path.split("?")[0]]
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("answers", "call", "message"),
    [
        ({"/v1/time": (200, {})}, "now", "malformed time from exchange: now = None"),
        ({"/v1/time": (200, {"now": 5})}, "now", "malformed time from exchange: now = 5"),
        ({"/v1/time": (200, {"now": "2025-05-08T00:00"})}, "now",
         "malformed time from exchange: now = '2025-05-08T00:00'"),
        ({"/v1/day-ahead/bids": (201, {"id": "x"})}, "submit",
         "malformed answer from exchange to a bid: bid_id = None"),
        ({"/v1/day-ahead/bids": (201, {"bid_id": ["x"]})}, "submit",
         "malformed answer from exchange to a bid: bid_id = ['x']"),
    ],
)
def test_malformed_answers_are_one_line_exchange_errors(
    answers: dict[str, Any], call: str, message: str
) -> None:
    # Before: a raw KeyError/TypeError (or a naive clock) escaped to the daemon's job.
    handler = type("Handler", (_Broken,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    client = HttpExchange(
        httpx.Client(base_url=f"http://{host!s}:{port}", timeout=5), token=OURS, retries=0
    )
    try:
        with pytest.raises(ExchangeError) as caught:
            client.now() if call == "now" else client.submit_day_ahead(_bid())
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    assert str(caught.value) == message
    _one_line(str(caught.value))


# --------------------------------------------------------------------------- the daemon's trust


class _RepeatingExchange(ReplayExchange):
    """A broken (or hostile) exchange: every award sent twice, each within the bid's range."""

    def day_ahead_awards(self, market_id: str, portfolio_id: str, delivery_day: dt.date) -> list[Award]:
        honest = super().day_ahead_awards(market_id, portfolio_id, delivery_day)
        return honest + honest


def test_repeated_awards_for_one_product_are_inconsistent_never_a_store_failure(
    tmp_path: Path,
) -> None:
    # Before: award_issues saw a set of products and passed; writing the second copy hit the
    # awards table's unique key and the daemon stopped with store_failed (exit 3).
    cfg = load(make_config(tmp_path))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    clock = SimulationClock(start, 20_000.0)
    token = "repeating-test-token-0123456789"
    server = ExchangeServer(
        _RepeatingExchange(frame.frame, portfolio.market, clock),
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
            health = daemon.health()
    finally:
        daemon.stop()
        world.close()
    events = [e["event"] for e in logs]
    assert "store_failed" not in events
    assert daemon.failure is None
    assert health["status"] == "degraded"
    (inconsistent,) = [e for e in logs if e["event"] == "awards_inconsistent"]
    assert inconsistent["alert"] is True
    assert "repeated award(s) for one product" in str(inconsistent["issues"])
    assert _count(store, AwardRecord) == 0
    with store.session() as session:
        (record,) = session.exec(select(BidRecord)).all()
    assert record.status == "conflict"
    assert "repeated award(s)" in (record.reason or "")


def test_a_tampered_award_row_is_refused_on_restart_and_fetched_again(tmp_path: Path) -> None:
    # Before: _recover restored the stored awards unchecked; the restarted daemon followed a
    # 5000 MW award for a 7 MW portfolio (and the row stayed in the store).
    cfg = load(make_config(tmp_path, daemon={"reoptimise_every": 4}))
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=5_000.0, start=start, first_day=first, last_day=last
    )
    path = tmp_path / "daemon.db"
    store = Store(f"sqlite:///{path}")
    try:
        first_daemon = simulated_daemon(cfg, store, world)
        first_daemon.start()
        wait_for(
            lambda: _count(store, SetpointRecord, SetpointRecord.park_id == "jinan-north") >= 3 * 4,
            60,
            "4 dispatched intervals",
        )
        first_daemon.abort()
        assert _count(store, AwardRecord) == 96
        with store.engine.begin() as connection:  # someone with write access to the database
            connection.execute(
                text("UPDATE awards SET quantity_mw = 5000.0 WHERE id = (SELECT max(id) FROM awards)")
            )
        store.engine.dispose()

        fresh = Store(f"sqlite:///{path}")
        with capture_logs() as logs:
            second = simulated_daemon(cfg, fresh, world)
            second.start()
            wait_for(
                lambda: second.operators[MARKET].day_plan(DAY).awards is not None,
                60,
                "awards fetched again",
            )
            second.stop()
    finally:
        world.close()
    (refused,) = [e for e in logs if e["event"] == "stored_awards_refused"]
    assert refused["alert"] is True
    assert "5000 MW outside the bid's" in str(refused["issues"])
    expected = world.server.exchange.day_ahead_awards(MARKET, portfolio.portfolio_id, DAY)
    plan = second.operators[MARKET].day_plan(DAY)
    assert plan.award is not None
    assert plan.award.park_kw.sum(axis=1).to_numpy() == pytest.approx(
        [a.quantity_mw * KW_PER_MW for a in expected], abs=1e-6
    )
    with fresh.session() as session:
        rows = session.exec(select(AwardRecord).order_by(AwardRecord.interval_start)).all()  # type: ignore[arg-type]
    assert [(r.interval_start, r.quantity_mw) for r in rows] == [
        (a.interval_start, a.quantity_mw) for a in expected
    ]  # the tampered row was replaced by the verified award


def test_award_issues_name_repeated_and_non_finite_awards() -> None:
    bid = _bid()
    curve = bid.curves[0]
    ok = [Award(c.interval_start, c.points[0].quantity_mw, 50.0) for c in bid.curves]
    assert award_issues(bid, ok) == []
    assert award_issues(bid, [*ok, ok[3]]) == [
        f"1 repeated award(s) for one product, first {ok[3].interval_start.isoformat()}"
    ]
    for bad in (float("nan"), float("inf"), -float("inf")):
        issues = award_issues(bid, [Award(curve.interval_start, bad, 50.0), *ok[1:]])
        assert len(issues) == 1, bad
        assert "outside the bid's" in issues[0], bad


# --------------------------------------------------------------------------- meter readings


T0 = pd.Timestamp("2025-05-08 00:00", tz="UTC")


def test_non_finite_or_non_numeric_readings_meter_nothing(tmp_path: Path) -> None:
    # Before: an inf power reading was integrated to inf energy (settled as 1.8e308 after
    # nan_to_num); a text register raised ValueError out of the settlement job.
    portfolio = MarketPortfolio.from_config(load(make_config(tmp_path)), MARKET)
    power = [-600.0, float("inf"), -600.0, -600.0, -600.0]
    readings = [
        Telemetry("jinan-north", "arc-furnace", (T0 + pd.Timedelta(minutes=15 * i)).to_pydatetime(), p)
        for i, p in enumerate(power)
    ]
    registers: list[Any] = [0.0, "abc", True, float("nan"), 100.0]
    readings += [
        Telemetry(
            "jinan-north", "bess-1", (T0 + pd.Timedelta(minutes=15 * i)).to_pydatetime(), 0.0,
            0.5, Health.OK, extra={"charged_kwh": 0.0, "discharged_kwh": d},
        )
        for i, d in enumerate(registers)
    ]
    meters = meter_counters(portfolio, readings)
    furnace = meters.exported[("jinan-north", "arc-furnace")]
    assert np.isfinite(furnace.to_numpy()).all()
    assert furnace.iloc[-1] == pytest.approx(-600.0)  # an hour at -600 kW, the inf reading dropped
    battery = meters.exported[("jinan-north", "bess-1")]
    assert battery.dropna().iloc[-1] == pytest.approx(100.0)


def test_tampered_telemetry_rows_are_refused_not_a_crash(tmp_path: Path) -> None:
    # Before: one row whose extra_json was not a JSON object made json.loads (or .items())
    # raise out of settle_day: the day was never settled.
    cfg = load(make_config(tmp_path))
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.session() as session:
        for i in range(5):
            session.add(
                TelemetryRecord(
                    park_id="jinan-north", asset_id="bess-1",
                    measured_at=(T0 + pd.Timedelta(minutes=15 * i)).to_pydatetime(),
                    power_kw=0.0, soc=0.5, available=True,
                    extra_json=json.dumps({"charged_kwh": 0.0, "discharged_kwh": 25.0 * i}),
                )
            )
        for i, bad in enumerate(("not json", "[1, 2]", "null", '"text"')):
            session.add(
                TelemetryRecord(
                    park_id="jinan-north", asset_id="bess-1",
                    measured_at=(T0 + pd.Timedelta(minutes=15 * i + 7)).to_pydatetime(),
                    power_kw=0.0, soc=0.5, available=True, extra_json=bad,
                )
            )

    class _Op:  # _counters reads only the portfolio of its operator
        pass

    operator = _Op()
    operator.portfolio = portfolio  # type: ignore[attr-defined]
    with capture_logs() as logs:
        meters = _counters(
            store, operator, T0.to_pydatetime(), (T0 + pd.Timedelta(hours=2)).to_pydatetime()  # type: ignore[arg-type]
        )
    refused = [e for e in logs if e["event"] == "telemetry_row_refused"]
    assert len(refused) == 4
    assert {e["reason"] for e in refused} == {"extra_json is not a JSON object"}
    assert meters.exported[("jinan-north", "bess-1")].iloc[-1] == pytest.approx(100.0)
    assert _count(store, TelemetryRecord) == 9  # nothing stored was dropped


# --------------------------------------------------------------------------- vpp status


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("clock_now", "garbage-time", "daemon_state/daemon_lock: Invalid isoformat string"),
        ("next_jobs_json", "not json", "daemon_state.next_jobs_json: not a JSON list of jobs"),
        ("next_jobs_json", "[1, 2]", "daemon_state.next_jobs_json: not a JSON list of jobs"),
        ("speed", "fast", "daemon_state.speed = 'fast': expected a number"),
    ],
)
def test_status_with_a_tampered_daemon_row_shows_the_daemon_unknown_not_an_error(
    tmp_path: Path, column: str, value: str, reason: str
) -> None:
    # Before: 'error: Invalid isoformat string' / 'Expecting value: line 1 column 1' /
    # "'int' object is not subscriptable" / "Unknown format code 'g'" -- exit 1, no table
    # named, and nothing else of the store shown.
    from typer.testing import CliRunner

    from vpp.cli import app

    config = make_config(tmp_path)
    db = tmp_path / "daemon.db"
    store = Store(f"sqlite:///{db}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    jobs = json.dumps([{"run_at": now, "kind": "dispatch", "market": MARKET,
                        "delivery_day": "2099-01-01", "interval_start": None}])
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO daemon_state (id, mode, pid, started_at, heartbeat_at, clock_now, "
                "speed, next_jobs_json) VALUES ('daemon', 'live', :pid, :now, :now, :now, 1.0, :jobs)"
            ),
            {"pid": os.getpid(), "now": now, "jobs": jobs},
        )
        connection.execute(
            text(
                "INSERT INTO daemon_lock (id, instance_id, hostname, pid, started_at, heartbeat_at)"
                " VALUES ('daemon', 'x', :host, :pid, :now, :now)"
            ),
            {"host": socket.gethostname(), "pid": os.getpid(), "now": now},
        )
        connection.execute(text(f"UPDATE daemon_state SET {column} = :value"), {"value": value})
    store.engine.dispose()
    result = CliRunner().invoke(
        app, ["status", "--config", str(config)], env={"VPP_DATABASE_URL": f"sqlite:///{db}"}
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("daemon:")]
    assert len(lines) == 1
    assert lines[0].startswith("daemon: unknown: its state row is unreadable (")
    assert reason in lines[0]
    assert lines[0].endswith("shown as not running")
    assert "not scheduled: daemon not running" in result.output
    assert "2099-01-01" not in result.output  # the row's planned jobs are not shown


# --------------------------------------------------------------------------- secrets


def test_a_reversed_token_pair_never_echoes_the_token(tmp_path: Path) -> None:
    # Before: 'token pair 1 (<the token>): the token has 2 characters' -- the secret on stderr.
    from typer.testing import CliRunner

    from market_replay.canonical import write_prices
    from vpp.cli import app

    config = make_config(tmp_path)
    price_file = tmp_path / "prices.csv"
    write_prices(prices(load(config)), price_file)
    secret = "s3cr3t-reversed-token-0123456789"
    result = CliRunner().invoke(
        app,
        ["exchange", "serve", "--config", str(config), "--prices", str(price_file)],
        env={"VPP_EXCHANGE_TOKENS": f"{secret}=pf"},
    )
    assert result.exit_code == 1
    assert secret not in result.output
    (line,) = [x for x in result.output.splitlines() if "token pair 1" in x]
    assert line.endswith(
        "token pair 1: the token has 2 characters, at least 16 required (is the pair reversed? "
        "write portfolio_id=token)"
    )


def test_a_secret_echoed_into_an_error_is_masked_on_the_cli_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Before: the CLI printed the one-line error as is; only the logs masked secret values.
    # The real path: an exchange quoting our token in its 401 answer, over HTTP on loopback.
    from vpp.cli._common import fail_on
    from vpp.logging import forget_secrets, register_secret

    token = "echoed-bearer-token-0123456789"

    class Echo(_Broken):
        def _answer(self) -> None:
            payload = json.dumps(
                {"error": "unauthorized", "message": f"unknown {self.headers['Authorization']}"}
            ).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    client = HttpExchange(
        httpx.Client(base_url=f"http://{host!s}:{port}", timeout=5), token=token, retries=0
    )
    register_secret(token)
    try:
        with pytest.raises(ExchangeError) as caught:
            client.now()
        assert token in str(caught.value)  # the peer did echo it
        with pytest.raises(typer.Exit):
            fail_on(caught.value)
    finally:
        forget_secrets()
        client.close()
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert token not in err
    assert "exchange refused the token (401): unknown Bearer ***" in err
