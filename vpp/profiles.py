"""Exogenous asset data: process baselines, PV output and EV sessions.

Each reader validates its source file once, where it enters, and maps the
source's year onto the simulated days (``FileSource.align``):

* ``weekday``: the same ISO weekday in the same ISO week of the source year,
  shifted by whole weeks into the source's coverage if needed (industrial
  load and EV arrivals follow the week);
* ``day-of-year``: the same month and day (weather; 29 Feb reads 28 Feb).

Time of day maps by local wall-clock time: the park's local time onto the
source's local time. Resampling to any interval length conserves energy
(average power over each target interval, from the cumulative energy curve),
so 5-, 15- and 60-minute markets all read the same file.

Signs: these readers return **magnitudes** -- ``load_kw`` >= 0 consumed,
``pv_available_kw`` >= 0 generated. Strategy and simulation turn them into
the signed ``power_kw`` of :mod:`vpp.units`.
"""

from __future__ import annotations

import csv
import datetime as dt
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import structlog

from vpp.assets.commodities import (
    HeatLevel,
    SpaceHeating,
    WeatherSource,
    cop_from_lift,
)
from vpp.config.loader import resolve_path
from vpp.config.models import (
    EvChargingSpec,
    FileSource,
    FlexibleProcessSpec,
    HeatPumpSpec,
    LoadProfileSource,
    PvSpec,
)
from vpp.errors import DataQualityError, InputError
from vpp.timeutil import require_aware_index

log = structlog.get_logger(__name__)

_REF_YEAR = 2001  # a non-leap year used to lay weather data out by month/day


# --------------------------------------------------------------------------- helpers


def _source_day(
    target: dt.date, align: str, coverage: tuple[dt.date, dt.date], year: int
) -> dt.date:
    """Map a simulated day onto a day of the source data."""
    first, last = coverage
    if align == "day-of-year":
        day = 28 if (target.month, target.day) == (2, 29) else target.day
        mapped = dt.date(year, target.month, day)
    else:
        week = target.isocalendar().week
        try:
            mapped = dt.date.fromisocalendar(year, week, target.isoweekday())
        except ValueError:  # ISO week 53 does not exist in the source year
            mapped = dt.date.fromisocalendar(year, 52, target.isoweekday())
        while mapped < first:
            mapped += dt.timedelta(days=7)
        while mapped > last:
            mapped -= dt.timedelta(days=7)
    if not first <= mapped <= last:
        raise DataQualityError(f"cannot map {target} into the source's coverage {first}..{last}")
    return mapped


def _local_naive(index: pd.DatetimeIndex, timezone: str) -> pd.DatetimeIndex:
    require_aware_index(index, "index")
    return index.tz_convert(timezone).tz_localize(None).as_unit("ns")


def _interval_length(index: pd.DatetimeIndex) -> pd.Timedelta:
    if len(index) < 2:
        raise InputError("index needs at least two intervals to infer their length")
    steps = np.unique(np.diff(index.as_unit("ns").asi8))
    if len(steps) != 1:
        raise InputError("index must have a constant interval length")
    return pd.Timedelta(int(steps[0]), unit="ns")


def _average_power(
    boundaries_ns: np.ndarray, energy_cum: np.ndarray, starts_ns: np.ndarray, step_ns: int
) -> np.ndarray:
    """Average power over [start, start+step) from a cumulative-energy curve (any units/ns)."""
    e0 = np.interp(starts_ns, boundaries_ns, energy_cum)
    e1 = np.interp(starts_ns + step_ns, boundaries_ns, energy_cum)
    return (e1 - e0) / step_ns


def _mapped_starts(
    index: pd.DatetimeIndex,
    timezone: str,
    source: FileSource,
    coverage: tuple[dt.date, dt.date],
    year: int,
) -> np.ndarray:
    """Naive source-clock start of each target interval, as int64 ns."""
    local = _local_naive(index, timezone)
    days = local.normalize()
    mapping = {
        d: pd.Timestamp(_source_day(d.date(), source.align, coverage, year))
        for d in pd.unique(days)
    }
    mapped_days = pd.DatetimeIndex([mapping[d] for d in days])
    return (mapped_days.as_unit("ns") + (local - days)).asi8


# --------------------------------------------------------------------------- process load


@lru_cache(maxsize=8)
def _read_steel_plant(path: Path, column: str) -> pd.Series:
    """Energy per interval [kWh], indexed by naive local interval END."""
    try:
        frame = pd.read_csv(path, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataQualityError(f"{path}: cannot read: {exc}") from exc
    for name in ("date", column):
        if name not in frame.columns:
            raise DataQualityError(f"{path}: missing column {name!r}")
    stamps = pd.to_datetime(frame["date"], format="%d/%m/%Y %H:%M", errors="coerce")
    bad = stamps.isna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 2
        raise DataQualityError(
            f"{path}: row {row}, column 'date': {frame['date'].iloc[row - 2]!r} is not dd/mm/YYYY HH:MM"
        )
    # Interval-END labels; the row that closes a day is labelled with that day's date and
    # 00:00 (it ends at 24:00), so it moves to the next day's midnight.
    midnight = ((stamps.dt.hour == 0) & (stamps.dt.minute == 0)).astype("int64")
    ends = pd.DatetimeIndex(stamps + pd.to_timedelta(midnight, unit="D")).as_unit("ns")
    step = np.diff(ends.asi8)
    if len(step) == 0 or (step != step[0]).any() or step[0] <= 0:
        row = int(np.flatnonzero(step != step[0])[0]) + 3 if len(step) else 2
        raise DataQualityError(f"{path}: row {row}, column 'date': timestamps not evenly spaced")
    values = pd.to_numeric(frame[column], errors="coerce")
    if values.isna().any():
        row = int(np.flatnonzero(values.isna())[0]) + 2
        raise DataQualityError(f"{path}: row {row}, column {column!r}: not a number")
    if (values < 0).any():
        row = int(np.flatnonzero(values < 0)[0]) + 2
        raise DataQualityError(f"{path}: row {row}, column {column!r}: negative energy")
    return pd.Series(values.to_numpy(float), index=ends, name=column)


def load_kw(
    spec: FlexibleProcessSpec, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> pd.Series:
    """Baseline consumption [kW, >= 0] of a flexible process over ``index`` (UTC starts)."""
    kw = profile_kw(spec.baseline, config_dir, index, timezone)
    return pd.Series(np.minimum(kw, spec.max_power_kw), index=index, name=f"{spec.id}_load_kw")


def profile_kw(
    source: LoadProfileSource, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> np.ndarray:
    """Average power [kW, >= 0] of a load profile file over each interval of ``index``."""
    path = resolve_path(config_dir, source.path)
    if source.format == "steel-plant-uci":
        energy = _read_steel_plant(path, source.column)
    else:  # "csv-kw": columns interval_start (ISO with offset) and the named power column
        energy = _read_csv_kw(path, source.column)
    boundaries = np.concatenate(
        [[energy.index.asi8[0] - (energy.index.asi8[1] - energy.index.asi8[0])], energy.index.asi8]
    )
    cumulative = np.concatenate([[0.0], np.cumsum(energy.to_numpy())])
    first = pd.Timestamp(boundaries[0]).date()
    last = (pd.Timestamp(boundaries[-1]) - pd.Timedelta(1, "ns")).date()
    starts = _mapped_starts(index, timezone, source, (first, last), first.year)
    step = _interval_length(index)
    kwh_per_ns = _average_power(boundaries, cumulative, starts, step.value)
    return np.asarray(kwh_per_ns * 3.6e12 * source.scale, dtype=float)


@lru_cache(maxsize=8)
def _read_csv_kw(path: Path, column: str) -> pd.Series:
    frame = pd.read_csv(path)
    if "interval_start" not in frame or column not in frame:
        raise DataQualityError(f"{path}: needs columns 'interval_start' and {column!r}")
    starts = pd.DatetimeIndex(pd.to_datetime(frame["interval_start"], utc=False)).as_unit("ns")
    if starts.tz is not None:
        starts = starts.tz_localize(None)
    step_h = _interval_length(starts) / pd.Timedelta(hours=1)
    return pd.Series(
        frame[column].to_numpy(float) * step_h, index=starts + _interval_length(starts)
    )


# --------------------------------------------------------------------------- PV


@lru_cache(maxsize=4)
def _read_tmy3(path: Path) -> pd.DataFrame:
    """Hourly GHI [W/m2] and air temperature [C] laid out on the reference year (naive LST)."""
    try:
        frame = pd.read_csv(path, skiprows=1)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataQualityError(f"{path}: cannot read TMY3: {exc}") from exc
    needed = ["Date (MM/DD/YYYY)", "Time (HH:MM)", "GHI (W/m^2)", "Dry-bulb (C)"]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataQualityError(f"{path}: missing TMY3 column(s) {missing}")
    dates = pd.to_datetime(frame[needed[0]], format="%m/%d/%Y", errors="coerce")
    hours = pd.to_numeric(frame[needed[1]].str.slice(0, 2), errors="coerce")
    if dates.isna().any() or hours.isna().any():
        raise DataQualityError(f"{path}: unparseable date or time in TMY3 rows")
    # Hour-ENDING labels 01:00..24:00 in local standard time; lay out on the reference year.
    ends = pd.to_datetime(
        {"year": _REF_YEAR, "month": dates.dt.month, "day": dates.dt.day}
    ) + pd.to_timedelta(hours, unit="h")
    out = pd.DataFrame(
        {
            "ghi_w_per_m2": frame[needed[2]].to_numpy(float),
            "temp_air_c": frame[needed[3]].to_numpy(float),
        },
        index=pd.DatetimeIndex(ends).as_unit("ns"),
    )
    if len(out) != 8760 or not out.index.is_monotonic_increasing:
        raise DataQualityError(f"{path}: a TMY3 file has 8760 hourly rows in order, got {len(out)}")
    return out


@dataclass(frozen=True)
class Tmy3Site:
    """The site of a TMY3 file, from its first (metadata) line."""

    station: str
    name: str
    utc_offset_h: float
    latitude_deg: float
    longitude_deg: float
    altitude_m: float

    @property
    def timezone(self) -> str:
        """The fixed-offset zone of the file's local standard time (``Etc/GMT+5`` for UTC-5)."""
        if self.utc_offset_h != int(self.utc_offset_h):
            raise InputError(
                f"TMY3 site {self.station}: utc offset {self.utc_offset_h:g} h is not a whole "
                "hour; no Etc/GMT zone names it"
            )
        hours = -int(self.utc_offset_h)
        return "UTC" if hours == 0 else f"Etc/GMT{hours:+d}"


@lru_cache(maxsize=4)
def tmy3_site(path: Path) -> Tmy3Site:
    """The site (station, offset of local standard time from UTC, location) of a TMY3 file.

    Line 1 reads ``station,"name",state,utc_offset_h,latitude_deg,longitude_deg,altitude_m``;
    a missing or out-of-range field raises :class:`~vpp.DataQualityError` naming it.
    """
    try:
        with path.open(encoding="utf-8-sig") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataQualityError(f"{path}: cannot read TMY3: {exc}") from exc
    fields = next(csv.reader([first]), [])
    names = ("utc_offset_h", "latitude_deg", "longitude_deg", "altitude_m")
    if len(fields) < 7:
        raise DataQualityError(
            f"{path}: line 1: a TMY3 metadata line has 7 fields (station, name, state, "
            f"{', '.join(names)}), got {len(fields)}: {first.strip()[:80]!r}"
        )
    values: dict[str, float] = {}
    limits = {"utc_offset_h": 14.0, "latitude_deg": 90.0, "longitude_deg": 180.0, "altitude_m": 9000.0}
    for name, text in zip(names, fields[3:7], strict=True):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        low = -500.0 if name == "altitude_m" else -limits[name]
        if not (np.isfinite(value) and low <= value <= limits[name]):
            raise DataQualityError(
                f"{path}: line 1, field {name} = {text!r}: must be a number in "
                f"[{low:g}, {limits[name]:g}]"
            )
        values[name] = value
    return Tmy3Site(fields[0].strip(), fields[1].strip(), **values)


@lru_cache(maxsize=4)
def _clear_sky_ghi(path: Path) -> pd.Series:
    """pvlib Ineichen clear-sky GHI [W/m2] of the TMY3 site, hour-mean on the file's hours.

    Same layout as :func:`_read_tmy3` (naive local standard time, hour-ENDING labels on
    the reference year); each hour is the mean of 12 five-minute midpoints.
    """
    import pvlib  # a heavy import, needed by the clear-sky forecast only

    site = tmy3_site(path)
    ends = _read_tmy3(path).index
    offsets = pd.to_timedelta(np.arange(12) * 5 + 2.5, unit="min") - pd.Timedelta(hours=1)
    points = (ends.repeat(12) + np.tile(offsets, len(ends))).tz_localize(site.timezone)
    location = pvlib.location.Location(
        site.latitude_deg, site.longitude_deg, tz=site.timezone, altitude=site.altitude_m
    )
    with warnings.catch_warnings():
        # pvlib 0.16 reads DatetimeIndex.dayofyear, which pandas >= 3.1 deprecates (renamed
        # day_of_year, same values); nothing of ours to fix, so only that one message is muted.
        warnings.filterwarnings("ignore", message=r"DatetimeIndex\.dayofyear is deprecated")
        ghi = location.get_clearsky(points, model="ineichen")["ghi"].to_numpy(float)
    hourly = ghi.reshape(len(ends), 12).mean(axis=1)
    return pd.Series(np.maximum(hourly, 0.0), index=ends, name="clear_sky_ghi_w_per_m2")


def _hourly_kw_on(
    hourly_kw: np.ndarray, ends: pd.DatetimeIndex, spec: PvSpec, index: pd.DatetimeIndex,
    timezone: str,
) -> np.ndarray:
    """Average power over each interval of ``index`` from hourly DC power on the weather
    file's hour-ending labels, times the performance ratio and the source's scale [kW]."""
    hour_ns = pd.Timedelta(hours=1).value
    boundaries = np.concatenate([[ends.asi8[0] - hour_ns], ends.asi8])
    cumulative = np.concatenate([[0.0], np.cumsum(hourly_kw * hour_ns)])
    coverage = (dt.date(_REF_YEAR, 1, 1), dt.date(_REF_YEAR, 12, 31))
    starts = _mapped_starts(index, timezone, spec.profile, coverage, _REF_YEAR)
    step = _interval_length(index)
    kw = _average_power(boundaries, cumulative, starts, step.value)
    return kw * spec.performance_ratio * spec.profile.scale


def pv_available_kw(
    spec: PvSpec, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> pd.Series:
    """PV output available [kW, >= 0] over ``index`` (UTC interval starts).

    Horizontal irradiance with a performance ratio and a cell-temperature
    derating (-0.4 %/K above 25 C, cell 25 K above air at 1000 W/m2),
    clipped at the inverter. A deliberate simple model: its error is small
    against the weather uncertainty of a day-ahead forecast.
    """
    weather = _read_tmy3(resolve_path(config_dir, spec.profile.path))
    t_cell = weather["temp_air_c"].to_numpy() + weather["ghi_w_per_m2"].to_numpy() / 1000 * 25
    derate = 1 - 0.004 * np.maximum(t_cell - 25, 0)
    dc_kw = spec.capacity_kwp * weather["ghi_w_per_m2"].to_numpy() / 1000 * derate
    kw = _hourly_kw_on(dc_kw, pd.DatetimeIndex(weather.index), spec, index, timezone)
    ac_limit = spec.inverter_kw or spec.capacity_kwp
    return pd.Series(np.clip(kw, 0, ac_limit), index=index, name=f"{spec.id}_pv_kw")


def pv_clear_sky_kw(
    spec: PvSpec, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> pd.Series:
    """PV output under a clear sky [kW, >= 0] over ``index`` (UTC interval starts).

    pvlib's Ineichen clear-sky GHI (Linke turbidity from pvlib's climatology)
    at the site of the TMY3 file's metadata line, through the model of
    :func:`pv_available_kw` for the same horizontal plant (``capacity_kwp``,
    ``performance_ratio``, the source's ``scale`` and day mapping) but at
    25 C cell temperature and *not* clipped at the inverter: a quantity known
    for any day in advance (astronomy and climatology only), the base of the
    clear-sky PV forecast (:mod:`strategies.pv_forecast`), which scales it by
    the recent clearness and clips it.
    """
    path = resolve_path(config_dir, spec.profile.path)
    ghi = _clear_sky_ghi(path)
    dc_kw = spec.capacity_kwp * ghi.to_numpy(float) / 1000
    kw = _hourly_kw_on(dc_kw, pd.DatetimeIndex(ghi.index), spec, index, timezone)
    return pd.Series(np.maximum(kw, 0.0), index=index, name=f"{spec.id}_clear_sky_kw")


# --------------------------------------------------------------------------- EV sessions

SESSION_COLUMNS = (
    "session_id",
    "charger",
    "arrival",
    "departure",
    "stated_departure",
    "requested_energy_kwh",
    "delivered_energy_kwh",
)


@lru_cache(maxsize=4)
def _read_acn(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataQualityError(f"{path}: cannot read ACN sessions: {exc}") from exc
    needed = {
        "arrival": "arrival",
        "departure": "departure",
        "estimated_departure": "stated_departure",
        "requested_energy (kWh)": "requested_energy_kwh",
        "delivered_energy (kWh)": "delivered_energy_kwh",
        "station_id": "station_id",
        "session_id": "session_id",
    }
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataQualityError(f"{path}: missing column(s) {missing}")
    frame = frame[list(needed)].rename(columns=needed)
    for column in ("arrival", "departure", "stated_departure"):
        parsed = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna() & frame[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 2
            raise DataQualityError(
                f"{path}: row {row}, column {column!r}: not a tz-aware timestamp"
            )
        frame[column] = parsed
    frame = frame.dropna(subset=["arrival", "departure"])
    frame = frame[frame["departure"] > frame["arrival"]]
    # The garage's local wall clock, which maps onto the park's.
    frame["arrival_local"] = (
        frame["arrival"].dt.tz_convert("America/Los_Angeles").dt.tz_localize(None)
    )
    return frame.sort_values("arrival").reset_index(drop=True)


def ev_sessions(
    spec: EvChargingSpec, config_dir: Path, start: dt.datetime, end: dt.datetime, timezone: str
) -> pd.DataFrame:
    """Sessions arriving in [start, end) at the park's hub, replayed from the source.

    Each source day maps onto a simulated day (``align``); arrival keeps its
    local wall-clock time and each session keeps its duration, stated
    departure offset and energies (times ``scale``). Sessions are assigned
    to the first free charger; a session that finds every charger busy is
    dropped, as it would be at a full hub (logged as ``ev_sessions_turned_away``).
    Returns the columns in :data:`SESSION_COLUMNS`, times in UTC.
    """
    source = spec.sessions
    acn = _read_acn(resolve_path(config_dir, source.path))
    if source.station_ids:
        acn = acn[acn["station_id"].isin(source.station_ids)]
    first = acn["arrival_local"].min().date()
    last = acn["arrival_local"].max().date()
    start_local = pd.Timestamp(start).tz_convert(timezone)
    end_local = pd.Timestamp(end).tz_convert(timezone)
    rows = []
    day = start_local.date() - dt.timedelta(days=1)  # sessions from yesterday may still be parked
    while day <= end_local.date():
        src = _source_day(day, source.align, (first, last), first.year)
        todays = acn[acn["arrival_local"].dt.date == src]
        for record in todays.itertuples(index=False):
            local_arrival = pd.Timestamp.combine(day, record.arrival_local.time())
            arrival = local_arrival.tz_localize(
                timezone, ambiguous=True, nonexistent="shift_forward"
            )
            arrival = arrival.tz_convert("UTC")
            stated = record.stated_departure
            rows.append(
                (
                    f"{day.isoformat()}/{record.session_id}",
                    arrival,
                    arrival + (record.departure - record.arrival),
                    arrival + (stated - record.arrival) if pd.notna(stated) else pd.NaT,
                    float(record.requested_energy_kwh) * source.scale,
                    float(record.delivered_energy_kwh) * source.scale,
                )
            )
        day += dt.timedelta(days=1)
    frame = pd.DataFrame(
        rows,
        columns=[
            "session_id",
            "arrival",
            "departure",
            "stated_departure",
            "requested_energy_kwh",
            "delivered_energy_kwh",
        ],
    ).sort_values("arrival", kind="stable")
    # Requested energy can be missing or zero in the source; the driver then gets what was
    # actually delivered as the stated need (logged so it is visible, not silent).
    unknown = ~(frame["requested_energy_kwh"] > 0)
    if unknown.any():
        log.info("ev_requested_energy_missing", asset=spec.id, sessions=int(unknown.sum()))
        frame.loc[unknown, "requested_energy_kwh"] = frame.loc[unknown, "delivered_energy_kwh"]
    frame["stated_departure"] = frame["stated_departure"].where(
        frame["stated_departure"] > frame["arrival"], frame["departure"]
    )
    free_at = [pd.Timestamp.min.tz_localize("UTC")] * spec.chargers
    chargers = []
    for arrival, departure in zip(frame["arrival"], frame["departure"], strict=True):
        slot = next((i for i, t in enumerate(free_at) if t <= arrival), None)
        chargers.append(-1 if slot is None else slot)
        if slot is not None:
            free_at[slot] = departure
    frame["charger"] = chargers
    turned_away = int((frame["charger"] < 0).sum())
    if turned_away:
        log.info("ev_sessions_turned_away", asset=spec.id, sessions=turned_away)
    start_utc, end_utc = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    frame = frame[
        (frame["charger"] >= 0) & (frame["departure"] > start_utc) & (frame["arrival"] < end_utc)
    ]
    return frame.loc[:, list(SESSION_COLUMNS)].reset_index(drop=True)


# --------------------------------------------------------------------------- evaluation series

#: Where the shipped load and session sources were measured (their local wall clock).
STEEL_PLANT_TIMEZONE = "Asia/Seoul"
ACN_TIMEZONE = "America/Los_Angeles"


def load_series_kw(
    path: Path, column: str = "Usage_kWh", timezone: str = STEEL_PLANT_TIMEZONE
) -> pd.Series:
    """The measured load of a steel-plant (UCI) file as power [kW, >= 0] on UTC interval starts.

    The file's naive interval-END labels are read on the local clock ``timezone``; power is
    the interval's energy over its length (``energy_kwh / dt_h``).
    """
    energy = _read_steel_plant(path, column)
    step = _interval_length(pd.DatetimeIndex(energy.index))
    try:
        starts = pd.DatetimeIndex(energy.index - step).tz_localize(timezone)
    except (ValueError, TypeError) as exc:  # pytz's Ambiguous/NonExistentTimeError are ValueErrors
        raise DataQualityError(
            f"{path}: column 'date': a local time that {timezone} skips or repeats ({exc}); "
            "the file's clock must be a zone without DST"
        ) from exc
    dt_h = step / pd.Timedelta(hours=1)
    return pd.Series(
        energy.to_numpy(float) / dt_h,
        index=starts.tz_convert("UTC").rename("interval_start"),
        name="load_kw",
    )


def ev_arrival_energy_kwh(
    path: Path, interval_minutes: int = 60, timezone: str = ACN_TIMEZONE
) -> pd.Series:
    """Energy delivered to the sessions arriving in each interval [kWh] of an ACN file.

    On UTC interval starts covering every local day (``timezone``) from the first to the
    last arrival, zero where no session arrived; each session counts in the interval of
    its arrival with its delivered energy (what the hub had to serve).
    """
    sessions = _read_acn(path)
    if sessions.empty:
        raise DataQualityError(f"{path}: no session with an arrival before its departure")
    local = sessions["arrival"].dt.tz_convert(timezone)
    first = local.min().normalize()
    last = local.max().normalize() + pd.Timedelta(days=1)
    starts = pd.date_range(first, last, freq=f"{interval_minutes}min", inclusive="left")
    utc = pd.DatetimeIndex(starts).tz_convert("UTC").rename("interval_start")
    step_ns = pd.Timedelta(minutes=interval_minutes).value
    arrival_ns = pd.DatetimeIndex(sessions["arrival"]).as_unit("ns").asi8
    slot = (arrival_ns - utc.as_unit("ns").asi8[0]) // step_ns
    totals = np.bincount(
        slot, weights=sessions["delivered_energy_kwh"].fillna(0.0).to_numpy(float),
        minlength=len(utc),
    )
    return pd.Series(totals[: len(utc)], index=utc, name="arriving_energy_kwh")


def pv_reference_frame(path: Path, capacity_kwp: float = 1000.0) -> pd.DataFrame:
    """Realized (``pv_kw``) and clear-sky (``clear_sky_kw``) output [kW] of a reference plant.

    A horizontal ``capacity_kwp`` plant with the :class:`~vpp.config.models.PvSpec`
    defaults at the TMY3 file's site, hourly over the file's year laid out on the
    reference year 2001, on UTC interval starts (the site's local standard time is
    the file's clock).
    """
    site = tmy3_site(path)
    spec = PvSpec.model_validate(
        {"id": "reference", "type": "pv", "capacity_kwp": capacity_kwp,
         "profile": {"path": str(path)}}
    )
    tz = site.timezone
    start = pd.Timestamp(f"{_REF_YEAR}-01-01", tz=tz)
    index = pd.date_range(start, start + pd.DateOffset(years=1), freq="60min", inclusive="left")
    index = index.tz_convert("UTC").rename("interval_start")
    return pd.DataFrame(
        {
            "pv_kw": pv_available_kw(spec, path.parent, index, tz).to_numpy(float),
            "clear_sky_kw": pv_clear_sky_kw(spec, path.parent, index, tz).to_numpy(float),
        },
        index=index,
    )


# --------------------------------------------------------------------------- heat


def air_temperature_c(
    source: WeatherSource, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> np.ndarray:
    """Air temperature [degC] of the weather hour each interval of ``index`` starts in."""
    weather = _read_tmy3(resolve_path(config_dir, source.path))
    coverage = (dt.date(_REF_YEAR, 1, 1), dt.date(_REF_YEAR, 12, 31))
    starts = _mapped_starts(index, timezone, source, coverage, _REF_YEAR)
    ends = weather.index.asi8  # hour-ending labels
    position = np.searchsorted(ends, starts, side="right")  # first hour ending after the start
    position = np.clip(position, 0, len(ends) - 1)
    return weather["temp_air_c"].to_numpy(float)[position]


def heat_pump_cop(
    spec: HeatPumpSpec,
    sink_temperature_c: float,
    config_dir: Path,
    index: pd.DatetimeIndex,
    timezone: str,
) -> np.ndarray:
    """COP of a heat pump per interval of ``index`` with its sink at ``sink_temperature_c``."""
    if spec.source_weather is not None:
        source = air_temperature_c(spec.source_weather, config_dir, index, timezone)
    else:
        source = np.full(len(index), float(spec.source_temperature_c or 0.0))
    return cop_from_lift(spec.cop, sink_temperature_c, source)


def heat_demand_kw(
    level: HeatLevel, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> np.ndarray:
    """Heat demand [kW_th, >= 0] of a level over ``index``: constant + profile + space heating."""
    demand = np.full(len(index), float(level.demand_kw))
    if level.demand_profile is not None:
        demand = demand + profile_kw(level.demand_profile, config_dir, index, timezone)
    if level.space_heating is not None:
        demand = demand + _space_heating_kw(level.space_heating, config_dir, index, timezone)
    return np.maximum(demand, 0.0)


def _space_heating_kw(
    heating: SpaceHeating, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> np.ndarray:
    path = resolve_path(config_dir, heating.weather.path)
    hourly_kwh = _bdew_year(
        path, heating.annual_kwh, heating.building_type, heating.building_class, heating.wind_class
    )
    ends = hourly_kwh.index.asi8
    hour_ns = pd.Timedelta(hours=1).value
    boundaries = np.concatenate([[ends[0] - hour_ns], ends])
    cumulative = np.concatenate([[0.0], np.cumsum(hourly_kwh.to_numpy(float))])
    coverage = (dt.date(_REF_YEAR, 1, 1), dt.date(_REF_YEAR, 12, 31))
    starts = _mapped_starts(index, timezone, heating.weather, coverage, _REF_YEAR)
    step = _interval_length(index)
    kwh_per_ns = _average_power(boundaries, cumulative, starts, step.value)
    return np.asarray(kwh_per_ns * 3.6e12 * heating.weather.scale, dtype=float)


@lru_cache(maxsize=8)
def _bdew_year(
    path: Path, annual_kwh: float, building_type: str, building_class: int, wind_class: int
) -> pd.Series:
    """Hourly space heating [kWh_th] over the reference year (hour-ending, naive LST).

    demandlib's BDEW heat profile (``HeatBuilding.get_bdew_profile``) from the
    weather file's hourly air temperature; no public holidays (the file's
    year is a typical year, not a calendar one).
    """
    from demandlib import bdew  # a heavy import only parks with space heating need

    weather = _read_tmy3(path)
    starts = pd.DatetimeIndex(weather.index - pd.Timedelta(hours=1))
    temperature = pd.Series(weather["temp_air_c"].to_numpy(float), index=starts)
    with warnings.catch_warnings():
        # demandlib 0.2 calls pandas APIs pandas 3 deprecates (DatetimeIndex.weekday); the
        # numbers are unaffected. Only this call is silenced, nothing globally.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        building = bdew.HeatBuilding(
            starts,
            holidays={},
            temperature=temperature,
            shlp_type=building_type,
            building_class=building_class,
            wind_class=wind_class,
            annual_heat_demand=annual_kwh,
            name=building_type,
            ww_incl=True,
        )
        profile = np.asarray(building.get_bdew_profile(), dtype=float)
    if profile.shape != (len(starts),) or not np.isfinite(profile).all():
        raise DataQualityError(f"{path}: demandlib gave no usable heat profile")
    return pd.Series(np.maximum(profile, 0.0), index=weather.index)
