"""The daemon's metrics on prometheus_client: the same names, labels and text format as before."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from structlog.testing import capture_logs

from vpp.daemon import metrics as metrics_module
from vpp.daemon.metrics import Metrics, MetricsServer


def test_counters_and_gauges_render_in_the_text_format_and_read_back() -> None:
    metrics = Metrics()
    metrics.describe("vpp_bids_submitted_total", "counter", "Day-ahead bids accepted by the exchange")
    metrics.describe("vpp_asset_available", "gauge", "1 if the asset's last reading was healthy")
    metrics.inc("vpp_bids_submitted_total", market="cn-province-a")
    metrics.set("vpp_asset_available", 1.0, park="jinan-north", asset="bess-1")
    metrics.set("vpp_clock_timestamp_seconds", 1.5e9)
    text = metrics.render()
    assert "# HELP vpp_bids_submitted_total Day-ahead bids accepted by the exchange" in text
    assert "# TYPE vpp_bids_submitted_total counter" in text
    assert 'vpp_bids_submitted_total{market="cn-province-a"} 1' in text
    assert 'vpp_asset_available{asset="bess-1",park="jinan-north"} 1' in text
    assert "_created" not in text
    assert metrics.get("vpp_bids_submitted_total", market="cn-province-a") == 1
    assert metrics.get("vpp_bids_submitted_total", market="elsewhere") == 0
    assert metrics.get("vpp_clock_timestamp_seconds") == 1.5e9
    with capture_logs() as logs:
        metrics.inc("vpp_bids_submitted_total", park="x")  # other label names: logged, not raised
    assert [e["event"] for e in logs] == ["metric_labels_differ"]


def test_the_metrics_server_serves_the_registry() -> None:
    metrics = Metrics()
    metrics.inc("vpp_dispatch_total", market="m")
    server = MetricsServer(metrics, lambda: {"status": "ok"}, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        answer = httpx.get(f"{server.url}/metrics", timeout=5)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'vpp_dispatch_total{market="m"} 1.0' in answer.text
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_that_never_finishes_its_request_is_answered_408_and_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before the shared protocol of vpp.http: uvicorn arms no timer before a first request,
    # so a silent connection or a request line sent a byte at a time was held forever.
    monkeypatch.setattr(metrics_module, "REQUEST_DEADLINE_S", 0.5)
    server = MetricsServer(Metrics(), lambda: {"status": "ok"}, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        for opening in (b"", b"GET /metr"):
            with socket.create_connection((str(host), port), timeout=5) as conn:
                began = time.monotonic()
                conn.sendall(opening)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
                elapsed = time.monotonic() - began
            assert 0.5 <= elapsed < 2.0, (opening, elapsed)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer
            assert json.loads(body)["error"] == "timeout"
        assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
