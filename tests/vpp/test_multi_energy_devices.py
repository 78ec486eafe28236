"""simulated_devices couples a park's stores to its converters and starts them at their soc."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vpp.config.models import ParkConfig
from vpp.runtime.devices import simulated_devices
from vpp.runtime.operator import MarketPortfolio
from vpp.types import Setpoint

T0 = dt.datetime(2025, 6, 2, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def now(self) -> dt.datetime:
        return self.t


def _park() -> ParkConfig:
    return ParkConfig.model_validate(
        {
            "id": "heat-park",
            "name": "Heat",
            "market": "m",
            "timezone": "UTC",
            "grid": {"import_limit_kw": 10000, "export_limit_kw": 10000},
            "heat_levels": [{"id": "hot_water", "temperature_c": 60, "demand_kw": 400}],
            "assets": [
                {
                    "id": "eb",
                    "type": "electric_boiler",
                    "power_kw": 1000,
                    "level": "hot_water",
                    "max_temperature_c": 120,
                    "efficiency": 1.0,
                },
                {
                    "id": "tank",
                    "type": "thermal_storage",
                    "level": "hot_water",
                    "capacity_kwh": 4000,
                    "charge_kw": 1000,
                    "discharge_kw": 1000,
                    "standing_loss_pct_per_h": 0,
                },
                {"id": "ely", "type": "electrolyser", "power_kw": 550, "kwh_per_kg": 55,
                 "standby_kw": 0},
                {"id": "h2", "type": "hydrogen_storage", "capacity_kg": 100,
                 "offtake_kg_per_h": 4},
            ],
        }
    )


def test_stores_float_on_the_converters_of_their_park(tmp_path: Path) -> None:
    park = _park()
    portfolio: Any = MarketPortfolio(None, (park,), {park.id: tmp_path}, "vpp-m")  # type: ignore[arg-type]
    index = pd.date_range(T0, periods=4, freq="1h", tz="UTC")
    clock = Clock()
    soc = {("heat-park", "tank"): 0.25, ("heat-park", "h2"): 0.1}
    devices, _ = simulated_devices(portfolio, clock, index, soc)
    assert devices[("heat-park", "tank")].read().soc == pytest.approx(0.25)
    assert devices[("heat-park", "h2")].read().soc == pytest.approx(0.1)
    devices[("heat-park", "eb")].write(Setpoint("heat-park", "eb", T0, -1000))
    devices[("heat-park", "ely")].write(Setpoint("heat-park", "ely", T0, -550))
    clock.t = T0 + dt.timedelta(hours=1)
    tank = devices[("heat-park", "tank")].read()
    assert tank.extra["charged_kwh"] == pytest.approx(600)  # 1000 kW_th against 400 demand
    assert tank.soc == pytest.approx((1000 + 600) / 4000)
    h2 = devices[("heat-park", "h2")].read()
    assert h2.extra["charged_kg"] == pytest.approx(10 - 4)
    assert h2.soc == pytest.approx((10 + 6) / 100)
