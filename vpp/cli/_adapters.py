"""``vpp adapters check PARK``: connect to each asset of a park, print telemetry and health."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from vpp.cli._common import console, fail, load
from vpp.config.models import AssetSpec, ParkConfig, SimulatedAdapter
from vpp.errors import AdapterError, DataQualityError
from vpp.runtime.clock import SystemClock
from vpp.timeutil import day_intervals_utc, zone
from vpp.types import Health

app = typer.Typer(help="Device adapters: check connectivity and health.", no_args_is_help=True)


@app.command()
def check(
    park: Annotated[str, typer.Argument(help="Park id (from the config's parks folder)")],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config folder or vpp.toml [default: ./config]"),
    ] = None,
    wait_s: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait for devices (and charge points) to report"),
    ] = 5.0,
) -> None:
    """Connect to every asset of PARK; exit 1 if any asset is unavailable."""
    from adapters import Adapter, create  # imported here: keeps `vpp --help` fast

    cfg = load(config)
    if park not in cfg.parks:
        fail(f"unknown park {park!r}; known: {', '.join(sorted(cfg.parks)) or 'none'}")
    spec = cfg.parks[park]
    clock = SystemClock()
    adapters: list[Adapter] = []
    skipped: dict[str, str] = {}
    folder = cfg.park_files[spec.id].parent
    for asset in spec.assets:
        try:
            adapters.append(
                create(spec, asset, clock=clock, **_simulation_inputs(spec, asset, folder))
            )
        except (AdapterError, DataQualityError) as exc:
            skipped[asset.id] = str(exc)
    try:
        for adapter in adapters:
            adapter.connect()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and not all(a.health().available for a in adapters):
            time.sleep(0.1)
        rows = [(a, a.read(), a.health()) for a in adapters]
    finally:
        for adapter in adapters:
            adapter.close()

    table = Table(title=f"Adapters of {park}")
    for column in (
        "asset",
        "type",
        "adapter",
        "health",
        "power kW",
        "SoC",
        "measured at",
        "detail",
    ):
        table.add_column(column, justify="right" if column in ("power kW", "SoC") else "left")
    unavailable = 0
    by_id = {a.id: a for a in spec.assets}
    for adapter, telemetry, status in rows:
        ok = telemetry.health is Health.OK
        unavailable += not ok
        table.add_row(
            adapter.asset_id,
            by_id[adapter.asset_id].type,
            adapter.protocol,
            "[green]ok[/]" if ok else f"[red]unavailable[/] ({telemetry.reason})",
            "" if telemetry.power_kw is None else f"{telemetry.power_kw:,.1f}",
            "" if telemetry.soc is None else f"{telemetry.soc:.1%}",
            telemetry.measured_at.isoformat(timespec="seconds"),
            "" if ok else (status.detail or ""),
        )
    for asset_id, why in skipped.items():
        table.add_row(
            asset_id, by_id[asset_id].type, by_id[asset_id].adapter.type, "[yellow]skipped[/]",
            "", "", "", why,
        )  # fmt: skip
    console.print(table)
    if unavailable:
        fail(f"{unavailable} asset(s) unavailable")


def _simulation_inputs(park: ParkConfig, asset: AssetSpec, folder: Path) -> dict[str, Any]:
    """Today's exogenous series for a simulated device, from the park's profiles."""
    if not isinstance(asset.adapter, SimulatedAdapter):
        return {}
    today = dt.datetime.now(dt.UTC).astimezone(zone(park.timezone)).date()
    index = day_intervals_utc(today, park.timezone, 15)
    end = index[-1] + pd.Timedelta(minutes=15)
    return asset.simulation_inputs(folder, index, park.timezone, index[0], end, park=park)
