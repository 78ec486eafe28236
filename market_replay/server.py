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
POST     /v1/real-time/bids                              201 ``{"bid_id"}`` (a replacement too); 422 with ``rule``
GET      /v1/real-time/bids?key=                         ``{"bid", "bid_id", "content_hash"}``; 404
GET      /v1/real-time/awards?key=                       ``{"awards": [...]}``; 425 before the period
=======  ==============================================  ==========================

Every route but ``/v1/health`` needs ``Authorization: Bearer <token>``
(401 without a valid one); the bid and award routes also need the token to
be authorised for the ``portfolio_id`` (403 otherwise). Tokens map to
portfolios (:func:`parse_tokens`); they are compared in constant time and
never logged. Requests are bounded: body size, JSON depth and field
contents (:mod:`vpp.wire`), a read timeout for the body
(:data:`SOCKET_TIMEOUT_S`, 408), a whole-request deadline from its first byte
(:data:`REQUEST_DEADLINE_S`, 408 then closed), an idle keep-alive timeout and a
number of concurrent connections (:data:`MAX_CONNECTIONS`, 503 ``busy``).

Served by Starlette on uvicorn (:class:`vpp.http.HttpServer`, the same server,
HTTP/1.1 protocol and deadline as the daemon's metrics): Starlette rather than
FastAPI because this API is specified by ``docs/exchange-api.md`` and pinned
by its tests (exact messages, the order of checks: 413 before 401, 401 before
404), not by an OpenAPI schema, so FastAPI's validation and schema would only
stand between the routes and the answers they must give.

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

import asyncio
import datetime as dt
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import parse_qs

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from market_replay.exchange import ReplayExchange
from vpp.errors import InputError, LookAheadError, MarketRuleError
from vpp.http import ASGIApp, HttpServer, Message, Scope, json_protocol
from vpp.wire import (
    WireError,
    award_to_json,
    bid_content_hash,
    bid_from_json,
    bid_to_json,
    check_id,
    is_loopback,
    loads_limited,
    rt_award_to_json,
    rt_bid_content_hash,
    rt_bid_from_json,
    rt_bid_to_json,
)

log = structlog.get_logger(__name__)

# A day of 400 products x 64 points is well under this; a day of 96 x 10 is ~60 kB.
MAX_BODY_BYTES = 1_048_576
# Each read at the time of a request, so a test (or an operator's script) may change them.
SOCKET_TIMEOUT_S = 10.0  # one read of the body; an idle keep-alive connection (fixed at start)
REQUEST_DEADLINE_S = 30.0  # one whole request, from waiting for its first byte to the answer
MAX_CONNECTIONS = 64
_MIN_TOKEN_CHARS = 16

_T = TypeVar("_T")
_PROTOCOL = json_protocol("exchange", lambda: REQUEST_DEADLINE_S)


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



class _Answer(Exception):  # noqa: N818 -- not an error: a route's early answer
    """Raised by a check to answer the request at once (401, 403, 400, 413, 408...)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None, *, close: bool = False
) -> Response:
    # json.dumps with its default separators: the bodies are byte for byte those of the
    # version on the standard library's HTTP server the daemon and the tests were written against.
    extra = dict(headers or {})
    if close:  # the body was not read, or the client is not trusted with another request
        extra["Connection"] = "close"
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=extra)


def _error(
    status: int,
    kind: str,
    message: str,
    rule: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = False,
) -> Response:
    return _json(status, {"error": kind, "message": message, "rule": rule}, headers, close=close)


class ExchangeServer(HttpServer):
    """One :class:`ReplayExchange` over HTTP, on Starlette and uvicorn (calls serialised).

    ``tokens`` maps each accepted bearer token to the portfolios it may bid
    and read for. Without tokens the server refuses to start unless
    ``insecure_no_auth`` is set (then every request is allowed). The socket is
    bound at construction (``OSError`` if the port is taken; port 0 gives a free
    one, see ``server_address`` and ``url``); run :meth:`serve_forever` in a
    thread, stop with :meth:`shutdown` and :meth:`server_close`.
    """

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
        super().__init__(
            _app(self),
            host,
            port,
            protocol=_PROTOCOL,
            keep_alive_s=SOCKET_TIMEOUT_S,
            limit_concurrency=max_connections,
        )
        if not is_loopback(host):
            log.warning("exchange_bound_non_loopback", host=host, port=self.server_address[1])
        if self.insecure_no_auth:
            log.warning("exchange_auth_disabled", host=host, port=self.server_address[1])

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

    def granted(self, request: Request) -> frozenset[str]:
        """The portfolios this request may use; raises the 400/401 answer otherwise."""
        if self.insecure_no_auth:
            return frozenset({"*"})
        headers = request.headers.getlist("authorization")
        if len(headers) > 1:  # which one counts is ambiguous (proxies disagree): refuse
            raise _Answer(
                _error(
                    HTTPStatus.BAD_REQUEST,
                    "bad_request",
                    f"{len(headers)} Authorization headers: exactly one is allowed",
                    close=True,
                )
            )
        granted = self.portfolios_of(headers[0] if headers else None)
        if granted is None:
            raise _Answer(
                _error(
                    HTTPStatus.UNAUTHORIZED,
                    "unauthorized",
                    "a valid 'Authorization: Bearer <token>' header is required",
                    headers={"WWW-Authenticate": 'Bearer realm="vpp-exchange"'},
                    close=True,
                )
            )
        return granted

    def allow(self, granted: frozenset[str], portfolio_id: str) -> None:
        """Raises the 403 answer unless ``granted`` covers ``portfolio_id``."""
        if ("*" in granted and self.insecure_no_auth) or portfolio_id in granted:
            return
        raise _Answer(
            _error(
                HTTPStatus.FORBIDDEN,
                "forbidden",
                f"the token is not authorised for portfolio_id {portfolio_id!r}",
            )
        )


@dataclass(frozen=True)
class _Read:
    """A GET request past its checks: the query (each name once) and, for the portfolio
    routes, the portfolio and delivery day."""

    query: dict[str, str]
    portfolio_id: str = ""
    day: dt.date | None = None


def _path(request: Request) -> str:
    """The request's path as sent (before percent-decoding), for messages."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return bytes(raw).decode("latin-1")[:100]


def _query(request: Request) -> dict[str, str]:
    parsed = parse_qs(bytes(request.scope.get("query_string") or b"").decode("latin-1"), strict_parsing=False)
    for name, values in parsed.items():
        if len(values) > 1:  # which one counts is ambiguous: refuse
            raise InputError(f"{name[:40]!r} given {len(values)} times, once allowed")
    return {k: v[0] for k, v in parsed.items()}


async def _body(request: Request) -> bytes:
    """The request body within the bounds; raises the error answer otherwise (400, 413, 408).

    An error before the whole body is read closes the connection (``Connection: close``).
    """
    if request.headers.get("transfer-encoding"):
        raise _Answer(
            _error(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                "Transfer-Encoding is not supported; send a Content-Length",
                close=True,
            )
        )
    lengths = request.headers.getlist("content-length")
    if len(lengths) != 1 or not lengths[0].strip().isdigit():
        raise _Answer(
            _error(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                f"Content-Length = {lengths[0][:40] if lengths else None!r}: one decimal length "
                "is required",
                close=True,
            )
        )
    length = int(lengths[0])
    if length == 0:
        raise _Answer(_error(HTTPStatus.BAD_REQUEST, "bad_request", "a JSON body is required", close=True))
    if length > MAX_BODY_BYTES:
        raise _Answer(
            _error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"Content-Length = {length}: at most {MAX_BODY_BYTES} bytes allowed",
                close=True,
            )
        )
    read_s, deadline = SOCKET_TIMEOUT_S, time.monotonic() + REQUEST_DEADLINE_S
    chunks: list[bytes] = []
    received = 0
    while received < length:
        wait_s = max(0.0, min(read_s, deadline - time.monotonic()))
        try:
            message: Message = await asyncio.wait_for(request.receive(), timeout=wait_s)
        except TimeoutError:
            log.info("exchange_body_timeout", received=received, length=length)
            raise _Answer(
                _error(
                    HTTPStatus.REQUEST_TIMEOUT,
                    "timeout",
                    f"body not received within {read_s:g} s ({received} of {length} bytes)",
                    close=True,
                )
            ) from None
        if message["type"] == "http.disconnect":  # the client went away: nobody reads an answer
            raise _Answer(_error(HTTPStatus.BAD_REQUEST, "bad_request", "the client closed", close=True))
        chunk = bytes(message.get("body", b""))
        chunks.append(chunk)
        received += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _app(server: ExchangeServer) -> ASGIApp:
    """The exchange's routes (see the module docstring), each answer JSON."""
    exchange = server.exchange

    def locked(work: Callable[[], _T]) -> Awaitable[_T]:
        """``work`` on a worker thread holding the exchange's lock (off the event loop)."""

        def run() -> _T:
            with server.lock:
                return work()

        return run_in_threadpool(run)

    def reader(
        route: Callable[[_Read], Awaitable[Response]],
        *,
        token: bool = True,
        portfolio: bool = False,
        rt_key: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        """A GET route: the token, then the query, then the portfolio, then ``route``.

        ``rt_key``: the query names a real-time bid by its idempotency key
        (``market/product/period_start/portfolio/direction``); its portfolio is checked.
        """

        async def endpoint(request: Request) -> Response:
            granted = server.granted(request) if token else frozenset()
            try:
                query = _query(request)
                read = _Read(query)
                if portfolio:
                    portfolio_id = check_id(query.get("portfolio_id"), "portfolio_id")
                    text = query["delivery_day"]
                    if len(text) != 10:
                        raise InputError(f"delivery_day = {text[:30]!r}: expected YYYY-MM-DD")
                    read = _Read(query, portfolio_id, dt.date.fromisoformat(text))
                    server.allow(granted, portfolio_id)
                if rt_key:
                    key = query["key"]
                    parts = key.split("/")
                    if len(key) > 400 or len(parts) != 5:
                        raise InputError(
                            f"key = {key[:60]!r}: expected market/product/period_start/portfolio/direction"
                        )
                    portfolio_id = check_id(parts[3], "key: portfolio_id")
                    read = _Read(query, portfolio_id)
                    server.allow(granted, portfolio_id)
                return await route(read)
            except LookAheadError as exc:
                return _error(HTTPStatus.TOO_EARLY, "not_published", str(exc))
            except KeyError as exc:
                return _error(HTTPStatus.BAD_REQUEST, "bad_request", f"bad query: missing or unknown {exc}")
            except ValueError as exc:  # WireError and InputError are ValueErrors
                return _error(HTTPStatus.BAD_REQUEST, "bad_request", f"bad query: {str(exc)[:300]}")

        return endpoint

    async def health(_read: _Read) -> Response:
        def work() -> dict[str, Any]:
            return {
                "now": exchange.clock.now().isoformat(),
                "status": "ok",
                "market_id": exchange.market.id,
                "speed": float(getattr(exchange.clock, "speed", 1.0)),
                "first_interval": exchange.prices.index[0].isoformat(),
                "last_interval": exchange.prices.index[-1].isoformat(),
            }

        return _json(HTTPStatus.OK, await locked(work))

    async def now(_read: _Read) -> Response:
        return _json(HTTPStatus.OK, {"now": await locked(lambda: exchange.clock.now().isoformat())})

    async def history(read: _Read) -> Response:
        columns = [c for c in read.query.get("columns", "").split(",") if c] or None

        def work() -> dict[str, Any]:
            frame = exchange.history(columns)
            if "start" in read.query:
                start = dt.datetime.fromisoformat(read.query["start"])
                if start.tzinfo is None:
                    raise InputError("start needs a UTC offset")
                frame = frame[frame.index >= start]
            values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
            return {
                "columns": list(frame.columns),
                "index": [t.isoformat() for t in frame.index],
                "values": values,
            }

        return _json(HTTPStatus.OK, await locked(work))

    async def awards(read: _Read) -> Response:
        assert read.day is not None
        day = read.day
        found = await locked(lambda: exchange.day_ahead_awards(exchange.market.id, read.portfolio_id, day))
        return _json(HTTPStatus.OK, {"awards": [award_to_json(a) for a in found]})

    async def held_bid(read: _Read) -> Response:
        assert read.day is not None
        day = read.day

        def work() -> dict[str, Any] | None:
            bid = exchange.day_ahead_bid(exchange.market.id, read.portfolio_id, day)
            if bid is None:
                return None
            return {
                "bid": bid_to_json(bid),
                "bid_id": exchange.receipt(bid.idempotency_key),
                "content_hash": bid_content_hash(bid),
            }

        body = await locked(work)
        if body is None:
            return _error(
                HTTPStatus.NOT_FOUND, "not_found", f"no bid held for {read.portfolio_id} on {day.isoformat()}"
            )
        return _json(HTTPStatus.OK, body)

    async def prices(read: _Read) -> Response:
        query = read.query
        start = dt.datetime.fromisoformat(query["start"])
        end = dt.datetime.fromisoformat(query["end"])
        if start.tzinfo is None or end.tzinfo is None:
            raise InputError("start and end need a UTC offset")
        series = await locked(lambda: exchange.get(query["column"], start, end))
        points = [[t.isoformat(), float(v)] for t, v in series.items()]
        return _json(HTTPStatus.OK, {"column": query["column"], "values": points})

    async def rt_held_bid(read: _Read) -> Response:
        key = read.query["key"]

        def work() -> dict[str, Any] | None:
            bid = exchange.real_time_bid(key)
            if bid is None:
                return None
            return {
                "bid": rt_bid_to_json(bid),
                "bid_id": exchange.receipt(key),
                "content_hash": rt_bid_content_hash(bid),
            }

        body = await locked(work)
        if body is None:
            return _error(HTTPStatus.NOT_FOUND, "not_found", f"no real-time bid held for {key[:200]}")
        return _json(HTTPStatus.OK, body)

    async def rt_awards(read: _Read) -> Response:
        key = read.query["key"]

        def work() -> list[dict[str, Any]] | None:
            bid = exchange.real_time_bid(key)
            if bid is None:
                return None
            return [rt_award_to_json(a) for a in exchange.real_time_awards(bid)]

        found = await locked(work)
        if found is None:
            return _error(HTTPStatus.NOT_FOUND, "not_found", f"no real-time bid held for {key[:200]}")
        return _json(HTTPStatus.OK, {"awards": found})

    read_rt_bid = reader(rt_held_bid, rt_key=True)

    async def rt_submit(request: Request) -> Response:
        raw = await _body(request)
        granted = server.granted(request)
        try:
            bid = rt_bid_from_json(loads_limited(raw))
        except (WireError, ValueError) as exc:
            return _error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)[:500])
        server.allow(granted, bid.portfolio_id)
        try:
            bid_id = await locked(lambda: exchange.submit_real_time(bid))
        except MarketRuleError as exc:
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "rule_violation", str(exc), rule=exc.rule)
        return _json(HTTPStatus.CREATED, {"bid_id": bid_id, "idempotency_key": bid.idempotency_key})

    async def rt_bids(request: Request) -> Response:
        return await (rt_submit(request) if request.method == "POST" else read_rt_bid(request))

    read_bid = reader(held_bid, portfolio=True)

    async def submit(request: Request) -> Response:
        raw = await _body(request)  # read (bounded) first, so an error answer is not lost to a reset
        granted = server.granted(request)
        try:
            bid = bid_from_json(loads_limited(raw))
        except (WireError, ValueError) as exc:
            return _error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)[:500])
        server.allow(granted, bid.portfolio_id)
        try:
            bid_id = await locked(lambda: exchange.submit_day_ahead(bid))
        except MarketRuleError as exc:
            status = HTTPStatus.CONFLICT if exc.rule == "duplicate_bid" else HTTPStatus.UNPROCESSABLE_ENTITY
            return _error(status, "rule_violation", str(exc), rule=exc.rule)
        return _json(HTTPStatus.CREATED, {"bid_id": bid_id, "idempotency_key": bid.idempotency_key})

    async def bids(request: Request) -> Response:
        return await (submit(request) if request.method == "POST" else read_bid(request))

    async def answer(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Answer)
        return exc.response

    async def no_route(request: Request, _exc: Exception) -> Response:
        # As before the port: a GET is authenticated before its path is looked at; a POST
        # anywhere but the two bid routes (also to a GET route, Starlette's 405) is a 404.
        if request.method == "GET":
            try:
                server.granted(request)
            except _Answer as refused:
                return refused.response
            return _error(HTTPStatus.NOT_FOUND, "not_found", f"no route {_path(request)}")
        return _error(HTTPStatus.NOT_FOUND, "not_found", f"no route {_path(request)}", close=True)

    app = Starlette(
        routes=[
            Route("/v1/health", reader(health, token=False), methods=["GET"]),
            Route("/v1/time", reader(now), methods=["GET"]),
            Route("/v1/history", reader(history), methods=["GET"]),
            Route("/v1/prices", reader(prices), methods=["GET"]),
            Route("/v1/day-ahead/awards", reader(awards, portfolio=True), methods=["GET"]),
            Route("/v1/day-ahead/bids", bids, methods=["GET", "POST"]),
            Route("/v1/real-time/awards", reader(rt_awards, rt_key=True), methods=["GET"]),
            Route("/v1/real-time/bids", rt_bids, methods=["GET", "POST"]),
        ],
        exception_handlers={
            _Answer: answer,
            HTTPStatus.NOT_FOUND: no_route,
            HTTPStatus.METHOD_NOT_ALLOWED: no_route,
        },
    )
    app.router.redirect_slashes = False  # /v1/time/ is no route (a 404), not a redirect
    return _only_get_and_post(app)


def _only_get_and_post(app: ASGIApp) -> ASGIApp:
    """Any method but GET and POST is a JSON 405 before routing (Starlette would serve HEAD
    on a GET route)."""

    async def guarded(scope: Scope, receive: Any, send: Any) -> None:
        method = str(scope.get("method", ""))
        if scope["type"] == "http" and method not in ("GET", "POST"):
            response = _error(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "method_not_allowed",
                f"method {method[:20]!r} is not allowed: use GET or POST",
                headers={"Allow": "GET, POST"},
                close=True,
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded
