"""Shared CLI plumbing: the console, config discovery, error exit."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from vpp._exceptions import ConfigError, VppError
from vpp.config import ConfigSet, load_config
from vpp.store import Store

# Wide enough for tables when output goes to a file or a CI log (no terminal to measure).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DEFAULT_CONFIG = Path("config")


def config_path(value: Path | None) -> Path:
    """``--config`` if given, else ``$VPP_CONFIG``, else ``./config``."""
    if value is not None:
        return value
    return Path(os.environ.get("VPP_CONFIG", str(DEFAULT_CONFIG)))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fail_on(exc: VppError) -> NoReturn:
    if isinstance(exc, ConfigError):
        for issue in exc.issues:
            err_console.print(str(issue), markup=False, highlight=False, soft_wrap=True)
        fail(f"{len(exc.issues)} config error(s)")
    fail(str(exc))


def load(config: Path | None) -> ConfigSet:
    try:
        return load_config(config_path(config))
    except VppError as exc:
        fail_on(exc)


def open_store(cfg: ConfigSet) -> Store:
    try:
        return Store(cfg.settings.store.resolved_url(cfg.project_root))
    except VppError as exc:
        fail_on(exc)
