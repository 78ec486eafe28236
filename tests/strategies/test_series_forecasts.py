"""Walk-forward forecasts of measured series (load, EV arriving energy, PV): the readers, and
that nothing known after the decision time reaches a forecast."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strategies import series_decision_time, walk_forward_series
from vpp.profiles import (
    ACN_TIMEZONE,
    STEEL_PLANT_TIMEZONE,
    ev_arrival_energy_kwh,
    load_series_kw,
    pv_reference_frame,
    tmy3_site,
)

LOAD = "load/steel_plant_korea_2018_15min.csv"
SESSIONS = "ev/acn_caltech_sessions_2019-05_2019-12.csv"
WEATHER = "pv/tmy3_greensboro_nc_723170.csv"


def test_load_series_is_power_on_utc_interval_starts(shared_data: Path) -> None:
    load = load_series_kw(shared_data / LOAD)
    assert str(load.index.tz) == "UTC"
    assert len(load) == 365 * 96
    # First row: 01/01/2018 00:15 (interval END, Korea), 3.17 kWh -> 12.68 kW from 00:00 KST.
    assert load.index[0] == pd.Timestamp("2018-01-01 00:00", tz=STEEL_PLANT_TIMEZONE)
    assert load.iloc[0] == pytest.approx(3.17 * 4)


def test_ev_arrival_energy_keeps_every_sessions_energy(shared_data: Path) -> None:
    energy = ev_arrival_energy_kwh(shared_data / SESSIONS)
    raw = pd.read_csv(shared_data / SESSIONS)
    arrival = pd.to_datetime(raw["arrival"], utc=True, format="ISO8601")
    departure = pd.to_datetime(raw["departure"], utc=True, format="ISO8601")
    kept = raw.loc[departure > arrival, "delivered_energy (kWh)"]
    assert energy.sum() == pytest.approx(kept.sum())
    assert (energy >= 0).all()
    local = energy.index.tz_convert(ACN_TIMEZONE)
    assert local[0] == pd.Timestamp("2019-05-01 00:00", tz=ACN_TIMEZONE)
    # 2019-05-01 01:18 PDT: the first session (44.069 kWh) lands in the 01:00 hour.
    assert energy.iloc[1] == pytest.approx(44.069)


def test_decision_time_is_noon_the_day_before() -> None:
    when = series_decision_time(dt.date(2018, 3, 12), STEEL_PLANT_TIMEZONE)
    assert when == pd.Timestamp("2018-03-11 12:00", tz=STEEL_PLANT_TIMEZONE)
    assert when.tzinfo is not None


def _scores(frame: pd.DataFrame, day: dt.date, tz: str, **kwargs) -> list[dict]:  # type: ignore[no-untyped-def]
    return [s.as_dict() for s in walk_forward_series(frame, [day], timezone=tz, **kwargs)]


CASES = {
    "load": (LOAD, STEEL_PLANT_TIMEZONE, "load_kw", dt.date(2018, 3, 14),
             ["persistence", "weekly", "gbm"], {"gbm": {"holiday_country": "KR"}}),
    "ev": (SESSIONS, ACN_TIMEZONE, "arriving_energy_kwh", dt.date(2019, 7, 17),
           ["persistence", "weekly", "rolling_median"], {}),
}


@pytest.mark.parametrize("target", list(CASES))
def test_what_is_known_after_the_decision_never_changes_a_forecast(
    target: str, shared_data: Path
) -> None:
    """Cut test: rewrite every value from the decision time (noon D-1) up to D and after D --
    D's scores do not move; rewrite one value before the decision -- they do."""
    name, tz, column, day, names, options = CASES[target]
    path = shared_data / name
    series = load_series_kw(path) if target == "load" else ev_arrival_energy_kwh(path)
    frame = series.to_frame(column)
    kwargs = {"target": column, "label": target, "forecasters": names, "options": options}
    base = _scores(frame, day, tz, **kwargs)
    decided = pd.Timestamp(series_decision_time(day, tz))
    start, end = (pd.Timestamp(day, tz=tz), pd.Timestamp(day + dt.timedelta(days=1), tz=tz))
    after = ((frame.index >= decided) & (frame.index < start)) | (frame.index >= end)
    changed = frame.copy()
    changed.loc[after, column] = 1e4 * np.random.default_rng(0).random(int(after.sum()))
    assert _scores(changed, day, tz, **kwargs) == base
    before = frame.copy()
    last_known = np.flatnonzero(frame.index < decided)[-1]
    before.iloc[last_known - 24 * 4 * 7 : last_known + 1, 0] += 50.0  # the last known week
    assert _scores(before, day, tz, **kwargs) != base


def test_pv_walk_forward_uses_the_clear_sky_as_known_in_advance(shared_data: Path) -> None:
    path = shared_data / WEATHER
    frame = pv_reference_frame(path)
    tz = tmy3_site(path).timezone
    day = dt.date(2001, 6, 20)
    kwargs = {"target": "pv_kw", "label": "pv", "forecasters": ["recent_mean", "clear_sky"],
              "known_in_advance": ["clear_sky_kw"]}
    base = _scores(frame, day, tz, **kwargs)
    assert [s["forecaster"] for s in base] == ["recent_mean", "clear_sky"]
    decided = pd.Timestamp(series_decision_time(day, tz))
    changed = frame.copy()
    late = (frame.index >= decided) & (frame.index < pd.Timestamp(day, tz=tz))
    changed.loc[late, "pv_kw"] = 0.0  # the realized output after the decision
    assert _scores(changed, day, tz, **kwargs) == base
