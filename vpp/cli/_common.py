"""Shared CLI plumbing: the console, config discovery, error exit.

Every command runs inside :func:`guarded` (applied once, in ``vpp.cli``), the
one place that turns an exception into one line on stderr and an exit code:

- ``VppError`` -> its message (``ConfigError``: one line per issue, then a
  count), the exit code of its class in :data:`EXIT_CODES`;
- ``OSError`` a user can cause -> ``path: what happened (strerror); what to
  do`` (:func:`vpp.files.describe_os_error`), exit 1;
- ``KeyboardInterrupt`` -> exit 130, quietly;
- click usage errors (unknown option, missing argument, wrong type) stay
  click's, exit 2.

Every error raised on purpose derives from ``VppError`` (a bad value is
:class:`vpp.errors.InputError`), so nothing else is caught: anything else is
a bug and keeps its traceback. No traceback is printed for the errors above;
with ``--log-level DEBUG`` it goes to the log.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import os
import shlex
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar, overload

import structlog
import typer
from rich.console import Console
from rich.markup import escape

from vpp.config import ConfigSet, load_config
from vpp.errors import (
    AdapterError,
    ConfigError,
    DataQualityError,
    ExchangeError,
    InputError,
    LookAheadError,
    MarketRuleError,
    OutputError,
    SolverError,
    StoreError,
    VppError,
)
from vpp.files import describe_os_error
from vpp.logging import redact_text
from vpp.store import Store

log = structlog.get_logger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Wide enough for tables when output goes to a file or a CI log (no terminal to measure).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULT_CONFIG = Path("config")

#: The exit code of each error class that reaches the CLI; a subclass not listed takes
#: its nearest listed base (``InfeasibleError`` -> ``SolverError``). Every error exits 1
#: today, which is what the commands returned before and what their tests pin; a class
#: that needs its own code gets it here and nowhere else (docs/cli.md lists them).
EXIT_CODES: Mapping[type[VppError], int] = {
    VppError: 1,
    InputError: 1,
    ConfigError: 1,
    DataQualityError: 1,
    LookAheadError: 1,
    MarketRuleError: 1,
    AdapterError: 1,
    ExchangeError: 1,
    SolverError: 1,
    StoreError: 1,
    OutputError: 1,
}


def config_path(value: Path | None) -> Path:
    """``--config`` if given, else ``$VPP_CONFIG``, else ``./config``."""
    if value is not None:
        return value
    return Path(os.environ.get("VPP_CONFIG", str(DEFAULT_CONFIG)))


def one_line(message: str) -> str:
    """``message`` on one line: library messages may carry a second, technical line."""
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith("(Background on this error")]
    return " ".join(kept)


def fail(message: str, code: int = 1) -> NoReturn:
    # A peer may echo a secret into the message (a device or exchange quoting our token):
    # the registered secret values are masked here as in the logs.
    err_console.print(
        f"[bold red]error:[/] {escape(redact_text(one_line(message)))}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code)


def exit_code(exc: VppError) -> int:
    """The exit code of ``exc``'s class (:data:`EXIT_CODES`, nearest listed base class)."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_CODES[VppError]


def fail_on(exc: VppError) -> NoReturn:
    """Exit with ``exc``'s one-line message (a ConfigError: its issues, then a count)."""
    code = exit_code(exc)
    if isinstance(exc, ConfigError) and len(exc.issues) == 1:
        fail(str(exc.issues[0]), code)
    if isinstance(exc, ConfigError):
        for issue in exc.issues:
            err_console.print(
                redact_text(str(issue)), markup=False, highlight=False, soft_wrap=True
            )
        fail(f"{len(exc.issues)} config error(s)", code)
    fail(str(exc) or type(exc).__name__, code)


def guarded(command: F) -> F:
    """``command`` with the error mapping described in this module's docstring."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except VppError as exc:
            log.debug("command_failed", command=command.__name__, exc_info=True)
            fail_on(exc)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # stdout closed by `| head`: click exits quietly
                raise
            log.debug("command_failed", command=command.__name__, exc_info=True)
            fail(describe_os_error(exc))

    run.vpp_guarded = True  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


def guard_app(app: typer.Typer) -> None:
    """Wrap every command of ``app`` and its sub-apps in :func:`guarded` (once)."""
    for info in app.registered_commands:
        if info.callback is not None and not getattr(info.callback, "vpp_guarded", False):
            info.callback = guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            guard_app(group.typer_instance)


def check_log_level(value: str) -> str:
    """``value`` upper-cased if it is a log level, else exit 1 naming the choices."""
    level = value.upper()
    if level not in LOG_LEVELS:
        fail(f"--log-level {value!r}: must be one of {', '.join(LOG_LEVELS)}")
    return level


def check_name(option: str, value: str, allowed: Collection[str]) -> str:
    """``value`` if it is one of ``allowed``, else exit 1 naming the option and the choices."""
    if value not in allowed:
        fail(f"{option} {value!r}: unknown; choose one of {', '.join(allowed)}")
    return value


@overload
def parse_day(value: str, option: str) -> dt.date: ...
@overload
def parse_day(value: str | None, option: str) -> dt.date | None: ...
def parse_day(value: str | None, option: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` option value, or exit 1 naming the option and the value."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        fail(f"{option} {value!r}: {exc}; use a date YYYY-MM-DD")


def check_range(first: dt.date | None, last: dt.date | None, names: tuple[str, str]) -> None:
    """Exit 1 if ``first`` is after ``last``."""
    if first is not None and last is not None and first > last:
        fail(f"{names[0]} {first} is after {names[1]} {last}; give {names[0]} <= {names[1]}")


def load(config: Path | None) -> ConfigSet:
    path = config_path(config)
    if not path.exists():
        source = "--config" if config is not None else (
            "$VPP_CONFIG" if "VPP_CONFIG" in os.environ else "the default config folder"
        )
        try:
            path.stat()  # a symlink loop or a dangling link says so
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                fail(f"config ({source}) {describe_os_error(exc)}")
        fail(f"{path}: config folder not found ({source}); pass --config DIR or set VPP_CONFIG")
    try:
        return load_config(path)
    except VppError as exc:
        fail_on(exc)


def open_store(cfg: ConfigSet) -> Store:
    """The config's store; an empty one is created, an old schema is refused naming
    ``vpp db upgrade --config ...`` (docs/store.md)."""
    url = cfg.settings.store.resolved_url(cfg.project_root)
    try:
        return Store(url, upgrade_command=f"vpp db upgrade --config {shlex.quote(str(cfg.root))}")
    except VppError as exc:
        fail_on(exc)
    except OSError as exc:  # the folder of a SQLite file cannot be created
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        fail(f"cannot open store {shown}: {describe_os_error(exc)}; check [store] url or VPP_DATABASE_URL")
