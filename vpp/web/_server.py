"""Serving the app with uvicorn: in the foreground (``vpp serve``) or in a thread (the daemon).

The socket and the bridge of uvicorn's logging to structlog are :mod:`vpp.http`'s, shared
with the replay exchange and the metrics server.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn

from vpp.http import bind
from vpp.wire import is_loopback

log = structlog.get_logger(__name__)


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
