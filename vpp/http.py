"""The project's small HTTP servers on uvicorn: the replay exchange and the daemon's metrics.

Written once here (the foundation layer, so ``market_replay`` and ``vpp.daemon`` may both
import it):

- :func:`bind`: the listening socket, bound before serving (port 0 gives a free port);
- :class:`JsonH11Protocol`: uvicorn's HTTP/1.1 protocol answering what it cannot parse
  (garbage, a TLS hello, a bad ``Content-Length``) with the project's one-line JSON error
  ``{"error", "message", "rule"}``, bounding each request by a deadline from its first
  byte (uvicorn itself has no timer before a first request, and every byte received
  cancels its keep-alive timer, so a client dribbling a request line would hold the
  connection forever), and answering beyond ``limit_concurrency`` with a JSON 503;
- :class:`HttpServer`: an ASGI app on uvicorn with ``socketserver``'s verbs
  (``serve_forever`` in a thread, ``shutdown``, ``server_close``, ``server_address``, ``url``).

uvicorn logs through the standard library; its warnings and errors go on as structlog
events (``web_server_warning``/``web_server_error``), so a server's stderr stays one JSON
object per line.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, ClassVar

import h11
import structlog
import uvicorn

# uvicorn's HTTP/1.1 protocol class, subclassed here and passed as uvicorn.Config(http=...).
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HttpServer", "JsonH11Protocol", "bind", "json_protocol", "raw_json_response"]

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class _ToStructlog(logging.Handler):
    """uvicorn's warnings and errors (a request it could not parse, an exception in the app)
    as structlog events."""

    def emit(self, record: logging.LogRecord) -> None:
        fields = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            log.error("web_server_error", **fields)
        else:
            log.warning("web_server_warning", **fields)


_uvicorn_log = logging.getLogger("uvicorn")
if not any(isinstance(h, _ToStructlog) for h in _uvicorn_log.handlers):
    _uvicorn_log.addHandler(_ToStructlog(level=logging.WARNING))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port); OSError if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def raw_json_response(status: int, kind: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer ``{"error": kind, "message": message, "rule": null}`` that
    closes the connection, for a protocol that answers outside a request/response cycle."""
    body = json.dumps({"error": kind, "message": message, "rule": None}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class JsonH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the project's JSON errors, a request deadline and a
    JSON answer beyond the connection limit.

    :meth:`request_deadline_s` (asked when each request begins, so a caller may change
    the value it returns) bounds one request from waiting for its first byte to the end of
    its answer: past it, a request whose answer has not begun gets a JSON 408 and the
    connection is closed. ``None``: no deadline. ``event`` prefixes the structlog events
    (``<event>_request_expired``, ``<event>_busy``).
    """

    event: ClassVar[str] = "http"

    def request_deadline_s(self) -> float | None:
        """The deadline of the request about to begin [s]; None: no deadline."""
        return None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: Any = None  # asyncio.TimerHandle
        # uvicorn's own check answers beyond limit_concurrency in plain text, and counts
        # the asking connection against the limit (limit - 1 others served): here the
        # limit is the number of connections served, and the answer beyond it JSON.
        self._limit, self.limit_concurrency = self.limit_concurrency, None
        if self._limit is not None:
            self.app = self._guarded(self.app)

    def _guarded(self, app: Any) -> Any:
        async def guarded(scope: Scope, receive: Any, send: Any) -> None:
            # This connection and this request's task are counted already.
            limit = self._limit
            if limit is not None and (len(self.connections) > limit or len(self.tasks) > limit):
                client = self.client[0] if self.client else None
                log.warning(f"{self.event}_busy", client=client, limit=limit)
                body = json.dumps({"error": "busy", "message": "too many connections", "rule": None})
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ]
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body.encode()})
                return
            await app(scope, receive, send)

        return guarded

    # ------------------------------------------------------------ the deadline

    def _arm(self) -> None:
        self._disarm()
        deadline_s = self.request_deadline_s()
        if deadline_s is not None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(float(deadline_s), self._expire, float(deadline_s))

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's deadline begins with waiting for its first byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expire(self, deadline_s: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.info(f"{self.event}_request_expired", deadline_s=deadline_s)
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app's answer, if it comes, goes nowhere
                cycle.message_event.set()
            self.transport.write(
                raw_json_response(
                    HTTPStatus.REQUEST_TIMEOUT, "timeout", f"request not completed within {deadline_s:g} s"
                )
            )
        self.transport.close()

    # ------------------------------------------------------------ framing errors

    def send_400_response(self, msg: str) -> None:
        # Called by uvicorn inside its ``except h11.RemoteProtocolError``: h11's reason
        # ("illegal request line", "bad Content-Length") says more than uvicorn's msg.
        exc = sys.exc_info()[1]
        reason = str(exc) if isinstance(exc, h11.RemoteProtocolError) and str(exc) else msg
        body = json.dumps({"error": "bad_request", "message": f"Bad request: {reason}"[:300], "rule": None})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        self._disarm()
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=body.encode())))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()


def json_protocol(event: str, request_deadline_s: Callable[[], float] | None = None) -> type[JsonH11Protocol]:
    """A :class:`JsonH11Protocol` logging as ``event`` with that deadline (a callable, read
    at each request, so a module constant it returns can be changed at run time)."""

    class Protocol(JsonH11Protocol):
        def request_deadline_s(self) -> float | None:
            return None if request_deadline_s is None else request_deadline_s()

    Protocol.event = event
    Protocol.__name__ = Protocol.__qualname__ = f"{event.title()}H11Protocol"
    return Protocol


class HttpServer:
    """An ASGI app on uvicorn, with ``socketserver``'s verbs.

    The socket is bound at construction (``OSError`` if the port is taken; port 0 gives a
    free one, see :attr:`server_address`); :meth:`serve_forever` serves (in the caller's
    thread, so run it in a thread of its own) until :meth:`shutdown`; :meth:`server_close`
    closes the socket. ``keep_alive_s`` closes an idle connection between requests;
    ``limit_concurrency`` bounds the connections (uvicorn's count, answered by the protocol).
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        protocol: type[JsonH11Protocol] = JsonH11Protocol,
        keep_alive_s: float = 10.0,
        limit_concurrency: int | None = None,
    ) -> None:
        self._socket = bind(host, port)
        self.server_address = self._socket.getsockname()
        self._keep_alive_s = keep_alive_s
        config = uvicorn.Config(
            app,
            host=str(self.server_address[0]),
            port=int(self.server_address[1]),
            http=protocol,
            # Off: the app logs through structlog; access logs would carry query strings
            # (tokens are headers and are never logged either way).
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=max(1, round(keep_alive_s)),
            limit_concurrency=limit_concurrency,
            timeout_graceful_shutdown=max(1, round(keep_alive_s)),
        )
        self._server = uvicorn.Server(config)
        self._serving = threading.Event()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}"

    @property
    def started(self) -> bool:
        """True once the server accepts connections (they queue on the socket before)."""
        return bool(self._server.started)

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving and wait until :meth:`serve_forever` has returned."""
        self._server.should_exit = True
        if self._serving.is_set():
            self._stopped.wait(2 * self._keep_alive_s + 1.0)

    def server_close(self) -> None:
        self._socket.close()
