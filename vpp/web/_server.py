"""Serving the app with uvicorn: in the foreground (``vpp serve``) or in a thread (the daemon)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn

from vpp.wire import is_loopback

log = structlog.get_logger(__name__)


class _ToStructlog(logging.Handler):
    """uvicorn logs through the standard library; its warnings and errors (a request it
    could not parse, an exception in the app) go on as structlog events, so the daemon's
    stderr stays one JSON object per line."""

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
    _handler = _ToStructlog(level=logging.WARNING)
    _uvicorn_log.addHandler(_handler)


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


def _config(app: Any, sock: socket.socket) -> uvicorn.Config:
    host, port = sock.getsockname()[:2]
    # uvicorn's own logging is off: the app logs through structlog, and access logs
    # would carry query strings; tokens are headers and never logged either way.
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")


@dataclass
class WebServer:
    """A uvicorn server running in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout_s: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def serve_in_thread(app: Any, host: str, port: int) -> WebServer:
    """Serve ``app`` on ``host:port`` from a daemon thread; returns once it accepts connections."""
    sock = bind(host, port)
    server = uvicorn.Server(_config(app, sock))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vpp-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10.0
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    url = url_of(sock)
    if not is_loopback(host):
        log.warning("web_bound_non_loopback", host=host, port=sock.getsockname()[1])
    log.info("web_serving", url=url)
    return WebServer(server, thread, url)


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve ``app`` in the foreground until Ctrl-C / SIGTERM."""
    sock = bind(host, port)
    if not is_loopback(host):
        log.warning("web_bound_non_loopback", host=host, port=sock.getsockname()[1])
    log.info("web_serving", url=url_of(sock))
    uvicorn.Server(_config(app, sock)).run(sockets=[sock])
