"""Every numeric config field refuses ``inf``/``-inf``/``nan``; park and market files agree.

The numeric fields are found by walking the pydantic models, so a field added
later is covered without editing this file; a coverage check fails if a spec
class with numeric fields is missing from the base documents below.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from vpp.cli import app
from vpp.config import models
from vpp.config.models import MarketConfig, ParkConfig, Settings, Spec

runner = CliRunner()

FINITE = "must be a finite number (inf and nan are not allowed)"
BAD_VALUES = (math.inf, -math.inf, math.nan)


def _settings() -> dict[str, Any]:
    return {
        "store": {"url": "sqlite:///var/vpp.db"},
        "paths": {"parks": "parks", "markets": "markets"},
        "solver": {"name": "HIGHS", "time_limit_s": 60.0},
        "backtest": {"scenarios": 5, "deviation_penalty_per_mwh": 1.0, "reoptimise_every": 1},
        "daemon": {"da_safety_margin_minutes": 30.0, "telemetry_poll_s": 10.0},
    }


def _market() -> dict[str, Any]:
    source = {"source": "a test rule book", "effective_date": dt.date(2020, 1, 1)}
    return {
        "id": "test-market",
        "name": "Test market",
        "timezone": "Asia/Shanghai",
        "interval_minutes": 15,
        "currency": "CNY",
        "day_ahead": [
            {
                "gate_closure_local": dt.time(10, 0),
                "gate_closure_day_offset": -1,
                "publication_local": dt.time(17, 0),
                "publication_day_offset": -1,
                "interval_minutes": 15,
                **source,
            }
        ],
        "real_time": [{"settlement_interval_minutes": 15, **source}],
        "price_limits": [{"floor_per_mwh": 0.0, "cap_per_mwh": 1500.0, **source}],
        "bidding": [
            {
                "mode": "price_quantity",
                "max_segments": 10,
                "min_lot_mw": 0.1,
                "price_tick_per_mwh": 0.01,
                **source,
            }
        ],
        "settlement": [{"rule": "two_settlement", **source}],
        "real_time_products": [
            {
                "id": "rt-energy",
                "kind": "energy_offer",
                "period_minutes": 15,
                "settlement_minutes": 15,
                "gate_minutes_before": 60,
                "gate_anchor": "period",
                "max_segments": 10,
                "min_lot_mw": 0.1,
                "price_tick_per_mwh": 0.01,
                "floor_per_mwh": -80.0,
                "cap_per_mwh": 1500.0,
                "price_columns": ["rt_price"],
                "has_price_data": True,
                **source,
            },
            {
                "id": "ida1",
                "kind": "intraday_auction",
                "period_minutes": 15,
                "settlement_minutes": 15,
                "sessions": [
                    {
                        "name": "IDA1",
                        "gate_local": dt.time(15, 0),
                        "gate_day_offset": -1,
                        "delivery_start_local": dt.time(0, 0),
                        "delivery_end_local": dt.time(0, 0),
                    }
                ],
                "max_segments": 256,
                "min_lot_mw": 0.1,
                "floor_per_mwh": -9999.0,
                "cap_per_mwh": 9999.0,
                "price_columns": ["ida1_price"],
                "has_price_data": False,
                **source,
            },
        ],
    }


def _park() -> dict[str, Any]:
    return {
        "id": "test-park",
        "name": "Test park",
        "market": "test-market",
        "timezone": "Asia/Shanghai",
        "grid": {"import_limit_kw": 8000.0, "export_limit_kw": 5000.0},
        "carbon_budget": {"daily_tco2": 12.0, "penalty_per_t": 1000.0},
        "fuels": [
            {
                "name": "natural gas",
                "unit": "m3",
                "quantity_per_year": 1000.0,
                "emission_factor_tco2_per_unit": 0.002,
                "tce_per_unit": 0.0012,
                "source": "test values",
            },
            {
                "name": "diesel",
                "unit": "t",
                "quantity_per_day": 0.1,
                "emission_factor_tco2_per_unit": 3.1,
                "tce_per_unit": 1.46,
                "source": "test values",
            },
        ],
        "heat_levels": [
            {
                "id": "water",
                "temperature_c": 55.0,
                "demand_kw": 10.0,
                "demand_profile": {"path": "load.csv", "scale": 1.0},
                "space_heating": {"annual_kwh": 1.0e5, "weather": {"path": "pv.csv", "scale": 1.0}},
            },
            {"id": "steam", "temperature_c": 300.0, "demand_kw": 10.0},
        ],
        "assets": [
            {
                "id": "bess",
                "type": "battery",
                "power_kw": 2000.0,
                "charge_power_kw": 1500.0,
                "discharge_power_kw": 1500.0,
                "energy_kwh": 4000.0,
                "adapter": {"type": "modbus-sunspec", "host": "127.0.0.1"},
            },
            {
                "id": "hub",
                "type": "ev_charging",
                "chargers": 4,
                "charger_power_kw": 50.0,
                "hub_power_kw": 150.0,
                "sessions": {"path": "sessions.csv", "scale": 1.0},
                "adapter": {"type": "ocpp", "charge_point_ids": ["cp-1"]},
            },
            {
                "id": "furnace",
                "type": "flexible_process",
                "max_power_kw": 7000.0,
                "shift_up_kw": 1000.0,
                "shift_down_kw": 1000.0,
                "recovery_window_h": 4.0,
                "ramp_limit_kw_per_min": 100.0,
                "baseline": {"path": "load.csv", "scale": 1.0},
                "adapter": {"type": "http", "base_url": "http://127.0.0.1:8080"},
            },
            {
                "id": "press",
                "type": "flexible_process",
                "max_power_kw": 2000.0,
                "shift_up_kw": 500.0,
                "shift_down_kw": 500.0,
                "recovery_window_h": 4.0,
                "baseline": {"path": "load.csv", "scale": 1.0},
                "adapter": {
                    "type": "modbus",
                    "host": "127.0.0.1",
                    "setpoint_register": {"address": 100, "scale": 0.1},
                    "registers": {
                        "consumption_kw": {"address": 0, "kind": "input"},
                        "consumed_kwh": {"address": 2, "type": "uint32"},
                    },
                },
            },
            {
                "id": "pv",
                "type": "pv",
                "capacity_kwp": 3000.0,
                "inverter_kw": 2800.0,
                "profile": {"path": "pv.csv", "scale": 1.0},
                "adapter": {"type": "simulated", "seed": 1, "telemetry_noise_kw": 0.0},
            },
            {
                "id": "hp",
                "type": "heat_pump",
                "power_kw": 100.0,
                "level": "water",
                "max_sink_temperature_c": 80.0,
                "source_temperature_c": 20.0,
                "cop": {"model": "curve", "carnot_efficiency": 0.45, "lift_k": [20.0, 40.0],
                        "cop": [4.0, 3.0], "cop_max": 8.0},
                "adapter": {"type": "simulated"},
            },
            {
                "id": "boiler",
                "type": "electric_boiler",
                "power_kw": 100.0,
                "level": "steam",
                "max_temperature_c": 350.0,
                "efficiency": 0.99,
                "adapter": {"type": "simulated"},
            },
            {
                "id": "tank",
                "type": "thermal_storage",
                "level": "water",
                "capacity_kwh": 100.0,
                "charge_kw": 50.0,
                "discharge_kw": 50.0,
                "standing_loss_pct_per_h": 0.5,
                "max_temperature_c": 95.0,
                "adapter": {"type": "simulated"},
            },
            {
                "id": "ely",
                "type": "electrolyser",
                "power_kw": 100.0,
                "kwh_per_kg": 55.0,
                "min_load_fraction": 0.1,
                "standby_kw": 1.0,
                "ramp_limit_kw_per_min": 10.0,
                "heat_recovery_fraction": 0.1,
                "heat_recovery_level": "water",
                "heat_recovery_temperature_c": 60.0,
                "adapter": {"type": "simulated"},
            },
            {"id": "h2", "type": "hydrogen_storage", "capacity_kg": 100.0, "offtake_kg_per_h": 1.0,
             "adapter": {"type": "simulated"}},
        ],
    }


# --------------------------------------------------------------------------- a tiny TOML writer


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _write_toml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items()), "utf-8")


# --------------------------------------------------------------------------- numeric fields


def _members(annotation: Any) -> list[Any]:
    """The types inside Optional / Union / Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _model_for(candidates: list[Any], data: dict[str, Any]) -> type[BaseModel]:
    classes = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    if len(classes) == 1:
        return classes[0]
    for cls in classes:  # a discriminated union: pick by the 'type' tag
        if data.get("type") in typing.get_args(cls.model_fields["type"].annotation):
            return cls
    raise AssertionError(f"no model among {classes} for {data}")


def _numeric_paths(
    model: type[BaseModel], data: dict[str, Any], prefix: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], type[BaseModel], str]]:
    """(path in the document, model class, field name) for every int/float field."""
    for name, info in model.model_fields.items():
        members = _members(info.annotation)
        if any(m in (float, int) for m in members):
            yield (*prefix, name), model, name
            continue
        list_items = [typing.get_args(m)[0] for m in members if typing.get_origin(m) is list]
        if list_items and name in data and isinstance(data[name][0], dict):
            for i, item in enumerate(data[name]):
                sub = _model_for(_members(list_items[0]), item)
                yield from _numeric_paths(sub, item, (*prefix, name, i))
        elif any(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            if name not in data and info.default is None:
                continue  # an optional table left out (no default to fill): nothing to walk
            item = data.setdefault(name, {})
            yield from _numeric_paths(_model_for(members, item), item, (*prefix, name))


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


BASES: dict[str, tuple[type[BaseModel], Any]] = {
    "vpp.toml": (Settings, _settings),
    "markets/test-market.toml": (MarketConfig, _market),
    "parks/test-park.toml": (ParkConfig, _park),
}


def _cases() -> list[tuple[str, tuple[Any, ...]]]:
    cases = []
    for file, (model, base) in BASES.items():
        for path, _, _ in _numeric_paths(model, base()):
            cases.append((file, path))
    return cases


CASES = _cases()


def _write_project(root: Path, override: tuple[str, tuple[Any, ...], float] | None = None) -> None:
    for file, (_, base) in BASES.items():
        data = base()
        list(_numeric_paths(BASES[file][0], data))  # fills default sub-tables
        if override is not None and override[0] == file:
            _set(data, override[1], override[2])
        _write_toml(root / file, data)
    for name in ("sessions.csv", "load.csv", "pv.csv"):
        (root / "parks" / name).write_text("x\n", "utf-8")


def test_every_spec_with_numeric_fields_is_covered() -> None:
    covered = {
        (model, name)
        for file, (m, base) in BASES.items()
        for _, model, name in _numeric_paths(m, base())
    }
    specs = [
        cls
        for cls in vars(models).values()
        if isinstance(cls, type) and issubclass(cls, Spec) and cls is not models.MarketRules
    ]
    missing = []
    for cls in specs:
        for name, info in cls.model_fields.items():
            numeric = any(m in (float, int) for m in _members(info.annotation))
            if numeric and not any(issubclass(m, cls) and n == name for m, n in covered):
                missing.append(f"{cls.__name__}.{name}")
    assert not missing, f"numeric fields not in the base documents: {missing}"
    assert len(CASES) > 50


def test_base_project_is_valid(tmp_path: Path) -> None:
    _write_project(tmp_path)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("file", "path"), CASES, ids=[f"{f}:{_dotted(p)}" for f, p in CASES])
def test_inf_and_nan_are_refused_in_every_numeric_field(
    tmp_path: Path, file: str, path: tuple[Any, ...]
) -> None:
    for value in BAD_VALUES:
        root = tmp_path / repr(value)
        _write_project(root, (file, path, value))
        before = (root / file).read_bytes()
        result = runner.invoke(app, ["validate", str(root)])
        assert result.exit_code == 1, result.output
        expected = f"{root / file}: {_dotted(path)} = {value!r}: {FINITE}"
        assert expected in result.output.splitlines(), result.output
        assert "Traceback" not in result.output
        assert (root / file).read_bytes() == before  # validation never rewrites a file


def test_inf_power_no_longer_reaches_vpp_parks(tmp_path: Path) -> None:
    """The issue's case: `power_kw = inf` validated, was stored as null and crashed `vpp parks`."""
    _write_project(tmp_path, ("parks/test-park.toml", ("assets", 0, "power_kw"), math.inf))
    result = runner.invoke(app, ["parks", "--config", str(tmp_path)])
    assert result.exit_code == 1, result.output
    # One error, so the CLI prints it as its one `error:` line.
    assert result.output.splitlines() == [
        f"error: {tmp_path / 'parks/test-park.toml'}: assets[0].power_kw = inf: {FINITE}"
    ]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- cross-file


def test_park_in_another_clock_than_its_market_is_refused_naming_both_files(
    tmp_path: Path,
) -> None:
    _write_project(tmp_path, ("parks/test-park.toml", ("timezone",), "America/Chicago"))
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if "timezone" in x]
    park_file, market_file = (
        tmp_path / "parks/test-park.toml",
        tmp_path / "markets/test-market.toml",
    )
    assert line.startswith(f"{park_file}: timezone = 'America/Chicago': differs from market ")
    assert str(market_file) in line
    assert "'Asia/Shanghai'" in line
    # a single park file is checked against ../markets too
    single = runner.invoke(app, ["validate", str(park_file)])
    assert single.exit_code == 1
    assert str(market_file) in single.output


def test_park_in_a_zone_with_the_same_clock_is_accepted(tmp_path: Path) -> None:
    """Asia/Chongqing keeps Shanghai's clock: a different name, not a different day."""
    _write_project(tmp_path, ("parks/test-park.toml", ("timezone",), "Asia/Chongqing"))
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_parks_smaller_than_one_bid_lot_are_refused(tmp_path: Path) -> None:
    _write_project(tmp_path)
    park = tmp_path / "parks/test-park.toml"
    data = _park()
    data["grid"] = {"import_limit_kw": 40.0, "export_limit_kw": 0.0}
    data["assets"] = data["assets"][:1]
    data["heat_levels"] = []  # the heat system went with its assets
    data["assets"][0].update(power_kw=40.0, charge_power_kw=None, discharge_power_kw=None)
    del data["assets"][0]["charge_power_kw"], data["assets"][0]["discharge_power_kw"]
    _write_toml(park, data)
    result = runner.invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    line = f"{park}: grid.import_limit_kw = 40.0: the parks of market test-market reach at most"
    assert any(x.startswith(line) for x in result.output.splitlines()), result.output
    assert "less than one bid lot of 100 kW" in result.output
    assert str(tmp_path / "markets/test-market.toml") in result.output


def test_copy_helpers_do_not_share_state() -> None:
    a, b = _park(), copy.deepcopy(_park())
    _set(a, ("grid", "import_limit_kw"), 1.0)
    assert b["grid"]["import_limit_kw"] == 8000.0
