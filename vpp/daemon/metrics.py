"""Health and Prometheus-style metrics over HTTP for operators.

``GET /healthz`` answers ``{"status": "ok"|"degraded", ...}`` and
``GET /metrics`` the text exposition format (version 0.0.4). Metric names
follow Prometheus conventions: ``vpp_bids_submitted_total``,
``vpp_asset_available{park,asset}``, ...

The server binds ``[daemon] metrics_host`` (loopback by default; any other
address is logged as ``metrics_bound_non_loopback``). Malformed requests get
a JSON 400 (never a traceback), a connection that stalls for
:data:`SOCKET_TIMEOUT_S` is closed, and only GET is served.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog

from vpp.http import framing_error, write_json
from vpp.wire import is_loopback

log = structlog.get_logger(__name__)

SOCKET_TIMEOUT_S = 10.0


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


class Metrics:
    """A small thread-safe registry of counters and gauges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = float(value)

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in items:
            if name not in seen:
                seen.add(name)
                kind, text = self._help.get(name, ("gauge", name))
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            lines.append(f"{name}{_labels(dict(labels))} {value:g}")
        return "\n".join(lines) + "\n"


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, metrics: Metrics, health: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        super().__init__((host, port), _Handler)
        if not is_loopback(host):
            log.warning("metrics_bound_non_loopback", host=host, port=self.server_address[1])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    timeout = SOCKET_TIMEOUT_S
    error_content_type = "application/json"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed request lines, headers or methods: a one-line JSON error, then close."""
        kind, text = framing_error(self, code, message)
        write_json(self, code, {"error": kind, "message": text})

    def do_POST(self) -> None:
        self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, "only GET /metrics and GET /healthz")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            body = self.server.metrics.render().encode()
            content_type = "text/plain; version=0.0.4"
            status = HTTPStatus.OK
        elif path == "/healthz":
            health = self.server.health()
            body = json.dumps(health, default=str).encode()
            content_type = "application/json"
            status = HTTPStatus.OK if health.get("status") == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        else:
            body, content_type, status = b"not found\n", "text/plain", HTTPStatus.NOT_FOUND
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
