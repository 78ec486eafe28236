"""The strategy side of the asset-type registry: each type's module provides an AssetModel."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies import battery
from strategies.assets import AssetModel, model_for, specs_of
from strategies.state import AssetState, ParkInputs
from vpp.config.models import BatterySpec


def _battery() -> BatterySpec:
    return BatterySpec(
        id="b1", type="battery", energy_kwh=2000.0, power_kw=1000.0, soc_initial=0.5
    )


def test_model_for_goes_through_the_registry() -> None:
    spec = _battery()
    model = model_for(spec)
    assert model is battery.MODEL
    assert isinstance(model, AssetModel)
    assert specs_of([spec], "strategies.battery") == [spec]
    assert specs_of([spec], "strategies.ev") == []


def test_battery_model_state_and_idle() -> None:
    spec = _battery()
    model = model_for(spec)
    assert model.initial_state(spec) == AssetState(soc_kwh=1000.0)
    index = pd.date_range("2025-05-01", periods=4, freq="15min", tz="UTC")
    power, soc = model.idle_power_kw(
        [spec], ParkInputs(index), {"b1": AssetState(soc_kwh=300.0)}, np.full(4, 0.25),
        np.zeros(4),
    )
    assert power["b1"].tolist() == [0.0] * 4
    assert soc["b1"].tolist() == [300.0] * 4
    assert battery.measured_soc_kwh(spec, None) == 1000.0


def test_every_registered_type_has_a_model_with_its_own_build_rank() -> None:
    from vpp.assets import ASSET_TYPES

    models = [entry.model_module().MODEL for entry in ASSET_TYPES.values()]
    assert all(isinstance(m, AssetModel) for m in models)
    ranks = [m.build_rank for m in models]
    assert len(set(ranks)) == len(ranks)
    # the order the golden numbers were pinned with
    assert sorted(models, key=lambda m: m.build_rank)[0].asset_type == "battery"
    assert [m.asset_type for m in sorted(models, key=lambda m: m.build_rank)] == [
        "battery", "process", "pv", "ev", "heat_pump", "boiler", "thermal_storage",
        "electrolyser", "hydrogen_storage",
    ]


def test_pv_idles_into_the_export_room_the_others_leave() -> None:
    from strategies import pv as pv_module
    from vpp.config.models import PvSpec

    fixed = PvSpec.model_validate(
        {"id": "pv-fixed", "type": "pv", "capacity_kwp": 100.0, "profile": {"path": "x.csv"},
         "curtailable": False}
    )
    flexible = fixed.model_copy(update={"id": "pv-flex", "curtailable": True})
    index = pd.date_range("2025-05-01", periods=3, freq="15min", tz="UTC")
    inputs = ParkInputs(index, pv_available_kw={
        "pv-fixed": np.array([50.0, 50.0, 50.0]), "pv-flex": np.array([100.0, 100.0, 0.0])
    })
    power, soc = pv_module.MODEL.idle_power_kw(
        [fixed, flexible], inputs, None, np.full(3, 0.25), np.array([200.0, 100.0, 10.0])
    )
    assert power["pv-fixed"].tolist() == [50.0, 50.0, 50.0]  # cannot be curtailed
    assert power["pv-flex"].tolist() == [100.0, 50.0, 0.0]
    assert soc == {}
