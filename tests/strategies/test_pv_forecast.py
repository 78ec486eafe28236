"""The PV forecast uses only weather known at the decision time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from strategies.pv import PV_FORECAST_DAYS
from strategies.state import load_inputs
from vpp.config import load_config
from vpp.profiles import pv_available_kw
from vpp.timeutil import day_intervals_utc

REPO = Path(__file__).resolve().parents[2]


def test_pv_forecast_is_the_average_of_days_before_the_decision() -> None:
    cfg = load_config(REPO / "config")
    park = cfg.parks["jinan-north"]
    folder = cfg.park_files[park.id].parent
    pv = next(a for a in park.assets if a.type == "pv")
    day = dt.date(2025, 5, 12)
    index = day_intervals_utc(day, park.timezone, 15)
    decided = pd.Timestamp("2025-05-11 09:30", tz=park.timezone).to_pydatetime()
    forecast = load_inputs(park, folder, index, decision_time=decided).pv_available_kw[pv.id]
    realized = load_inputs(park, folder, index).pv_available_kw[pv.id]
    # Days 2025-05-10 back to 2025-05-04: whole days before the decision day.
    past = [
        pv_available_kw(pv, folder, index - pd.Timedelta(days=1 + k), park.timezone).to_numpy()
        for k in range(1, PV_FORECAST_DAYS + 1)
    ]
    np.testing.assert_allclose(forecast, np.mean(past, axis=0))
    assert not np.allclose(forecast, realized)  # the day's own weather is not known
    np.testing.assert_allclose(realized, pv_available_kw(pv, folder, index, park.timezone).to_numpy())
