"""``vpp db upgrade``: bring a store's schema to this vpp's revision (Alembic, vpp.migrations).

Every other command creates an empty store at the current revision on first
use and refuses a store at an older one, naming this command; upgrading is a
step the operator takes on purpose (after a backup), never a side effect of
starting the daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpp.cli._common import config_path, console, fail, fail_on
from vpp.config import load_settings
from vpp.config.models import Settings
from vpp.errors import VppError
from vpp.store import shown_url, upgrade_store

app = typer.Typer(help="The store's schema.", no_args_is_help=True)


def settings_store_url(config: Path | None) -> str:
    """The store URL of ``vpp.toml`` (``--config`` folder or file; only that file is read,
    so a broken park file does not stand in the way of upgrading), or of ``VPP_DATABASE_URL``."""
    path = config_path(config)
    if not path.exists():  # a mistyped folder must not mean a new store elsewhere
        fail(f"{path}: config folder not found; pass --config DIR (or its vpp.toml) or --database URL")
    settings_file = path if path.is_file() else path / "vpp.toml"
    settings = load_settings(settings_file) if settings_file.exists() else Settings()
    return settings.store.resolved_url(settings_file.parent.parent)


@app.command()
def upgrade(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config folder or vpp.toml whose [store] url to upgrade"),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", help="Store URL to upgrade (instead of --config)"),
    ] = None,
) -> None:
    """Upgrade the store to this vpp's schema, keeping its data; does nothing if it is current."""
    if config is not None and database is not None:
        fail("give --config or --database, not both")
    try:
        url = database if database is not None else settings_store_url(config)
        shown = shown_url(url)
        before, after = upgrade_store(url)
    except VppError as exc:
        fail_on(exc)
    if before == after:
        console.print(f"store {shown}: already at revision {after.revision}; nothing to do", highlight=False, soft_wrap=True)
    elif before.kind == "empty":
        console.print(f"store {shown}: created at revision {after.revision}", highlight=False, soft_wrap=True)
    else:
        console.print(
            f"[green]upgraded[/] store {shown}: {before.describe()} -> revision {after.revision}",
            highlight=False,
            soft_wrap=True,
        )
