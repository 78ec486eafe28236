"""The daemon checks each settled day against the parks' daily emission budgets.

Real scheduler, replay exchange over HTTP on loopback, simulated devices,
SQLite store: a budget far below what the steel park draws is overrun, and the
alert names the day's heaviest hours and assets; the other park has no budget
and gets no check.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.vpp.daemon_support import DAY, MARKET, load, make_config, prices
from vpp.daemon.build import SimulationWorld, default_window, simulated_daemon
from vpp.runtime.operator import MarketPortfolio
from vpp.store import Store

SPEED = 40_000.0
MARGIN = dt.timedelta(minutes=30)
BUDGET = "[carbon_budget]\ndaily_tco2 = 1.5\npenalty_per_t = 500\n\n[grid]"


def test_an_overrun_budget_raises_an_alert_naming_hours_and_assets(tmp_path: Path) -> None:
    cfg = load(make_config(
        tmp_path, daemon={"reoptimise_every": 4, "carbon_price_per_t": 100.0},
        park_edits={"jinan-north": ("[grid]", BUDGET)},
    ))
    assert cfg.parks["jinan-north"].carbon_budget is not None
    frame = prices(cfg)
    portfolio = MarketPortfolio.from_config(cfg, MARKET)
    start, first, last = default_window(portfolio, frame, MARGIN, DAY, 1)
    world = SimulationWorld.start(
        portfolio, frame, speed=SPEED, start=start, first_day=first, last_day=last
    )
    store = Store(f"sqlite:///{tmp_path / 'daemon.db'}")
    daemon = simulated_daemon(cfg, store, world)
    try:
        with capture_logs() as logs:
            daemon.start()
            assert daemon.finished.wait(90), "the simulated day did not finish in 90 s"
    finally:
        world.close()
    alerts = [e for e in logs if e["event"] == "carbon_budget_exceeded"]
    assert len(alerts) == 1, [e["event"] for e in logs if "carbon" in e["event"]]
    alert = alerts[0]
    assert alert["park"] == "jinan-north"
    assert alert["day"] == DAY.isoformat()
    assert alert["alert"] is True
    assert alert["budget_tco2"] == 1.5
    assert alert["emissions_tco2"] > 1.5
    assert alert["over_tco2"] == round(alert["emissions_tco2"] - 1.5, 4)
    assert 1 <= len(alert["hours"]) <= 3
    assert all(h[2] == ":" for h in alert["hours"])
    assets = {a.split()[0] for a in alert["assets"]}
    assert assets
    assert assets <= {a.id for a in cfg.parks["jinan-north"].assets}
    assert not [e for e in logs if e["event"] == "carbon_budget_met"]
    assert daemon.metrics.get("vpp_carbon_budget_exceeded_total", park="jinan-north") == 1
    assert daemon.metrics.get("vpp_park_emissions_tco2", park="jinan-north") > 1.5
    # The settled day's carbon books are in the store; `vpp carbon report` reads them.
    import json

    from typer.testing import CliRunner

    from vpp.cli import app

    assert len(store.carbon_intervals("jinan-north", DAY, DAY)) == 96
    assert len(store.carbon_intervals("qingdao-logistics", DAY, DAY)) == 96
    result = CliRunner().invoke(app, [
        "--log-level", "ERROR", "carbon", "report", "-c", str(cfg.root), "--store",
        f"sqlite:///{tmp_path / 'daemon.db'}", "--park", "jinan-north", "--start",
        DAY.isoformat(), "--end", DAY.isoformat(), "--json",
    ])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["intervals"] == 96
    assert report["scope2_location_tco2"] == pytest.approx(alert["emissions_tco2"], abs=1e-3)
    assert report["source"].startswith("store sqlite:///")
