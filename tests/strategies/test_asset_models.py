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
