"""The replay exchange server under hostile or broken clients, over real sockets on loopback.

Authentication (401/403 on every portfolio route), bounded payloads (ids,
depth, quantities, body size), malformed framing answered with a JSON 400,
slow clients dropped within the deadline while others are served, and the
warning when bound to a non-loopback address.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from structlog.testing import capture_logs

from market_replay import server as server_module
from market_replay.exchange import ReplayExchange
from market_replay.server import ExchangeServer, TokenError, parse_tokens
from tests.market_replay.test_exchange import CN, DAY, RULES, _bid, _prices
from vpp import ExchangeError
from vpp.gateway import HttpExchange
from vpp.runtime.clock import ReplayClock
from vpp.wire import bid_content_hash, bid_to_json

OURS = "ours-token-0123456789abcdef"
OTHER = "other-token-0123456789abcdef"
ATTACKER = "attacker-token-0123456789ab"


@pytest.fixture
def served() -> Iterator[tuple[ReplayClock, ExchangeServer]]:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    server = ExchangeServer(
        ReplayExchange(_prices(), CN, clock),
        tokens={OURS: frozenset({"pf"}), OTHER: frozenset({"other-pf"})},
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield clock, server
    finally:
        server.shutdown()
        server.server_close()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _raw(server: ExchangeServer, data: bytes, timeout_s: float = 5.0) -> tuple[int, dict[str, object]]:
    """Send raw bytes, return the status and JSON body of the answer."""
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=timeout_s) as conn:
        conn.sendall(data)
        received = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


def test_every_route_but_health_needs_a_token(served: tuple[ReplayClock, ExchangeServer]) -> None:
    _, server = served
    query = {"portfolio_id": "pf", "delivery_day": DAY.isoformat()}
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for method, path, kwargs in (
            ("POST", "/v1/day-ahead/bids", {"json": bid_to_json(_bid())}),
            ("GET", "/v1/day-ahead/bids", {"params": query}),
            ("GET", "/v1/day-ahead/awards", {"params": query}),
            ("GET", "/v1/time", {}),
            ("GET", "/v1/history", {}),
        ):
            for headers in ({}, _auth("wrong-token-0123456789abcdef"), {"Authorization": OURS}):
                response = client.request(method, path, headers=headers, **kwargs)
                assert response.status_code == 401, (method, path, headers)
                assert response.json()["error"] == "unauthorized"
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
        health = client.get("/v1/health")
        assert health.status_code == 200
        assert "portfolio" not in health.text
    assert server.exchange._bids == {}  # nothing was accepted without a token


def test_a_token_is_authorised_only_for_its_portfolios(
    served: tuple[ReplayClock, ExchangeServer],
) -> None:
    clock, server = served
    query = {"portfolio_id": "pf", "delivery_day": DAY.isoformat()}
    with httpx.Client(base_url=server.url, timeout=5) as client:
        posted = client.post("/v1/day-ahead/bids", json=bid_to_json(_bid()), headers=_auth(OTHER))
        assert posted.status_code == 403
        assert "'pf'" in posted.json()["message"]
        assert server.exchange._bids == {}
        assert client.post(
            "/v1/day-ahead/bids", json=bid_to_json(_bid()), headers=_auth(OURS)
        ).status_code == 201
        clock.advance_to(RULES.da_publication(DAY))
        for path in ("/v1/day-ahead/bids", "/v1/day-ahead/awards"):
            response = client.get(path, params=query, headers=_auth(OTHER))
            assert response.status_code == 403, path
            assert "pf" not in json.dumps(response.json()).replace("'pf'", "")  # no data leaked
            assert client.get(path, params=query, headers=_auth(OURS)).status_code == 200


def test_the_held_bid_and_its_hash_are_what_was_sent(
    served: tuple[ReplayClock, ExchangeServer],
) -> None:
    _, server = served
    with httpx.Client(base_url=server.url, timeout=5) as client:
        gateway = HttpExchange(client, retries=0, token=OURS)
        assert gateway.day_ahead_bid("cn-province-a", "pf", DAY) is None
        bid = _bid()
        gateway.submit_day_ahead(bid)
        held = gateway.day_ahead_bid("cn-province-a", "pf", DAY)
    assert held is not None
    assert bid_content_hash(held) == bid_content_hash(bid)
    assert bid_content_hash(_bid(points=((-80, -1.0), (400, 0.0), (500, 3.0)))) != bid_content_hash(bid)
    body = httpx.get(
        f"{server.url}/v1/day-ahead/bids",
        params={"portfolio_id": "pf", "delivery_day": DAY.isoformat()},
        headers=_auth(OURS),
        timeout=5,
    ).json()
    assert body["content_hash"] == bid_content_hash(bid)
    assert body["bid_id"] == "replay-1"


def test_the_client_reports_a_refused_token_in_one_line(
    served: tuple[ReplayClock, ExchangeServer],
) -> None:
    _, server = served
    with httpx.Client(base_url=server.url, timeout=5) as client:
        gateway = HttpExchange(client, retries=3, token="bad")
        with pytest.raises(ExchangeError, match=r"refused the token \(401\).*exchange_token_env"):
            gateway.submit_day_ahead(_bid())
        gateway = HttpExchange(client, retries=0, token=OTHER)
        with pytest.raises(ExchangeError, match=r"\(403\)"):
            gateway.day_ahead_awards("cn-province-a", "pf", DAY)


def test_a_megabyte_portfolio_id_is_refused_naming_the_field(
    served: tuple[ReplayClock, ExchangeServer],
) -> None:
    _, server = served
    payload = bid_to_json(_bid())
    payload["portfolio_id"] = "p" * 1_000_000
    response = httpx.post(
        f"{server.url}/v1/day-ahead/bids", json=payload, headers=_auth(OURS), timeout=10
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert message.startswith("portfolio_id: 1000000 characters, at most 128")
    assert "\n" not in message
    assert server.exchange._bids == {}
    huge = b"{" + b" " * (server_module.MAX_BODY_BYTES + 1) + b"}"
    status, body = _raw(
        server,
        b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + OURS.encode()
        + b"\r\nContent-Length: " + str(len(huge)).encode() + b"\r\n\r\n",
    )
    assert status == 413
    assert "at most" in str(body["message"])


def test_deep_nesting_and_huge_quantities_are_refused(
    served: tuple[ReplayClock, ExchangeServer],
) -> None:
    _, server = served
    with httpx.Client(base_url=server.url, timeout=10, headers=_auth(OURS)) as client:
        deep = b"[" * 200_000 + b"]" * 200_000
        response = client.post("/v1/day-ahead/bids", content=deep)
        assert response.status_code == 400
        assert response.json()["message"] == "body nests deeper than 8 levels"
        payload = bid_to_json(_bid())
        payload["curves"][3]["points"][1][1] = 1e20
        response = client.post("/v1/day-ahead/bids", json=payload)
        assert response.status_code == 400
        assert response.json()["message"] == (
            "curves[3].points[1][1] (quantity_mw) = 1e+20: must be within ±100000 MW"
        )
        nan = json.dumps(bid_to_json(_bid())).replace("400", "NaN", 1).encode()
        response = client.post("/v1/day-ahead/bids", content=nan)
        assert response.status_code == 400
        assert "NaN is not a JSON number" in response.json()["message"]
        assert client.get("/v1/time").status_code == 200  # still serving
    assert server.exchange._bids == {}


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", "Content-Length"),
        (b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", "Content-Length"),
        (b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\n\r\n", "Content-Length"),
        (
            b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n",
            "Transfer-Encoding",
        ),
        (
            b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + OURS.encode()
            + b"\r\nContent-Length: 9\r\n\r\nnot json!",
            "not JSON",
        ),
        (
            b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + OURS.encode()
            + b"\r\nContent-Length: 4\r\n\r\n\xff\xfe{}",
            "not UTF-8",
        ),
        (b"GARBAGE\r\n\r\n", "Bad request"),
        (b"BREW /v1/time HTTP/1.1\r\nHost: x\r\n\r\n", "method 'BREW' is not allowed"),
    ],
)
def test_malformed_framing_gets_a_json_400(
    served: tuple[ReplayClock, ExchangeServer], request_bytes: bytes, expected: str
) -> None:
    _, server = served
    with capture_logs() as logs:
        status, body = _raw(server, request_bytes)
    assert status in (400, 405)  # 405 (was 501) for a method other than GET/POST
    assert expected.lower() in str(body["message"]).lower()
    assert not any("traceback" in json.dumps(e, default=str).lower() for e in logs)


def test_a_slow_body_is_dropped_and_others_are_still_served(
    served: tuple[ReplayClock, ExchangeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = served
    monkeypatch.setattr(server_module, "SOCKET_TIMEOUT_S", 0.5)  # one read of the body
    host, port = server.server_address[:2]
    slow = socket.create_connection((str(host), port), timeout=10)
    try:
        slow.sendall(
            b"POST /v1/day-ahead/bids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + OURS.encode() + b"\r\nContent-Length: 1000\r\n\r\n{\"mar"
        )
        began = time.monotonic()
        # Meanwhile another client is served at once.
        assert httpx.get(f"{server.url}/v1/time", headers=_auth(OURS), timeout=2).status_code == 200
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        elapsed = time.monotonic() - began
    finally:
        slow.close()
    assert elapsed < 3.0
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"error": "timeout"' in answer


def test_a_stalled_request_line_is_dropped_within_the_deadline(
    served: tuple[ReplayClock, ExchangeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = served
    monkeypatch.setattr(server_module, "REQUEST_DEADLINE_S", 0.6)
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), port), timeout=10) as conn:
        began = time.monotonic()
        conn.sendall(b"GET /v1/ti")
        for _ in range(20):  # dribble a byte every 0.1 s: each read is within the socket timeout
            time.sleep(0.1)
            try:
                conn.sendall(b"m")
            except OSError:
                break
        rest = b""
        try:
            while chunk := conn.recv(1024):
                rest += chunk
        except OSError:
            pass
        elapsed = time.monotonic() - began
    assert 0.6 <= elapsed < 2.5
    # Answered, not just dropped: a JSON 408 naming the deadline, then closed.
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), rest
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {
        "error": "timeout",
        "message": "request not completed within 0.6 s",
        "rule": None,
    }
    assert httpx.get(f"{server.url}/v1/time", headers=_auth(OURS), timeout=2).status_code == 200


def test_the_deadline_is_read_for_each_connection_and_spares_a_prompt_one(
    served: tuple[ReplayClock, ExchangeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keep-alive client that is quick with each request is served past the deadline:
    # the deadline bounds one request, not the connection.
    _, server = served
    monkeypatch.setattr(server_module, "REQUEST_DEADLINE_S", 0.5)
    with httpx.Client(base_url=server.url, timeout=5, headers=_auth(OURS)) as client:
        began = time.monotonic()
        answers = []
        while time.monotonic() - began < 1.5:
            answers.append(client.get("/v1/time").status_code)
            time.sleep(0.1)
    assert len(answers) >= 8
    assert set(answers) == {200}


def test_beyond_the_connection_limit_the_answer_is_a_json_503() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    server = ExchangeServer(
        ReplayExchange(_prices(), CN, clock), tokens={OURS: frozenset({"pf"})}, max_connections=2
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    request = b"GET /v1/time HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + OURS.encode() + b"\r\n\r\n"
    held = [socket.create_connection((str(host), port), timeout=5) for _ in range(2)]
    try:
        for conn in held:  # two connections, kept alive: the limit
            conn.sendall(request)
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        with capture_logs() as logs:
            status, body = _raw(server, request)
        assert status == 503
        assert body == {"error": "busy", "message": "too many connections", "rule": None}
        assert [e["event"] for e in logs if e["event"].startswith("exchange")] == ["exchange_busy"]
        assert OURS not in json.dumps(logs, default=str)
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.3)  # the server sees both closed
    try:
        assert _raw(server, request)[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_without_tokens_the_server_refuses_to_start_unless_insecure() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="insecure_no_auth"):
        ExchangeServer(ReplayExchange(_prices(), CN, clock))
    with capture_logs() as logs:
        server = ExchangeServer(ReplayExchange(_prices(), CN, clock), insecure_no_auth=True)
    server.server_close()
    assert [e["event"] for e in logs] == ["exchange_auth_disabled"]


def test_binding_a_non_loopback_address_is_warned() -> None:
    clock = ReplayClock(RULES.gate_closure(DAY) - dt.timedelta(hours=1))
    with capture_logs() as logs:
        server = ExchangeServer(
            ReplayExchange(_prices(), CN, clock), "0.0.0.0", tokens={OURS: frozenset({"pf"})}
        )
    server.server_close()
    warned = [e for e in logs if e["event"] == "exchange_bound_non_loopback"]
    assert len(warned) == 1
    assert warned[0]["log_level"] == "warning"
    assert warned[0]["host"] == "0.0.0.0"
    with capture_logs() as logs:
        server = ExchangeServer(ReplayExchange(_prices(), CN, clock), tokens={OURS: frozenset({"pf"})})
    server.server_close()
    assert logs == []


def test_token_pairs_parse_and_bad_ones_name_the_pair_not_the_secret() -> None:
    tokens = parse_tokens(f"pf={OURS}, other-pf={OURS},x={OTHER}")
    assert tokens == {OURS: frozenset({"pf", "other-pf"}), OTHER: frozenset({"x"})}
    with pytest.raises(TokenError, match="token pair 2: expected portfolio_id=token"):
        parse_tokens(f"pf={OURS},{OTHER}")
    with pytest.raises(TokenError, match=r"token pair 1 \(pf\): the token has 5 characters") as info:
        parse_tokens("pf=short")
    assert "short" not in str(info.value)
