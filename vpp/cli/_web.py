"""``vpp serve`` (the dashboard and API over a store, no daemon needed) and ``vpp token``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpp.cli._common import console, fail, fail_on, load, open_store
from vpp.config import ConfigSet
from vpp.config.loader import resolve_path
from vpp.errors import VppError
from vpp.files import describe_os_error

token_app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
]


def backtest_roots(cfg: ConfigSet) -> list[Path]:
    """Where backtest folders are looked for: the configured output folder and the one above it."""
    out = resolve_path(cfg.root, cfg.settings.backtest.out)
    return [out.parent]


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help="operator (every park) or owner (one park)")],
    park: Annotated[str | None, typer.Option("--park", help="The owner's park id")] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API token; it is printed once and stored only as its hash."""
    cfg = load(config)
    store = open_store(cfg)
    if park is not None and park not in {p.id for p in store.parks()}:
        fail(f"--park {park}: park is not enrolled; enroll it first (vpp enroll) or send its file to the API with an operator token")
    try:
        token = store.create_token(role, park)
    except VppError as exc:
        fail_on(exc)
    typer.echo(token)  # stdout only, once: never logged


@token_app.command("list")
def token_list(config: ConfigOption = None) -> None:
    """List the API tokens: id, role, park, created, revoked (never the tokens)."""
    cfg = load(config)
    for record in open_store(cfg).tokens():
        revoked = record.revoked_at.isoformat(timespec="seconds") if record.revoked_at else "-"
        typer.echo(f"{record.id}\t{record.role}\t{record.park_id or '-'}\t"
                   f"{record.created_at.isoformat(timespec='seconds')}\trevoked {revoked}")


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (vpp_<id>_...)")],
    config: ConfigOption = None,
) -> None:
    """Revoke a token: it is refused (401) from the next request on."""
    cfg = load(config)
    try:
        open_store(cfg).revoke_token(token_id)
    except VppError as exc:
        fail_on(exc)
    console.print(f"revoked token {token_id}", highlight=False)


def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port)")] = 8470,
) -> None:
    """Serve the dashboard and the API (/api/v1) over the store and backtest folders."""
    from vpp.web import create_app, serve_forever

    cfg = load(config)
    store = open_store(cfg)
    app = create_app(store, cfg, backtest_dirs=backtest_roots(cfg))
    console.print(f"serving the dashboard and /api/v1 on http://{host}:{port}", highlight=False)
    try:
        serve_forever(app, host, port)
    except OSError as exc:
        fail(describe_os_error(exc, f"web server {host}:{port}"))
