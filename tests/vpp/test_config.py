"""Config validation: every bad-input case names file, field, value and what is allowed."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpp import ConfigError
from vpp.assets import ASSET_TYPES
from vpp.cli import app
from vpp.config import load_config, load_market, load_park

runner = CliRunner()


def _park(tmp: Path, body: str, name: str = "p.toml") -> Path:
    parks = tmp / "parks"
    parks.mkdir(exist_ok=True)
    path = parks / name
    path.write_text(body, encoding="utf-8")
    return path


GOOD_PARK = """
id = "demo-park"
name = "Demo"
market = "cn-province-a"
timezone = "Asia/Shanghai"

[grid]
import_limit_kw = 8000
export_limit_kw = 5000

[[assets]]
id = "bess-1"
type = "battery"
power_kw = 2000
energy_kwh = 4000
soc_min = 0.1
soc_max = 0.9
soc_initial = 0.5
"""


@pytest.fixture
def cfg_dir(config_copy: Path) -> Path:
    return config_copy


def test_shipped_config_is_valid() -> None:
    result = runner.invoke(app, ["validate", "config/"])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


def test_shipped_config_loads_every_asset_type() -> None:
    cfg = load_config("config")
    types = {a.type for p in cfg.parks.values() for a in p.assets}
    assert types == set(ASSET_TYPES)  # every registered type ships in an example park
    assert set(cfg.markets) == {
        "cn-province-a", "nordpool-dk1", "ercot-houston", "epex-de-lu", "caiso-np15"
    }  # caiso-np15: rules only, no CAISO price data ships


@pytest.mark.parametrize(
    ("replace", "field", "value", "message"),
    [
        ("energy_kwh = 4000", "assets[0].energy_kwh", "-5", "must be > 0"),
        ("soc_min = 0.1", "assets[0].soc_min", "0.95", "must be <= soc_max (0.9)"),
        (
            "soc_initial = 0.5",
            "assets[0].soc_initial",
            "0.05",
            "must lie within [soc_min, soc_max]",
        ),
        ("power_kw = 2000", "assets[0].power_kw", "0", "must be > 0"),
        ('timezone = "Asia/Shanghai"', "timezone", '"Mars/Olympus"', "unknown IANA time zone"),
        ('market = "cn-province-a"', "market", '"nowhere"', "unknown market"),
        ('type = "battery"', "assets[0].type", '"flux-capacitor"', "must be one of"),
    ],
)
def test_bad_value_is_named(
    cfg_dir: Path, replace: str, field: str, value: str, message: str
) -> None:
    key = replace.split(" = ")[0]
    body = GOOD_PARK.replace(replace, f"{key} = {value}")
    path = _park(cfg_dir, body, "bad.toml")
    result = runner.invoke(app, ["validate", str(cfg_dir)])
    assert result.exit_code == 1
    line = next(ln for ln in result.output.splitlines() if ln.startswith(str(path)))
    assert f": {field} = " in line
    assert message in line


def test_efficiency_outside_unit_interval(cfg_dir: Path) -> None:
    body = GOOD_PARK + "charge_efficiency = 1.2\n"
    path = _park(cfg_dir, body)
    with pytest.raises(ConfigError) as info:
        load_park(path)
    assert str(info.value) == f"{path}: assets[0].charge_efficiency = 1.2: must be <= 1"


def test_unknown_key_is_rejected(cfg_dir: Path) -> None:
    path = _park(cfg_dir, GOOD_PARK + "enrgy_kwh = 4000\n")
    with pytest.raises(ConfigError) as info:
        load_park(path)
    assert "assets[0].enrgy_kwh" in str(info.value)
    assert "unknown key" in str(info.value)


def test_unknown_adapter_type(cfg_dir: Path) -> None:
    path = _park(cfg_dir, GOOD_PARK + '\n[assets.adapter]\ntype = "carrier-pigeon"\n')
    with pytest.raises(ConfigError) as info:
        load_park(path)
    message = str(info.value)
    assert "assets[0].adapter.type = 'carrier-pigeon'" in message
    assert "'modbus-sunspec'" in message


def test_duplicate_asset_ids(cfg_dir: Path) -> None:
    second = GOOD_PARK[GOOD_PARK.index("[[assets]]") :]
    path = _park(cfg_dir, GOOD_PARK + second)
    with pytest.raises(ConfigError) as info:
        load_park(path)
    assert "assets[1].id = 'bess-1': duplicate asset id (also assets[0])" in str(info.value)


def test_secret_in_env_field_rejected(cfg_dir: Path) -> None:
    body = (
        GOOD_PARK
        + '\n[assets.adapter]\ntype = "http"\nbase_url = "http://x"\ntoken_env = "abc def!"\n'
    )
    path = _park(cfg_dir, body)
    with pytest.raises(ConfigError, match=r"token_env = 'abc def!': must be the NAME"):
        load_park(path)


def test_missing_data_file_named(cfg_dir: Path) -> None:
    body = (
        GOOD_PARK
        + """
[[assets]]
id = "pv"
type = "pv"
capacity_kwp = 100
[assets.profile]
path = "nope.csv"
"""
    )
    path = _park(cfg_dir, body)
    with pytest.raises(
        ConfigError, match=r"assets\[1\]\.profile\.path = 'nope.csv': file not found"
    ):
        load_park(path)


def test_every_error_listed_and_exit_1(cfg_dir: Path) -> None:
    _park(cfg_dir, GOOD_PARK.replace("energy_kwh = 4000", "energy_kwh = -1"), "a.toml")
    _park(cfg_dir, GOOD_PARK.replace('id = "demo-park"', 'id = "Bad Id"'), "b.toml")
    (cfg_dir / "parks" / "c.toml").write_text("id = [unclosed", encoding="utf-8")
    result = runner.invoke(app, ["validate", str(cfg_dir)])
    assert result.exit_code == 1
    assert "a.toml: assets[0].energy_kwh = -1: must be > 0" in result.output
    assert "b.toml: id = 'Bad Id': must match" in result.output
    assert re.search(r"c\.toml: invalid TOML", result.output)
    assert "3 error(s)" in result.output


def test_validate_single_file_uses_sibling_markets(cfg_dir: Path) -> None:
    path = _park(cfg_dir, GOOD_PARK.replace("cn-province-a", "atlantis"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "market = 'atlantis': unknown market; known: caiso-np15, cn-province-a" in result.output


def test_market_floor_above_cap(cfg_dir: Path) -> None:
    path = cfg_dir / "markets" / "cn-province-a.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("cap_per_mwh = 1500.0", "cap_per_mwh = -100.0"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="floor_per_mwh must be < cap_per_mwh"):
        load_market(path)


def test_market_rules_versioned_by_effective_date() -> None:
    ercot = load_market(Path("config/markets/ercot-houston.toml"))
    assert ercot.rules_on(dt.date(2021, 12, 31)).price_limits.cap_per_mwh == 9000
    assert ercot.rules_on(dt.date(2022, 1, 1)).price_limits.cap_per_mwh == 5000
    nordpool = load_market(Path("config/markets/nordpool-dk1.toml"))
    assert nordpool.rules_on(dt.date(2016, 6, 1)).interval_minutes == 60
    assert nordpool.rules_on(dt.date(2025, 10, 1)).interval_minutes == 15
    with pytest.raises(ValueError, match="no day_ahead rule in force"):
        nordpool.rules_on(dt.date(2000, 1, 1))


def test_gate_closure_in_utc() -> None:
    cn = load_market(Path("config/markets/cn-province-a.toml")).rules_on(dt.date(2025, 5, 2))
    assert cn.gate_closure(dt.date(2025, 5, 2)) == dt.datetime(2025, 5, 1, 2, 0, tzinfo=dt.UTC)
    de = load_market(Path("config/markets/epex-de-lu.toml")).rules_on(dt.date(2021, 3, 28))
    # Delivery on the spring-forward day: gate closure is D-1 12:00 CET = 11:00 UTC.
    assert de.gate_closure(dt.date(2021, 3, 28)) == dt.datetime(2021, 3, 27, 11, 0, tzinfo=dt.UTC)


def test_schema_is_json_schema() -> None:
    import json

    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert "BatterySpec" in schema["$defs"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("settlement_interval_minutes = 60", "settlement_interval_minutes = 0"),
        (
            'interval_minutes = 60\nsource = "SDAC/Nord Pool',
            'interval_minutes = -60\nsource = "SDAC/Nord Pool',
        ),
    ],
)
def test_older_rule_versions_are_validated_too(cfg_dir: Path, old: str, new: str) -> None:
    path = cfg_dir / "markets" / "nordpool-dk1.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = runner.invoke(app, ["validate", str(cfg_dir)])
    assert result.exit_code == 1
    assert "must divide a day into whole intervals" in result.output
