"""structlog setup, called once at the entry point (CLI or daemon).

Event names are fixed snake_case strings with key-value fields, e.g.
``log.info("park_enrolled", park=..., assets=...)``. Secrets are never passed
as fields; :func:`redact` drops any field whose name looks like a secret as
a second line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("password", "token", "secret", "authorization", "api_key")


def redact(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if any(word in key.lower() for word in _SECRET_WORDS) and not key.endswith("_env"):
            event_dict[key] = "***"
    return event_dict


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on the *current* ``sys.stderr`` (looked up per logger, not once at setup)."""
    return structlog.PrintLogger(file=sys.stderr)


def configure_logging(*, json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog: console for people on a TTY, JSON otherwise or when asked.

    Logs go to stderr so that command output on stdout stays machine-readable.
    """
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
