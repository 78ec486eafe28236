"""Health and Prometheus metrics (``prometheus_client``) over HTTP for operators.

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
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from vpp.http import framing_error, write_json
from vpp.wire import is_loopback

log = structlog.get_logger(__name__)

SOCKET_TIMEOUT_S = 10.0


# The daemon exports each counter once: without the ``_created`` series of every label
# set (the text format stays what operators' dashboards read).
disable_created_metrics()


class Metrics:
    """The daemon's counters and gauges, kept by ``prometheus_client`` in a registry of their own.

    A metric is made on first use with the label names of that use; :meth:`describe`
    gives its kind (``counter``/``gauge``) and help text beforehand.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, tuple[Counter | Gauge, tuple[str, ...]]] = {}
        self._help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def _child(self, name: str, labels: dict[str, str], kind: str) -> Any:
        names = tuple(sorted(labels))
        with self._lock:
            made = self._metrics.get(name)
            if made is None:
                kind, text = self._help.get(name, (kind, name))
                factory = Counter if kind == "counter" else Gauge
                made = (factory(name, text, labelnames=names, registry=self.registry), names)
                self._metrics[name] = made
        metric, known = made
        if known != names:
            log.warning("metric_labels_differ", metric=name, labels=list(names), known=list(known))
            return None
        return metric.labels(**labels) if names else metric

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        child = self._child(name, labels, "counter")
        if child is not None:
            child.inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        child = self._child(name, labels, "gauge")
        if child is not None:
            child.set(float(value))

    def get(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
        return 0.0 if value is None else float(value)

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


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
