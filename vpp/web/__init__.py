"""The HTTP API (``/api/v1``, bearer tokens) and the operator dashboard, on FastAPI and uvicorn.

``create_app`` builds the app over a store; ``serve_in_thread`` (the daemon) and
``serve_forever`` (``vpp serve``) run it. See ``docs/api.md``.
"""

from vpp.web._app import MAX_BODY_BYTES, RATE_LIMIT_PER_MINUTE, Principal, create_app
from vpp.web._server import WebServer, bind, serve_forever, serve_in_thread

__all__ = [
    "MAX_BODY_BYTES",
    "RATE_LIMIT_PER_MINUTE",
    "Principal",
    "WebServer",
    "bind",
    "create_app",
    "serve_forever",
    "serve_in_thread",
]
