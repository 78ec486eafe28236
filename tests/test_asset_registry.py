"""The asset-type registry: every entry resolves, and a new type plugs in without other code changes."""

from __future__ import annotations

import ast
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from pydantic import Field

import vpp.assets
from adapters import SimulatedDevice, create, simulated_device
from adapters.base import Reading
from adapters.simulated import simulated_class
from strategies.assets import Stack, by_model, model_for
from strategies.foresight import realized_states
from strategies.schedule import idle_schedule, optimise_schedule
from strategies.state import AssetState, ParkInputs, initial_state, load_inputs
from tests.strategies.conftest import battery, make_park, utc_index
from vpp.assets import ASSET_TYPES, AssetBase, AssetType, asset_type, assets_of_type
from vpp.config import load_config, models
from vpp.config.loader import park_cross_issues
from vpp.errors import ConfigIssue
from vpp.portfolio import capability, park_capability
from vpp.runtime.clock import ReplayClock
from vpp.runtime.operator import exported_kwh
from vpp.types import Telemetry

ROOT = Path(__file__).resolve().parents[1]
T0 = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize("name", list(ASSET_TYPES))
def test_every_entry_resolves_in_every_layer(name: str) -> None:
    entry = asset_type(name)
    assert entry.name == name
    assert issubclass(entry.spec, AssetBase)
    assert entry.model_module().__name__ == entry.model
    physics = entry.physics_module()
    assert physics.__name__ == entry.physics
    assert issubclass(physics.DEVICE, SimulatedDevice)


@pytest.mark.parametrize("name", list(ASSET_TYPES))
def test_the_spec_type_literal_is_its_registry_key(name: str) -> None:
    spec = ASSET_TYPES[name].spec
    assert get_args(spec.model_fields["type"].annotation) == (name,)


@pytest.mark.parametrize("name", list(ASSET_TYPES))
def test_the_simulated_device_reports_the_registers_its_type_is_metered_from(name: str) -> None:
    entry = ASSET_TYPES[name]
    device = entry.physics_module().DEVICE
    assert set(entry.spec.meter_registers) <= set(device.registers)
    assert set(entry.spec.throughput_registers) <= set(device.registers)


def test_the_config_union_and_type_names_come_from_the_registry() -> None:
    union = get_args(get_args(models.AssetSpec)[0])
    assert union == tuple(entry.spec for entry in ASSET_TYPES.values())
    assert (
        models.ASSET_TYPES
        == tuple(ASSET_TYPES)
        == ("battery", "ev_charging", "flexible_process", "pv", "heat_pump", "electric_boiler",
            "thermal_storage", "electrolyser", "hydrogen_storage")
    )
    # every public name stays importable from where it was
    for name in ("BatterySpec", "EvChargingSpec", "FlexibleProcessSpec", "PvSpec", "AssetBase"):
        assert getattr(models, name) is getattr(vpp.assets, name)


def test_unknown_type_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: battery, ev_charging, flexible_process, pv, heat_p"):
        asset_type("grain_dryer")


def test_assets_of_type_keeps_order_and_picks_by_spec() -> None:
    cfg = load_config("config")
    assets = [a for park in cfg.parks.values() for a in park.assets]
    batteries = assets_of_type(assets, vpp.assets.BatterySpec)
    assert batteries == [a for a in assets if a.type == "battery"]
    assert batteries


def test_shipped_assets_meter_with_their_types_sign() -> None:
    """Export is > 0 for what an asset sells: PV produces, loads and chargers draw."""
    cfg = load_config("config")
    registers = {"charged_kwh": 2.0, "discharged_kwh": 5.0, "produced_kwh": 7.0}
    registers |= {"consumed_kwh": 11.0, "delivered_kwh": 13.0}
    expected = {
        "battery": 3.0, "pv": 7.0, "flexible_process": -11.0, "ev_charging": -13.0,
        "heat_pump": -11.0, "electric_boiler": -11.0, "electrolyser": -11.0,
        "thermal_storage": None, "hydrogen_storage": None,  # passive at the grid: no meter
    }
    seen = set()
    for park in cfg.parks.values():
        for asset in park.assets:
            reading = Telemetry(park.id, asset.id, T0, None, extra=registers)
            assert exported_kwh(asset, reading) == expected[asset.type]
            assert exported_kwh(asset, Telemetry(park.id, asset.id, T0, None, extra={})) is None
            seen.add(asset.type)
    assert seen == set(ASSET_TYPES)


def test_shipped_assets_take_setpoints_as_their_type_says() -> None:
    cfg = load_config("config")
    kinds = {
        "battery": "power", "flexible_process": "power", "ev_charging": "import_cap",
        "heat_pump": "power", "electric_boiler": "power", "electrolyser": "power",
        "thermal_storage": "none", "hydrogen_storage": "none",
    }
    for park in cfg.parks.values():
        for asset in park.assets:
            low, high = asset.setpoint_limits_kw
            assert low <= 0 <= high
            assert (low, high) == (-asset.max_import_kw, asset.max_export_kw)
            if asset.type == "pv":
                assert asset.setpoint_kind == ("export_cap" if asset.curtailable else "none")
            else:
                assert asset.setpoint_kind == kinds[asset.type]


# --------------------------------------------------------------------------- a fifth type


class GrainDryerSpec(AssetBase):
    """A grain dryer that can pause (a test type: not in the shipped registry)."""

    type: Literal["grain_dryer"]
    power_kw: float = Field(gt=0, description="Electrical power at full load [kW]")
    pause_h: float = Field(1.0, gt=0, description="Longest pause [h]")

    meter_registers: ClassVar[tuple[str, ...]] = ("consumed_kwh",)

    @property
    def max_export_kw(self) -> float:
        return 0.0

    @property
    def max_import_kw(self) -> float:
        return self.power_kw

    @property
    def setpoint_kind(self) -> Literal["power"]:
        return "power"

    def describe(self) -> str:
        return f"{self.power_kw:g} kW, pauses up to {self.pause_h:g} h"

    def config_issues(self, file: str, where: str) -> Iterator[ConfigIssue]:
        if self.pause_h > 24:
            yield ConfigIssue(file, f"{where}.pause_h", self.pause_h, "must be <= 24")

    def exported_kwh(self, registers: Mapping[str, Any]) -> Any:
        return -registers["consumed_kwh"]


class SimulatedGrainDryer(SimulatedDevice):
    """Draws its full power, always: the least physics a simulated device needs."""

    registers = ("consumed_kwh",)

    def __init__(self, park_id: str, asset: GrainDryerSpec, spec: Any, *, clock: Any) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.power_kw = asset.power_kw
        self.consumed_kwh = 0.0

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        self.consumed_kwh += self.power_kw * (end - start).total_seconds() / 3600

    def _reading(self, now: dt.datetime) -> Reading:
        return Reading(now, -self.power_kw, None, {"consumed_kwh": self.consumed_kwh})


DEVICE = SimulatedGrainDryer  # this module is the test type's physics module


@dataclass
class GrainDryerBlock:
    stack: Stack
    draw_kw: cp.Variable

    @property
    def power_kw(self) -> cp.Expression:
        return -self.draw_kw


class GrainDryerModel:
    """The test type in the strategy layer: draws up to full power, pauses at most ``pause_h``."""

    asset_type = "grain_dryer"
    build_rank = 9
    idle_after_others = False

    def add_block(self, builder: Any, specs: Any, stack: Stack, request: Any) -> GrainDryerBlock:
        power = stack.tile(np.array([s.power_kw for s in specs]))
        pause = stack.tile(np.array([s.pause_h for s in specs]))
        draw = cp.Variable((stack.rows, len(request.dt_h)), name="grain_dryer_draw_kw",
                           bounds=builder.bounds("grain_dryer:draw-bounds", 0.0,
                                                 np.repeat(power[:, None], len(request.dt_h), 1)))
        needed = power * (request.dt_h.sum() - pause)
        builder.add("grain_dryer", "energy", "min", stack.labels, needed - draw @ request.dt_h, "<=")
        return GrainDryerBlock(stack, draw)

    def soc_kwh(self, block: Any, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(self, block: Any, state: Any, position: int) -> None:
        return None

    def idle_power_kw(self, specs: Any, inputs: Any, state: Any, dt_h: Any, headroom_kw: Any) -> Any:
        return {s.id: np.full(len(dt_h), -s.power_kw) for s in specs}, {}

    def initial_state(self, spec: Any) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: Any, request: Any) -> Mapping[str, Any]:
        return {}

    def realized_state(self, spec: Any, previous: AssetState, request: Any) -> AssetState | None:
        return None


MODEL = GrainDryerModel()  # ... and its strategy module


@pytest.fixture
def grain_dryer(monkeypatch: pytest.MonkeyPatch) -> GrainDryerSpec:
    entry = AssetType("grain_dryer", GrainDryerSpec, __name__, __name__)
    monkeypatch.setitem(ASSET_TYPES, "grain_dryer", entry)
    return GrainDryerSpec.model_validate(
        {"id": "dryer-1", "type": "grain_dryer", "power_kw": 300, "pause_h": 30}
    )


def test_a_fifth_type_is_described_checked_metered_and_simulated(grain_dryer: GrainDryerSpec) -> None:
    cfg = load_config("config")
    park = next(iter(cfg.parks.values()))
    park = park.model_construct(**{**dict(park), "assets": [*park.assets, grain_dryer]})

    nameplate = capability(park.id, grain_dryer)
    assert (nameplate.type, nameplate.max_export_kw, nameplate.max_import_kw) == (
        "grain_dryer",
        0.0,
        300.0,
    )
    assert nameplate.summary == "300 kW, pauses up to 30 h"
    assert nameplate.energy_kwh is None
    assert park_capability(park).assets[-1] == nameplate

    issues = list(park_cross_issues("parks/p.toml", park, ROOT / "config" / "parks"))
    where = f"assets[{len(park.assets) - 1}].pause_h"
    assert [(i.field, i.value) for i in issues] == [(where, 30)]

    reading = Telemetry(park.id, "dryer-1", T0, None, extra={"consumed_kwh": 4.0})
    assert exported_kwh(grain_dryer, reading) == -4.0

    clock = ReplayClock(T0)
    assert simulated_class(grain_dryer) is SimulatedGrainDryer
    device = simulated_device(park.id, grain_dryer, grain_dryer.adapter, clock=clock)
    assert isinstance(device, SimulatedGrainDryer)
    device.connect()
    clock.advance_to(T0 + dt.timedelta(minutes=30))
    assert exported_kwh(grain_dryer, device.read()) == pytest.approx(-150.0)
    limits = device.capabilities
    assert (limits.setpoint_kind, limits.min_kw, limits.max_kw) == ("power", -300.0, 0.0)
    assert not limits.reports_soc
    assert isinstance(create(park, grain_dryer, clock=clock), SimulatedGrainDryer)
    assert grain_dryer.simulation_inputs(ROOT, pd.DatetimeIndex([T0]), "UTC", T0, T0) == {}


def test_a_fifth_type_is_planned_idled_and_stated_by_the_strategies(
    grain_dryer: GrainDryerSpec,
) -> None:
    """strategies plans, falls back, states and forecasts a park with the new type unchanged."""
    pump = grain_dryer.model_copy(update={"pause_h": 1.0})
    base = make_park(battery(power_kw=100.0, energy_kwh=200.0, soc_initial=0.5))
    park = base.model_construct(**{**dict(base), "assets": [*base.assets, pump]})
    index = utc_index(4)
    dt_h = np.ones(4)
    inputs = {park.id: ParkInputs(index)}
    prices = np.array([50.0, 10.0, 80.0, 20.0])
    assert model_for(pump) is MODEL
    assert [m.asset_type for m, _ in by_model(park.assets)] == ["battery", "grain_dryer"]

    plan = optimise_schedule([park], inputs, None, dt_h, prices, on_failure="raise")
    draw = -plan.asset_power_kw[(park.id, "dryer-1")].to_numpy()
    assert draw == pytest.approx([300.0, 300.0, 0.0, 300.0], abs=1e-6)  # pauses in the dearest hour
    battery_kw = plan.asset_power_kw[(park.id, "bess")].to_numpy()
    assert plan.park_power_kw[park.id].to_numpy() == pytest.approx(battery_kw - draw, abs=1e-6)

    idle = idle_schedule([park], inputs, None, dt_h)
    assert idle.asset_power_kw[(park.id, "dryer-1")].tolist() == [-300.0] * 4
    assert initial_state(park)["dryer-1"] == AssetState()
    assert load_inputs(park, ROOT / "config", index).baseline_kw == {}
    assert realized_states(park, ROOT / "config", index)["dryer-1"] == AssetState()


# --------------------------------------------------------------------------- no dispatch


def test_no_isinstance_on_an_asset_spec_in_vpp_adapters_and_bench() -> None:
    """Outside the registry (``vpp.assets``) nothing asks which spec class an asset has."""
    names = {entry.spec.__name__ for entry in ASSET_TYPES.values()}
    found = []
    for package in ("vpp", "adapters", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "vpp" / "assets"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                    named = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                    if named & names:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
