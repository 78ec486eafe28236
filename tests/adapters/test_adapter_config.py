"""Which adapter serves which asset type: one-line errors from the loader and the factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_helpers import ManualClock, park_with

from adapters import ModbusDevice, create
from vpp.config.loader import load_park
from vpp.errors import AdapterError, ConfigError

PARK = """
id = "heat-park"
name = "Heat"
market = "m"
timezone = "UTC"

[grid]
import_limit_kw = 8000
export_limit_kw = 5000

[[heat_levels]]
id = "hot_water"
temperature_c = 60
demand_kw = 100

[[assets]]
id = "hp"
type = "heat_pump"
power_kw = 500
level = "hot_water"
max_sink_temperature_c = 90
source_temperature_c = 20
"""

TANK = """
[[assets]]
id = "tank"
type = "thermal_storage"
level = "hot_water"
capacity_kwh = 2000
charge_kw = 500
discharge_kw = 500
"""

MODBUS_HP = """
[assets.adapter]
type = "modbus"
host = "127.0.0.1"
"""


def _load(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "park.toml"
    path.write_text(body, encoding="utf-8")
    try:
        load_park(path)
    except ConfigError as exc:
        return [f"{issue.field} = {issue.value!r}: {issue.message}" for issue in exc.issues]
    return []


def test_simulated_http_and_modbus_maps_load(tmp_path: Path) -> None:
    body = (
        PARK
        + MODBUS_HP
        + """
[assets.adapter.setpoint_register]
address = 100
type = "uint32"
scale = 0.1
[assets.adapter.registers.consumption_kw]
address = 0
kind = "input"
[assets.adapter.registers.consumed_kwh]
address = 2
[assets.adapter.registers.heat_kwh]
address = 4
type = "float32"
"""
        + TANK
        + '[assets.adapter]\ntype = "http"\nbase_url = "http://127.0.0.1:8080"\n'
    )
    assert _load(tmp_path, body) == []


def test_unsupported_adapter_names_file_field_and_value(tmp_path: Path) -> None:
    body = PARK + '[assets.adapter]\ntype = "ocpp"\ncharge_point_ids = ["cp"]\n'
    path = tmp_path / "park.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_park(path)
    assert str(info.value).splitlines()[-1].strip().endswith(
        "assets[0].adapter.type = 'ocpp': not implemented for heat_pump assets; "
        "use one of simulated, http, modbus"
    )
    assert str(path) in str(info.value)


def test_modbus_map_must_fit_the_asset_type(tmp_path: Path) -> None:
    issues = _load(
        tmp_path,
        PARK + MODBUS_HP + "[assets.adapter.registers.hydrogen_kg]\naddress = 0\n",
    )
    assert issues == [
        "assets[0].adapter.registers.hydrogen_kg = 'hydrogen_kg': unknown for heat_pump; "
        "known: consumption_kw, soc, consumed_kwh, heat_kwh",
        "assets[0].adapter.registers = ['hydrogen_kg']: missing consumption_kw, consumed_kwh, "
        "heat_kwh: add each with its address",
        "assets[0].adapter.setpoint_register = None: needed: this asset takes setpoints "
        "(a holding register)",
    ]


def test_a_store_takes_no_setpoint_register(tmp_path: Path) -> None:
    body = (
        PARK
        + TANK
        + """
[assets.adapter]
type = "modbus"
host = "127.0.0.1"
[assets.adapter.setpoint_register]
address = 9
[assets.adapter.registers.soc]
address = 0
[assets.adapter.registers.charged_kwh]
address = 2
[assets.adapter.registers.discharged_kwh]
address = 4
"""
    )
    assert _load(tmp_path, body) == [
        "assets[1].adapter.setpoint_register = 9: this asset takes no setpoint; leave it out"
    ]


def test_factory_refuses_what_the_loader_refuses(clock: ManualClock) -> None:
    pv = {
        "id": "pv",
        "type": "pv",
        "capacity_kwp": 100,
        "profile": {"path": "x.csv"},
        "adapter": {"type": "modbus", "host": "127.0.0.1"},
    }
    with pytest.raises(AdapterError, match=r"'modbus' is implemented for .*heat_pump"):
        create(park_with(pv), "pv", clock=clock)
    boiler = {
        "id": "eb",
        "type": "electric_boiler",
        "power_kw": 100,
        "level": "hot_water",
        "max_temperature_c": 120,
        "adapter": {"type": "modbus", "host": "127.0.0.1"},
    }
    with pytest.raises(AdapterError) as info:
        create(park_with(boiler), "eb", clock=clock)
    message = str(info.value)
    assert "\n" not in message
    assert "assets.eb.adapter.registers" in message
    boiler["adapter"] = {
        "type": "modbus",
        "host": "127.0.0.1",
        "setpoint_register": {"address": 0},
        "registers": {n: {"address": 2 * i} for i, n in enumerate(
            ["consumption_kw", "consumed_kwh", "heat_kwh"]
        )},
    }
    assert isinstance(create(park_with(boiler), "eb", clock=clock), ModbusDevice)
