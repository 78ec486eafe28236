"""The factory, the health registry and ``vpp adapters check`` on a park file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from adapter_helpers import T0, ManualClock, battery, park_with
from sunspec_peer import SunSpecBattery
from typer.testing import CliRunner

from adapters import (
    HealthRegistry,
    HttpProcessController,
    ModbusSunSpecDevice,
    OcppHub,
    SimulatedBattery,
    SimulatedPv,
    create,
)
from vpp import AdapterError
from vpp.cli import app
from vpp.config import load_config
from vpp.portfolio import park_capability

REPO = Path(__file__).resolve().parents[2]


def test_create_builds_the_adapter_each_park_file_names(clock: ManualClock) -> None:
    park = load_config(REPO / "config").parks["houston-ship-channel"]
    assert isinstance(create(park, "bess-h1", clock=clock), ModbusSunSpecDevice)
    assert isinstance(create(park, "electrolyser", clock=clock), HttpProcessController)
    assert isinstance(create(park, "fleet-depot", clock=clock), OcppHub)
    available = pd.Series([1.0, 2.0], index=pd.date_range(T0, periods=2, freq="h"))
    assert isinstance(create(park, "pv-field", clock=clock, available_kw=available), SimulatedPv)
    with pytest.raises(AdapterError, match="needs available_kw"):
        create(park, "pv-field", clock=clock)
    with pytest.raises(AdapterError, match="no asset 'nope'"):
        create(park, "nope", clock=clock)


def test_create_refuses_a_protocol_for_the_wrong_asset_type(clock: ManualClock) -> None:
    park = park_with(
        {
            "id": "pv",
            "type": "pv",
            "capacity_kwp": 100,
            "profile": {"path": "x.csv"},
            "adapter": {"type": "modbus-sunspec", "host": "127.0.0.1"},
        }
    )
    with pytest.raises(AdapterError, match="implemented for battery assets"):
        create(park, "pv", clock=clock)


def test_registry_excludes_unavailable_assets(clock: ManualClock) -> None:
    park = park_with(battery().model_dump(), battery(id="bess-2").model_dump())
    one = create(park, "bess", clock=clock)
    two = create(park, "bess-2", clock=clock)
    assert isinstance(one, SimulatedBattery)
    registry = HealthRegistry([one, two])
    one.connect()  # two is never connected: unavailable, not_connected
    registry.read_all()
    capabilities = park_capability(park).assets
    kept = registry.exclude_unavailable(capabilities)
    assert [c.asset_id for c in kept] == ["bess"]
    assert registry.unavailable()[("test-park", "bess-2")].reason == "not_connected"
    two.connect()
    assert len(registry.exclude_unavailable(capabilities)) == 2
    with pytest.raises(ValueError, match="twice"):
        registry.add(one)


@pytest.fixture
def peer() -> Iterator[SunSpecBattery]:
    device = SunSpecBattery(wmax_w=5_000_000, energy_wh=10_000_000, soc=0.42)
    device.start()
    yield device
    device.close()


def write_park(config: Path, port: int) -> None:
    (config / "parks" / "loopback.toml").write_text(
        f"""
id = "loopback"
name = "Loopback park"
market = "ercot-houston"
timezone = "America/Chicago"

[grid]
import_limit_kw = 10000
export_limit_kw = 6000

[[assets]]
id = "bess-l"
type = "battery"
power_kw = 5000
energy_kwh = 10000

[assets.adapter]
type = "modbus-sunspec"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5

[[assets]]
id = "bess-sim"
type = "battery"
power_kw = 100
energy_kwh = 200
"""
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    target = tmp_path / "project" / "config"
    shutil.copytree(REPO / "config", target)
    (tmp_path / "project" / "data").symlink_to(REPO / "data", target_is_directory=True)
    return target


def test_adapters_check_prints_telemetry_and_health(config: Path, peer: SunSpecBattery) -> None:
    write_park(config, peer.port)
    result = CliRunner().invoke(app, ["adapters", "check", "loopback", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "bess-l" in result.output
    assert "42.0%" in result.output  # SoC read over Modbus
    assert "modbus-sunspec" in result.output


def test_adapters_check_exits_1_when_an_asset_is_unavailable(
    config: Path, peer: SunSpecBattery
) -> None:
    write_park(config, peer.port)
    peer.stop()
    result = CliRunner().invoke(
        app, ["adapters", "check", "loopback", "-c", str(config), "--wait", "0.2"]
    )
    assert result.exit_code == 1
    assert "connection_lost" in result.output


def test_adapters_check_unknown_park(config: Path) -> None:
    result = CliRunner().invoke(app, ["adapters", "check", "atlantis", "-c", str(config)])
    assert result.exit_code == 1
    assert "unknown park" in result.output
