"""``vpp demo``: the README's main job on the shipped example.

1. validate the example configs and enrol the parks into the store;
2. import the shipped Chinese provincial prices into a canonical file
   (days with missing data left out by policy, reported);
3. backtest the example portfolio on them, with perfect foresight and the
   baselines, and write the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpp.cli._common import console, fail_on, load, open_store
from vpp.errors import VppError

SHIPPED_PRICES = Path("data/prices/cn_province_a_spot_2025-05_2025-06_15min.csv")


def demo(
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Validate and enrol the example parks, import the shipped prices, run the example backtest."""
    from vpp.cli._backtest import backtest
    from vpp.cli._config import print_portfolio
    from vpp.cli._data import import_

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
    prices = cfg.root / (cfg.settings.backtest.prices or Path("../var/prices/cn-province-a.csv"))
    if not prices.is_file():
        source = cfg.project_root / SHIPPED_PRICES
        console.print(f"importing {source} -> {prices}")
        prices.parent.mkdir(parents=True, exist_ok=True)
        import_(source, prices, "cn-spot-96", on_missing="drop-day", config=config)
    backtest(config=config, prices=prices)
