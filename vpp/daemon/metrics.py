"""Health and Prometheus metrics (``prometheus_client``) over HTTP for operators.

``GET /healthz`` answers ``{"status": "ok"|"degraded", ...}`` and
``GET /metrics`` the text exposition format (version 0.0.4). Metric names
follow Prometheus conventions: ``vpp_bids_submitted_total``,
``vpp_asset_available{park,asset}``, ...

The server (Starlette on uvicorn) binds ``[daemon] metrics_host`` (loopback by
default; any other address is logged as ``metrics_bound_non_loopback``).
Malformed requests get a JSON 400 (never a traceback), an idle connection is
closed after :data:`SOCKET_TIMEOUT_S`, a request not answered within
:data:`REQUEST_DEADLINE_S` of its first byte gets a JSON 408 and is closed
(:class:`vpp.http.JsonH11Protocol`), and only GET is served (JSON 405).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from vpp.http import HttpServer, json_protocol
from vpp.wire import is_loopback

log = structlog.get_logger(__name__)

SOCKET_TIMEOUT_S = 10.0
REQUEST_DEADLINE_S = 30.0  # one whole request, from waiting for its first byte to the answer

# JSON framing errors and the request deadline (read at each request), shared with the exchange.
_PROTOCOL = json_protocol("metrics", lambda: REQUEST_DEADLINE_S)


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


def _app(metrics: Metrics, health: Callable[[], dict[str, Any]]) -> Starlette:
    async def serve_metrics(_request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def serve_health(_request: Request) -> Response:
        answer = health()
        status = HTTPStatus.OK if answer.get("status") == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        return Response(json.dumps(answer, default=str), status_code=status, media_type="application/json")

    async def only_get(_request: Request, _exc: Exception) -> Response:
        return JSONResponse(
            {"error": "bad_request", "message": "only GET /metrics and GET /healthz"},
            status_code=HTTPStatus.METHOD_NOT_ALLOWED,
            headers={"Connection": "close"},
        )

    async def not_found(_request: Request, _exc: Exception) -> Response:
        return PlainTextResponse("not found\n", status_code=HTTPStatus.NOT_FOUND)

    return Starlette(
        routes=[Route("/metrics", serve_metrics, methods=["GET"]), Route("/healthz", serve_health, methods=["GET"])],
        exception_handlers={HTTPStatus.METHOD_NOT_ALLOWED: only_get, HTTPStatus.NOT_FOUND: not_found},
    )


class MetricsServer(HttpServer):
    """``/metrics`` and ``/healthz`` on Starlette and uvicorn (:class:`vpp.http.HttpServer`:
    ``serve_forever`` in a thread, ``shutdown``, ``server_close``, ``server_address``, ``url``).

    The socket is bound at construction (``OSError`` if the port is taken).
    """

    def __init__(self, metrics: Metrics, health: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        self.metrics = metrics
        self.health = health
        super().__init__(
            _app(metrics, health), host, port, protocol=_PROTOCOL, keep_alive_s=SOCKET_TIMEOUT_S
        )
        if not is_loopback(host):
            log.warning("metrics_bound_non_loopback", host=host, port=self.server_address[1])
