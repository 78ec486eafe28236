"""JSON answers of the project's small HTTP servers (the replay exchange, the daemon's metrics).

``http.server`` answers framing errors (a garbage request line, bad headers,
an unknown method) through ``send_error`` with an HTML page; both servers
answer them with one JSON line instead and close the connection.
:func:`framing_error` is that policy, written once.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

__all__ = ["framing_error", "write_json"]


def framing_error(
    handler: BaseHTTPRequestHandler, code: int, message: str | None
) -> tuple[str, str]:
    """Ready ``handler`` to answer a framing error; returns the JSON ``error`` kind and message.

    The connection is closed after the answer; a garbage request line (parsed
    as HTTP/0.9) is answered with a status line all the same. The kind is
    ``bad_request`` below 500, else ``server_error``; the message is
    ``message`` or the status's phrase.
    """
    handler.close_connection = True
    if handler.request_version == "HTTP/0.9":
        handler.request_version = "HTTP/1.0"
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "error"
    return ("bad_request" if code < 500 else "server_error"), message or phrase


def write_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    """Answer ``status`` with ``body`` as JSON (no body to a HEAD request)."""
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if handler.close_connection:
        handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(payload)
