"""Commands for park owners: validate, schema, enroll, parks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from vpp.cli._common import config_path, console, err_console, fail, fail_on, load, open_store
from vpp.config import ParkConfig, load_park, validate_paths
from vpp.config.models import MarketConfig, Settings
from vpp.errors import ConfigError, VppError
from vpp.logging import redact_text
from vpp.portfolio import park_capability

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
]


def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders")] = None,
) -> None:
    """Check config files; list every error and exit 1 if there is any."""
    targets = paths or [config_path(None)]
    count, issues = validate_paths(targets)
    for issue in issues:
        err_console.print(redact_text(str(issue)), markup=False, highlight=False, soft_wrap=True)
    if issues:
        fail(f"{len(issues)} error(s) in {count} file(s)")
    console.print(f"[green]ok[/]: {count} file(s) valid")


def schema(
    kind: Annotated[str, typer.Argument(help="park, market or settings")] = "park",
) -> None:
    """Print the JSON Schema of a config file so editors can check it."""
    models: dict[str, type[BaseModel]] = {
        "park": ParkConfig,
        "market": MarketConfig,
        "settings": Settings,
    }
    if kind not in models:
        fail(f"unknown schema {kind!r}; choose one of {', '.join(models)}")
    typer.echo(json.dumps(models[kind].model_json_schema(), indent=2))


def enroll(
    paths: Annotated[list[Path] | None, typer.Argument(help="Park files or folders")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate park files and write them to the store in one transaction."""
    cfg = load(config)
    files: list[Path] = []
    for path in paths or [cfg.root / cfg.settings.paths.parks]:
        files += sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files:
        fail("no park files given")
    issues = []
    parks: list[tuple[ParkConfig, Path]] = []
    for file in files:
        try:
            parks.append((load_park(file, cfg.markets), file))
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        fail_on(ConfigError(issues))
    store = open_store(cfg)
    try:
        written = store.enroll(parks)
    except VppError as exc:
        fail_on(exc)
    console.print(f"[green]enrolled[/] {written} park(s) into {store.safe_url}")


def parks(config: ConfigOption = None) -> None:
    """List the enrolled parks and their assets."""
    cfg = load(config)
    store = open_store(cfg)
    records = store.parks()
    if not records:
        console.print("no parks enrolled; run `vpp enroll`")
        return
    print_portfolio([store.park_config(r.id) for r in records], title="Enrolled parks")


def print_portfolio(parks: list[ParkConfig], title: str = "Portfolio") -> None:
    table = Table(title=title)
    for column in (
        "park",
        "market",
        "asset",
        "type",
        "adapter",
        "export kW",
        "import kW",
        "detail",
    ):
        table.add_column(column, justify="right" if "kW" in column else "left")
    for park in parks:
        cap = park_capability(park)
        for asset in cap.assets:
            table.add_row(
                park.id,
                park.market,
                asset.asset_id,
                asset.type,
                asset.adapter,
                f"{asset.max_export_kw:,.0f}",
                f"{asset.max_import_kw:,.0f}",
                asset.summary,
            )
        table.add_row(
            f"[bold]{park.id}[/]",
            "",
            "[bold]grid[/]",
            "",
            "",
            f"[bold]{cap.max_export_kw:,.0f}[/]",
            f"[bold]{cap.max_import_kw:,.0f}[/]",
            f"limits {park.grid.export_limit_kw:,.0f} out / {park.grid.import_limit_kw:,.0f} in",
            end_section=True,
        )
    console.print(table)
