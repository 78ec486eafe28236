"""The replay exchange served over HTTP on localhost (``vpp exchange serve``).

Lets the daemon run end to end against historical data: same gate closure,
rules and publication times as the in-process replay exchange, with an
accelerated clock. A small JSON API (see ``docs/exchange-api.md``):

=======  ==============================================  ==========================
method   path                                            answer
=======  ==============================================  ==========================
GET      /v1/health                                      ``{"status": "ok", "now"}``
GET      /v1/time                                        ``{"now": ISO}``
POST     /v1/day-ahead/bids                              201 ``{"bid_id"}``; 422/409 with ``rule``
GET      /v1/day-ahead/awards?portfolio_id=&delivery_day=  ``{"awards": [...]}``; 425 before publication
GET      /v1/prices?column=&start=&end=                  ``{"values": [[ISO, x], ...]}``; 425 if unpublished
GET      /v1/history?columns=a,b&start=                  every value published by now (see below)
=======  ==============================================  ==========================

``/v1/history`` answers ``{"columns": [...], "index": [ISO, ...], "values":
[[x or null, ...], ...]}``: the rows with at least one value published at
the exchange's clock, unpublished values ``null`` -- exactly
:meth:`ReplayExchange.history`, the only data a forecaster may see.
``start`` (optional, ISO with offset) drops older rows. ``/v1/health`` also
reports the clock's ``speed`` and the first and last interval of the data,
so a daemon in ``--simulate`` mode can follow the exchange's clock.

Errors are JSON ``{"error": kind, "message": ..., "rule": ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog

from market_replay.exchange import ReplayExchange
from vpp._exceptions import LookAheadError, MarketRuleError
from vpp.wire import WireError, award_to_json, bid_from_json

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 5_000_000


class ExchangeServer(ThreadingHTTPServer):
    """A threaded HTTP server around one :class:`ReplayExchange` (calls serialised)."""

    daemon_threads = True

    def __init__(self, exchange: ReplayExchange, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exchange = exchange
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: ExchangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(
            "exchange_http", request=self.requestline, status=args[1] if len(args) > 1 else None
        )

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, kind: str, message: str, rule: str | None = None) -> None:
        self._send(status, {"error": kind, "message": message, "rule": rule})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        exchange = self.server.exchange
        try:
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
                            raise ValueError("start needs a UTC offset")
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
                    day = dt.date.fromisoformat(query["delivery_day"])
                    awards = exchange.day_ahead_awards(
                        exchange.market.id, query["portfolio_id"], day
                    )
                    self._send(HTTPStatus.OK, {"awards": [award_to_json(a) for a in awards]})
                elif url.path == "/v1/prices":
                    start = dt.datetime.fromisoformat(query["start"])
                    end = dt.datetime.fromisoformat(query["end"])
                    if start.tzinfo is None or end.tzinfo is None:
                        raise ValueError("start and end need a UTC offset")
                    series = exchange.get(query["column"], start, end)
                    values = [[t.isoformat(), float(v)] for t, v in series.items()]
                    self._send(HTTPStatus.OK, {"column": query["column"], "values": values})
                else:
                    self._error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path}")
        except LookAheadError as exc:
            self._error(HTTPStatus.TOO_EARLY, "not_published", str(exc))
        except (KeyError, ValueError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", f"bad query: {exc}")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/v1/day-ahead/bids":
            self._error(HTTPStatus.NOT_FOUND, "not_found", f"no route {url.path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", "a JSON body up to 5 MB is required")
            return
        try:
            bid = bid_from_json(json.loads(self.rfile.read(length)))
        except (json.JSONDecodeError, WireError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
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
