"""The replay exchange served over HTTP on localhost (``vpp exchange serve``).

Lets the daemon run end to end against historical data: same gate closure,
rules and publication times as the in-process replay exchange, with an
accelerated clock. A small JSON API (see ``docs/exchange-api.md``):

=======  ==============================================  ==========================
method   path                                            answer
=======  ==============================================  ==========================
GET      /v1/health                                      ``{"status": "ok", "now"}`` (no token)
GET      /v1/time                                        ``{"now": ISO}``
POST     /v1/day-ahead/bids                              201 ``{"bid_id"}``; 422/409 with ``rule``
GET      /v1/day-ahead/bids?portfolio_id=&delivery_day=    ``{"bid", "bid_id", "content_hash"}``; 404
GET      /v1/day-ahead/awards?portfolio_id=&delivery_day=  ``{"awards": [...]}``; 425 before publication
GET      /v1/prices?column=&start=&end=                  ``{"values": [[ISO, x], ...]}``; 425 if unpublished
GET      /v1/history?columns=a,b&start=                  every value published by now (see below)
=======  ==============================================  ==========================

Every route but ``/v1/health`` needs ``Authorization: Bearer <token>``
(401 without a valid one); the bid and award routes also need the token to
be authorised for the ``portfolio_id`` (403 otherwise). Tokens map to
portfolios (:func:`parse_tokens`); they are compared in constant time and
never logged. Requests are bounded: body size, JSON depth and field
contents (:mod:`vpp.wire`), a socket timeout and a whole-request deadline
per connection, and a number of concurrent connections.

``/v1/history`` answers ``{"columns": [...], "index": [ISO, ...], "values":
[[x or null, ...], ...]}``: the rows with at least one value published at
the exchange's clock, unpublished values ``null`` -- exactly
:meth:`ReplayExchange.history`, the only data a forecaster may see.
``start`` (optional, ISO with offset) drops older rows. ``/v1/health`` also
reports the clock's ``speed`` and the first and last interval of the data,
so a daemon in ``--simulate`` mode can follow the exchange's clock.

Errors are JSON ``{"error": kind, "message": ..., "rule": ...}``, also for
malformed requests (bad framing, non-JSON bodies): never a dropped
connection without an answer, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import socket
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from market_replay.exchange import ReplayExchange
from vpp.errors import InputError, LookAheadError, MarketRuleError
from vpp.http import framing_error
from vpp.wire import (
    WireError,
    award_to_json,
    bid_content_hash,
    bid_from_json,
    bid_to_json,
    check_id,
    is_loopback,
    loads_limited,
)

log = structlog.get_logger(__name__)

# A day of 400 products x 64 points is well under this; a day of 96 x 10 is ~60 kB.
MAX_BODY_BYTES = 1_048_576
SOCKET_TIMEOUT_S = 10.0  # one read or write on a connection
REQUEST_DEADLINE_S = 30.0  # one whole request, from waiting for its first byte to the answer
MAX_CONNECTIONS = 64
_MIN_TOKEN_CHARS = 16


class TokenError(InputError):
    """The configured tokens are malformed (names the pair, never the secret)."""


def parse_tokens(text: str) -> dict[str, frozenset[str]]:
    """``"portfolio_a=token1,portfolio_b=token1,portfolio_c=token2"`` -> token -> portfolios.

    One token may be authorised for several portfolios; each token must be at
    least 16 characters (use ``secrets.token_urlsafe()``).
    """
    out: dict[str, set[str]] = {}
    for number, pair in enumerate((p.strip() for p in text.split(",")), start=1):
        if not pair:
            continue
        portfolio, sep, token = pair.partition("=")
        portfolio, token = portfolio.strip(), token.strip()
        if not sep or not token:
            raise TokenError(f"token pair {number}: expected portfolio_id=token")
        try:
            check_id(portfolio, f"token pair {number}: portfolio_id")
        except WireError as exc:
            raise TokenError(str(exc)) from exc
        if len(token) < _MIN_TOKEN_CHARS:
            # A left side long enough to be a token may be one (a reversed pair): never echo it.
            shown = f" ({portfolio})" if len(portfolio) < _MIN_TOKEN_CHARS else ""
            hint = "" if shown else " (is the pair reversed? write portfolio_id=token)"
            raise TokenError(
                f"token pair {number}{shown}: the token has {len(token)} characters, "
                f"at least {_MIN_TOKEN_CHARS} required{hint}"
            )
        out.setdefault(token, set()).add(portfolio)
    return {token: frozenset(portfolios) for token, portfolios in out.items()}


class ExchangeServer(ThreadingHTTPServer):
    """A threaded HTTP server around one :class:`ReplayExchange` (calls serialised).

    ``tokens`` maps each accepted bearer token to the portfolios it may bid
    and read for. Without tokens the server refuses to start unless
    ``insecure_no_auth`` is set (then every request is allowed).
    """

    daemon_threads = True
    request_queue_size = 16

    def __init__(
        self,
        exchange: ReplayExchange,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokens: Mapping[str, frozenset[str]] | None = None,
        insecure_no_auth: bool = False,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if not tokens and not insecure_no_auth:
            raise InputError(
                "the exchange server needs tokens (portfolio_id=token pairs) or an explicit "
                "insecure_no_auth (--insecure-no-auth)"
            )
        self.exchange = exchange
        self.tokens = dict(tokens or {})
        self.insecure_no_auth = insecure_no_auth and not self.tokens
        self.lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__((host, port), _Handler)
        if not is_loopback(host):
            log.warning("exchange_bound_non_loopback", host=host, port=self.server_address[1])
        if self.insecure_no_auth:
            log.warning("exchange_auth_disabled", host=host, port=self.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def portfolios_of(self, header: str | None) -> frozenset[str] | None:
        """The portfolios a request's ``Authorization`` header grants; None if not authenticated.

        The scheme is case-insensitive (RFC 9110), the token is not.
        """
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        presented = credentials.strip().encode()
        granted: frozenset[str] | None = None
        for token, portfolios in self.tokens.items():  # compare with every token: constant time
            if hmac.compare_digest(presented, token.encode()):
                granted = portfolios
        return granted

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("exchange_busy", client=str(client_address[0]))
            try:
                body = json.dumps(
                    {"error": "busy", "message": "too many connections", "rule": None}
                ).encode()
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    b"Connection: close\r\nContent-Length: " + str(len(body)).encode()
                    + b"\r\n\r\n" + body
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: ExchangeServer
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    error_content_type = "application/json"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(
            "exchange_http",
            request=self.requestline[:200],
            status=args[1] if len(args) > 1 else None,
        )

    def log_error(self, format: str, *args: Any) -> None:
        log.info("exchange_http_error", request=self.requestline[:200], reason=format % args)

    def handle_one_request(self) -> None:
        # A whole-request deadline: a client sending one byte per timeout cannot hold a thread.
        timer = threading.Timer(REQUEST_DEADLINE_S, self._expire)
        timer.daemon = True
        timer.start()
        try:
            super().handle_one_request()
        except (TimeoutError, ConnectionError, OSError):
            self.close_connection = True
        finally:
            timer.cancel()

    def _expire(self) -> None:
        log.info("exchange_request_expired", deadline_s=REQUEST_DEADLINE_S)
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Framing errors of http.server (bad request line, headers, method) as JSON."""
        kind, text = framing_error(self, code, message)
        if code == HTTPStatus.NOT_IMPLEMENTED and self.command:  # HEAD, PUT, OPTIONS...
            self._error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"method {self.command[:20]!r} is not allowed: use GET or POST",
                headers={"Allow": "GET, POST"},
            )
            return
        self._error(code, kind, text)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _error(
        self,
        status: int,
        kind: str,
        message: str,
        rule: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send(status, {"error": kind, "message": message, "rule": rule}, headers)

    # ----------------------------------------------------------------- auth

    def _granted(self) -> frozenset[str] | None:
        """The portfolios this request may use; None after answering 401."""
        if self.server.insecure_no_auth:
            return frozenset({"*"})
        headers = self.headers.get_all("Authorization") or []
        if len(headers) > 1:  # which one counts is ambiguous (proxies disagree): refuse
            self.close_connection = True
            self._error(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                f"{len(headers)} Authorization headers: exactly one is allowed",
            )
            return None
        granted = self.server.portfolios_of(headers[0] if headers else None)
        if granted is None:
            self.close_connection = True
            self._error(
                HTTPStatus.UNAUTHORIZED,
                "unauthorized",
                "a valid 'Authorization: Bearer <token>' header is required",
                headers={"WWW-Authenticate": 'Bearer realm="vpp-exchange"'},
            )
        return granted

    def _allowed(self, granted: frozenset[str], portfolio_id: str) -> bool:
        if "*" in granted and self.server.insecure_no_auth:
            return True
        if portfolio_id in granted:
            return True
        self._error(
            HTTPStatus.FORBIDDEN,
            "forbidden",
            f"the token is not authorised for portfolio_id {portfolio_id!r}",
        )
        return False

    # ----------------------------------------------------------------- routes

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        exchange = self.server.exchange
        granted: frozenset[str] = frozenset()
        if url.path != "/v1/health":
            found = self._granted()
            if found is None:
                return
            granted = found
        try:
            parsed = parse_qs(url.query, strict_parsing=False)
            for name, values in parsed.items():
                if len(values) > 1:  # which one counts is ambiguous: refuse
                    raise InputError(f"{name[:40]!r} given {len(values)} times, once allowed")
            query = {k: v[0] for k, v in parsed.items()}
            if url.path in ("/v1/day-ahead/awards", "/v1/day-ahead/bids"):
                portfolio_id = check_id(query.get("portfolio_id"), "portfolio_id")
                text = query["delivery_day"]
                if len(text) != 10:
                    raise InputError(f"delivery_day = {text[:30]!r}: expected YYYY-MM-DD")
                day = dt.date.fromisoformat(text)
                if not self._allowed(granted, portfolio_id):
                    return
            with self.server.lock:
                now = exchange.clock.now()
                if url.path in ("/v1/health", "/v1/time"):
                    body: dict[str, Any] = {"now": now.isoformat()}
                    if url.path == "/v1/health":
                        body["status"] = "ok"
                        body["market_id"] = exchange.market.id
                        body["speed"] = float(getattr(exchange.clock, "speed", 1.0))
                        body["first_interval"] = exchange.prices.index[0].isoformat()
                        body["last_interval"] = exchange.prices.index[-1].isoformat()
                    self._send(HTTPStatus.OK, body)
                elif url.path == "/v1/history":
                    columns = [c for c in query.get("columns", "").split(",") if c] or None
                    frame = exchange.history(columns)
                    if "start" in query:
                        start = dt.datetime.fromisoformat(query["start"])
                        if start.tzinfo is None:
                            raise InputError("start needs a UTC offset")
                        frame = frame[frame.index >= start]
                    values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
                    self._send(
                        HTTPStatus.OK,
                        {
                            "columns": list(frame.columns),
                            "index": [t.isoformat() for t in frame.index],
                            "values": values,
                        },
                    )
                elif url.path == "/v1/day-ahead/awards":
                    awards = exchange.day_ahead_awards(exchange.market.id, portfolio_id, day)
                    self._send(HTTPStatus.OK, {"awards": [award_to_json(a) for a in awards]})
                elif url.path == "/v1/day-ahead/bids":
                    bid = exchange.day_ahead_bid(exchange.market.id, portfolio_id, day)
                    if bid is None:
                        self._error(
                            HTTPStatus.NOT_FOUND,
                            "not_found",
                            f"no bid held for {portfolio_id} on {day.isoformat()}",
                        )
                    else:
                        self._send(
                            HTTPStatus.OK,
                            {
                                "bid": bid_to_json(bid),
                                "bid_id": exchange.receipt(bid.idempotency_key),
                                "content_hash": bid_content_hash(bid),
                            },
                        )
                elif url.path == "/v1/prices":
                    start = dt.datetime.fromisoformat(query["start"])
                    end = dt.datetime.fromisoformat(query["end"])
                    if start.tzinfo is None or end.tzinfo is None:
                        raise InputError("start and end need a UTC offset")
                    series = exchange.get(query["column"], start, end)
                    points = [[t.isoformat(), float(v)] for t, v in series.items()]
                    self._send(HTTPStatus.OK, {"column": query["column"], "values": points})
                else:
                    self._error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path[:100]}")
        except LookAheadError as exc:
            self._error(HTTPStatus.TOO_EARLY, "not_published", str(exc))
        except KeyError as exc:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", f"bad query: missing or unknown {exc}")
        except ValueError as exc:  # WireError is a ValueError
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", f"bad query: {str(exc)[:300]}")

    def _body(self) -> bytes | None:
        """The request body within the bounds; None after answering an error."""
        self.close_connection = True  # until the body is known to be fully read
        if self.headers.get("Transfer-Encoding"):
            self._error(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                "Transfer-Encoding is not supported; send a Content-Length",
            )
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) != 1 or not lengths[0].strip().isdigit():
            self._error(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                f"Content-Length = {lengths[0][:40] if lengths else None!r}: one decimal length "
                "is required",
            )
            return None
        length = int(lengths[0])
        if length == 0:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", "a JSON body is required")
            return None
        if length > MAX_BODY_BYTES:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"Content-Length = {length}: at most {MAX_BODY_BYTES} bytes allowed",
            )
            return None
        deadline = time.monotonic() + REQUEST_DEADLINE_S
        chunks, remaining = [], length
        try:
            while remaining:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    return None  # the client went away
                chunks.append(chunk)
                remaining -= len(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
        except TimeoutError:
            log.info("exchange_body_timeout", received=length - remaining, length=length)
            self._error(
                HTTPStatus.REQUEST_TIMEOUT,
                "timeout",
                f"body not received within {SOCKET_TIMEOUT_S:g} s "
                f"({length - remaining} of {length} bytes)",
            )
            return None
        self.close_connection = False
        return b"".join(chunks)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/v1/day-ahead/bids":
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path[:100]}")
            return
        raw = self._body()  # read (bounded) first, so an error answer is not lost to a reset
        if raw is None:
            return
        granted = self._granted()
        if granted is None:
            return
        try:
            bid = bid_from_json(loads_limited(raw))
        except (WireError, ValueError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)[:500])
            return
        if not self._allowed(granted, bid.portfolio_id):
            return
        try:
            with self.server.lock:
                bid_id = self.server.exchange.submit_day_ahead(bid)
        except MarketRuleError as exc:
            status = (
                HTTPStatus.CONFLICT
                if exc.rule == "duplicate_bid"
                else HTTPStatus.UNPROCESSABLE_ENTITY
            )
            self._error(status, "rule_violation", str(exc), rule=exc.rule)
            return
        self._send(HTTPStatus.CREATED, {"bid_id": bid_id, "idempotency_key": bid.idempotency_key})
