"""structlog setup, called once at the entry point (CLI or daemon).

Event names are fixed snake_case strings with key-value fields, e.g.
``log.info("park_enrolled", park=..., assets=...)``. Secrets are never passed
as fields; :func:`redact` drops any field whose name looks like a secret as
a second line of defence.

A device can still echo a secret back (a controller that puts its bearer
token into a JSON field we quote in an error). So the secret *values* are
known too: :func:`register_secret` records each one (the config loader
registers the environment variables named by every ``*_env`` field and
``VPP_EXCHANGE_TOKEN(S)``; adapters register what they read at connect
time), :func:`redact_text` replaces every occurrence with ``***``, and the
:func:`redact_values` processor applies it to every string of every log
event: nested dicts and lists, the event name and the formatted exception.
Values shorter than :data:`MIN_SECRET_CHARS` are not registered: redacting
every "1" or "admin" would garble logs and protect nothing.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("password", "token", "secret", "authorization", "api_key")
MIN_SECRET_CHARS = 6
MASK = "***"

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> bool:
    """Redact ``value`` wherever it appears from now on; False if too short to register."""
    if value is None:
        return False
    value = value.strip()
    if len(value) < MIN_SECRET_CHARS:
        return False
    global _pattern
    with _secrets_lock:
        if value not in _secrets:
            _secrets.add(value)
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in ordered))
    return True


def forget_secrets() -> None:
    """Drop every registered secret (tests; a process keeps them for its lifetime)."""
    global _pattern
    with _secrets_lock:
        _secrets.clear()
        _pattern = None


def redact_text(text: str) -> str:
    """``text`` with every registered secret value replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def _redact_any(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {_redact_any(k): _redact_any(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_redact_any(v) for v in value)
    if isinstance(value, BaseException):
        text = str(value)
        redacted = redact_text(text)
        return value if redacted == text else f"{type(value).__name__}: {redacted}"
    return value


def redact_values(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace registered secret values inside every field (run after ``format_exc_info``)."""
    if _pattern is None:
        return event_dict
    for key in list(event_dict):
        event_dict[key] = _redact_any(event_dict[key])
    return event_dict


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
            redact_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
