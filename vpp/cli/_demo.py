"""``vpp demo``: the README's main job on the shipped example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpp._exceptions import VppError
from vpp.cli._common import console, fail_on, load, open_store


def demo(
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Validate and enrol the example parks, then print the portfolio."""
    from vpp.cli._config import print_portfolio

    cfg = load(config)
    console.print(
        f"[green]valid[/]: {len(cfg.markets)} market(s), {len(cfg.parks)} park(s) in {cfg.root}"
    )
    store = open_store(cfg)
    try:
        store.enroll((park, cfg.park_files[park.id]) for park in cfg.parks.values())
    except VppError as exc:
        fail_on(exc)
    print_portfolio([store.park_config(r.id) for r in store.parks()], title="Enrolled portfolio")
