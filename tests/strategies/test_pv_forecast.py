"""The PV forecast uses only weather known at the decision time: the recent mean (default)
and the pvlib clear-sky forecast scaled by the recent clearness."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import strategies.pv as pv_module
from strategies.pv import PV_FORECAST_DAYS
from strategies.pv_forecast import ClearSkyForecaster, clear_sky_forecast_kw
from strategies.state import load_inputs
from vpp.config import load_config
from vpp.config.models import ParkConfig
from vpp.errors import DataQualityError, LookAheadError
from vpp.profiles import pv_available_kw, pv_clear_sky_kw, pv_reference_frame, tmy3_site
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


# --------------------------------------------------------------------------- clear sky (pvlib)

TMY3_HEADER_ROWS = 2


def _clear_sky_park(weather: Path | None = None, **pv_fields: Any) -> tuple[ParkConfig, Path]:
    """jinan-north with its PV plant on the clear-sky forecast (and another weather file)."""
    cfg = load_config(REPO / "config")
    park = cfg.parks["jinan-north"]
    folder = cfg.park_files[park.id].parent
    assets = []
    for asset in park.assets:
        if asset.type == "pv":
            update: dict[str, Any] = {"forecast_method": "clear_sky", **pv_fields}
            if weather is not None:
                update["profile"] = asset.profile.model_copy(update={"path": weather})
            asset = asset.model_copy(update=update)
        assets.append(asset)
    return park.model_copy(update={"assets": assets}), folder


def _pv(park: ParkConfig):  # type: ignore[no-untyped-def]
    return next(a for a in park.assets if a.type == "pv")


DAY = dt.date(2025, 5, 12)


def _decision(day: dt.date, timezone: str) -> dt.datetime:
    return pd.Timestamp(f"{day - dt.timedelta(days=1)} 09:30", tz=timezone).to_pydatetime()


def test_tmy3_site_from_the_metadata_line(shared_data: Path) -> None:
    site = tmy3_site(shared_data / "pv" / "tmy3_greensboro_nc_723170.csv")
    assert (site.station, site.latitude_deg, site.longitude_deg) == ("723170", 36.1, -79.95)
    assert (site.utc_offset_h, site.altitude_m, site.timezone) == (-5.0, 273.0, "Etc/GMT+5")


def test_bad_tmy3_metadata_names_the_field(tmp_path: Path, shared_data: Path) -> None:
    lines = (shared_data / "pv" / "tmy3_greensboro_nc_723170.csv").read_text().splitlines()
    lines[0] = lines[0].replace("36.100", "north")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataQualityError, match=r"bad.csv: line 1, field latitude_deg = 'north'"):
        tmy3_site(bad)


def test_clear_sky_is_the_envelope_of_the_realized_output(shared_data: Path) -> None:
    """pvlib's clear sky at the file's site: zero at night, above the output on clear hours,
    and its daily energy is above the realized energy on most days."""
    frame = pv_reference_frame(shared_data / "pv" / "tmy3_greensboro_nc_723170.csv")
    local = frame.index.tz_convert("Etc/GMT+5")
    night = (local.hour < 4) | (local.hour >= 21)
    assert (frame.loc[night, "clear_sky_kw"] == 0).all()
    assert (frame.loc[night, "pv_kw"] == 0).all()
    # Summer noon at 36 N under a clear sky: about 900-1000 W/m2 horizontal, x 0.85 PR.
    june_noon = frame.loc[(local.month == 6) & (local.hour == 12), "clear_sky_kw"]
    assert 700 < june_noon.mean() < 900
    daily = frame.groupby(local.date).sum()
    ratio = daily["pv_kw"] / daily["clear_sky_kw"]
    assert (ratio < 1).mean() > 0.8
    assert 0.5 < ratio.mean() < 0.9


def test_clear_sky_forecast_never_sees_the_delivery_days_weather(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    """Cut test: black out the delivery day in the weather file -- the forecast is unchanged
    (the realized output is not). Spy: every realized output read ends before the decision day."""
    park, folder = _clear_sky_park()
    index = day_intervals_utc(DAY, park.timezone, 15)
    decided = _decision(DAY, park.timezone)
    forecast = load_inputs(park, folder, index, decision_time=decided).pv_available_kw[_pv(park).id]

    source = shared_data / "pv" / "tmy3_greensboro_nc_723170.csv"
    lines = source.read_text().splitlines()
    stamp = DAY.strftime("%m/%d/")
    changed = 0
    for row, line in enumerate(lines[TMY3_HEADER_ROWS:], start=TMY3_HEADER_ROWS):
        fields = line.split(",")
        if fields[0].startswith(stamp):
            fields[4] = "0"  # GHI of the delivery day
            fields[31] = "45.0"  # and a heat wave
            lines[row] = ",".join(fields)
            changed += 1
    assert changed == 24
    blacked = tmp_path / "blacked_out.csv"
    blacked.write_text("\n".join(lines) + "\n")
    cut_park, _ = _clear_sky_park(blacked)
    realized = load_inputs(park, folder, index).pv_available_kw[_pv(park).id]
    realized_cut = load_inputs(cut_park, folder, index).pv_available_kw[_pv(cut_park).id]
    assert realized_cut.max() == 0 < realized.max()  # the change reaches the realized output

    asked: list[pd.DatetimeIndex] = []
    real = pv_module.pv_available_kw

    def spy(spec, config_dir, index, timezone):  # type: ignore[no-untyped-def]
        asked.append(index)
        return real(spec, config_dir, index, timezone)

    monkeypatch.setattr(pv_module, "pv_available_kw", spy)
    cut = load_inputs(cut_park, folder, index, decision_time=decided).pv_available_kw[_pv(park).id]
    np.testing.assert_array_equal(cut, forecast)
    decision_day = pd.Timestamp(decided.date(), tz=park.timezone)
    assert len(asked) == PV_FORECAST_DAYS
    assert all(i[-1] < decision_day for i in asked)
    assert forecast.max() > 0
    assert not np.allclose(forecast, realized)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    day=st.dates(min_value=dt.date(2025, 1, 10), max_value=dt.date(2025, 12, 31)),
    capacity_kwp=st.floats(50, 5000),
    inverter_share=st.floats(0.5, 1.5),
)
def test_clear_sky_forecast_is_zero_at_night_and_within_nameplate(
    day: dt.date, capacity_kwp: float, inverter_share: float
) -> None:
    park, folder = _clear_sky_park(
        capacity_kwp=capacity_kwp, inverter_kw=capacity_kwp * inverter_share
    )
    pv = _pv(park)
    index = day_intervals_utc(day, park.timezone, 15)
    forecast = load_inputs(park, folder, index, decision_time=_decision(day, park.timezone))
    values = forecast.pv_available_kw[pv.id]
    clear = pv_clear_sky_kw(pv, folder, index, park.timezone).to_numpy()
    local = index.tz_convert(park.timezone)
    assert (values >= 0).all()
    assert values.max() <= min(pv.max_export_kw, capacity_kwp) + 1e-9
    assert (values[clear == 0] == 0).all()
    assert (values[(local.hour < 4) | (local.hour >= 21)] == 0).all()


@given(
    past=arrays(float, (3, 8), elements=st.floats(0, 1e4)),
    clear_past=arrays(float, (3, 8), elements=st.floats(0, 1e4)),
    clear=arrays(float, 8, elements=st.floats(0, 1e4)),
    limit_kw=st.floats(1, 1e4),
)
def test_forecast_stays_within_zero_and_the_limit(
    past: np.ndarray, clear_past: np.ndarray, clear: np.ndarray, limit_kw: float
) -> None:
    forecast = clear_sky_forecast_kw(past, clear_past, clear, limit_kw)
    assert ((forecast >= 0) & (forecast <= limit_kw)).all()
    assert (forecast[clear == 0] == 0).all()


def test_clear_sky_forecaster_is_cut_at_the_decision_time(shared_data: Path) -> None:
    """The walk-forward forecaster: the clearness of the complete days before the cut, and
    delivery-day values in the history are refused, never used."""
    frame = pv_reference_frame(shared_data / "pv" / "tmy3_greensboro_nc_723170.csv")
    tz = "Etc/GMT+5"
    day = dt.date(2001, 6, 20)
    index = day_intervals_utc(day, tz, 60)
    cut = pd.Timestamp("2001-06-19 12:00", tz=tz)
    history = frame.loc[frame.index < cut]
    forecaster = ClearSkyForecaster(timezone=tz, scenarios=1)
    forecast = forecaster.forecast(history, index, frame.loc[index, ["clear_sky_kw"]])
    # Complete days before the cut: 06-12 .. 06-18 (06-19 is cut at noon).
    local = frame.index.tz_convert(tz)
    window = (local >= pd.Timestamp("2001-06-12", tz=tz)) & (local < pd.Timestamp("2001-06-19", tz=tz))
    ratio = frame.loc[window, "pv_kw"].sum() / frame.loc[window, "clear_sky_kw"].sum()
    np.testing.assert_allclose(forecast.point.to_numpy(), ratio * frame.loc[index, "clear_sky_kw"])
    with pytest.raises(LookAheadError):
        forecaster.forecast(frame.loc[frame.index <= index[5]], index,
                            frame.loc[index, ["clear_sky_kw"]])


def test_clear_sky_forecaster_never_learns_from_half_a_day(shared_data: Path) -> None:
    """The file's first day cut at noon is no complete day: no clearness, no forecast (the
    walk-forward skips the day) -- never the morning's ratio spread over the afternoon."""
    frame = pv_reference_frame(shared_data / "pv" / "tmy3_greensboro_nc_723170.csv")
    tz = "Etc/GMT+5"
    index = day_intervals_utc(dt.date(2001, 1, 2), tz, 60)
    history = frame.loc[frame.index < pd.Timestamp("2001-01-01 12:00", tz=tz)]
    with pytest.raises(DataQualityError, match="clear_sky forecaster: no usable pv_kw history"):
        ClearSkyForecaster(timezone=tz, scenarios=1).forecast(
            history, index, frame.loc[index, ["clear_sky_kw"]]
        )
