"""What the strategy knows at decision time: asset state and exogenous inputs.

* :class:`AssetState` -- the measured state of one asset (battery energy, EV
  sessions plugged in and what they have received, a process's unrecovered
  shift). A park's state is a ``Mapping[asset_id, AssetState]``; missing
  entries mean "as configured" (:func:`initial_state`).
* :class:`ParkInputs` -- the exogenous series over the planning horizon: PV
  available [kW], process baselines [kW] and the *expected* EV sessions.
* :func:`session_table` -- turns known and expected sessions into the rows
  the EV model optimises.

**Expected EV arrivals (day-ahead).** At day-ahead gate closure nobody has
arrived yet for the delivery day. The forecast replays the hub's sessions of
the same weekday in each of the previous ``K`` weeks (default 4), shifted
onto the delivery day, each with weight ``1/K``: its energy and its power
limit are scaled by ``1/K``. The sum is the average fleet of those weeks,
with realistic arrival times, dwell times and energies; the hub limit
applies to it in full. Only sessions that arrived before the decision time
are used, so the forecast cannot see the future.

**Energy policy.** Drivers' requests are often more than a charge point can
deliver before their stated departure (about a quarter of the Caltech
sessions). With ``energy_policy="cap"`` (default) such a request is capped
at what the charge point can deliver inside the window, and the number of
capped sessions is logged (``ev_request_capped``); with ``"strict"`` the
request stands and an impossible one raises
:class:`~vpp.InfeasibleError` naming ``"{hub}/{session}-energy-required"``.
Sessions whose stated window extends beyond the horizon must receive the
share of their remaining energy proportional to the share of their
remaining window inside the horizon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import structlog

from strategies.ev import SESSION_TABLE_COLUMNS, availability_ns
from vpp.config.models import (
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    ParkConfig,
    PvSpec,
)
from vpp.errors import InputError
from vpp.profiles import ev_sessions, load_kw, pv_available_kw
from vpp.timeutil import require_aware, require_aware_index

log = structlog.get_logger(__name__)

EnergyPolicy = Literal["cap", "strict"]

#: Columns of :attr:`AssetState.sessions`.
KNOWN_SESSION_COLUMNS = (
    "session_id",
    "charger",
    "arrival",
    "stated_departure",
    "requested_energy_kwh",
    "charged_kwh",
)


@dataclass(frozen=True)
class AssetState:
    """The state of one asset at decision time.

    Attributes:
        soc_kwh: battery energy stored [kWh]; ``None`` = ``soc_initial`` from the spec.
        sessions: EV sessions plugged in (arrived, not yet left), columns
            :data:`KNOWN_SESSION_COLUMNS`; ``charged_kwh`` is the energy each has
            received so far [kWh]. ``None`` = no car plugged in.
        energy_offset_kwh: flexible process: energy consumed above its baseline
            since the current recovery block began [kWh] (negative: shed); it is
            recovered by the block's end (see :mod:`strategies.process`).
        shift_kw: flexible process: the deviation from baseline now in force [kW].
    """

    soc_kwh: float | None = None
    sessions: pd.DataFrame | None = None
    energy_offset_kwh: float = 0.0
    shift_kw: float = 0.0


ParkState = Mapping[str, AssetState]


def initial_state(park: ParkConfig) -> dict[str, AssetState]:
    """Every asset as configured: batteries at ``soc_initial``, no cars, no shift."""
    out = {}
    for asset in park.assets:
        if isinstance(asset, BatterySpec):
            out[asset.id] = AssetState(soc_kwh=asset.soc_initial * asset.energy_kwh)
        else:
            out[asset.id] = AssetState()
    return out


def state_of(state: ParkState | None, asset_id: str) -> AssetState:
    if state is None:
        return AssetState()
    return state.get(asset_id, AssetState())


@dataclass(frozen=True)
class ParkInputs:
    """Exogenous series of one park over a horizon ``index`` (UTC interval starts).

    ``pv_available_kw`` and ``baseline_kw`` map asset ids to arrays (T,) [kW >= 0];
    ``expected_sessions`` maps EV hub ids to expected sessions (columns of
    :data:`KNOWN_SESSION_COLUMNS` plus ``weight`` in (0, 1]).
    """

    index: pd.DatetimeIndex
    pv_available_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    baseline_kw: Mapping[str, np.ndarray] = field(default_factory=dict)
    expected_sessions: Mapping[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware_index(self.index, "index")
        for name, series in (*self.pv_available_kw.items(), *self.baseline_kw.items()):
            if np.shape(series) != (len(self.index),):
                raise InputError(
                    f"input for {name} has shape {np.shape(series)}, want ({len(self.index)},)"
                )

    def window(self, start: int) -> ParkInputs:
        """The inputs from interval ``start`` to the end of the horizon."""
        return ParkInputs(
            self.index[start:],
            {k: np.asarray(v)[start:] for k, v in self.pv_available_kw.items()},
            {k: np.asarray(v)[start:] for k, v in self.baseline_kw.items()},
            self.expected_sessions,
        )


#: Days of past PV output averaged into the PV forecast (see :func:`load_inputs`).
PV_FORECAST_DAYS = 7


def load_inputs(
    park: ParkConfig,
    config_dir: Path,
    index: pd.DatetimeIndex,
    *,
    decision_time: dt.datetime | None = None,
    expected_weeks: int = 4,
) -> ParkInputs:
    """PV forecast, process baselines and expected EV sessions from the park's profiles.

    ``decision_time``: when given, the inputs are a *forecast* made then:

    * PV: the average output at the same time of day over the
      ``PV_FORECAST_DAYS`` whole days before the decision day (weather is
      not known in advance; the simulated plant runs on the realized
      profile, so PV errors become real deviations);
    * expected EV sessions (see module doc) for arrivals in
      ``[max(decision_time, index[0]), horizon end)``;
    * the process baseline is the plant's own production schedule, known to
      its operator in advance, and used as is.

    ``None`` gives the realized profiles and no expected sessions (perfect
    foresight passes the realized sessions as state, see :func:`realized_sessions`).
    """
    require_aware_index(index, "index")
    pv = {}
    for a in park.assets:
        if not isinstance(a, PvSpec):
            continue
        if decision_time is None:
            pv[a.id] = pv_available_kw(a, config_dir, index, park.timezone).to_numpy(float)
            continue
        decided = pd.Timestamp(decision_time).tz_convert(park.timezone).date()
        first = pd.Timestamp(index[0]).tz_convert(park.timezone).date()
        lead = (first - decided).days
        pv[a.id] = np.mean(
            [
                pv_available_kw(
                    a, config_dir, index - pd.Timedelta(days=lead + k), park.timezone
                ).to_numpy(float)
                for k in range(1, PV_FORECAST_DAYS + 1)
            ],
            axis=0,
        )
    base = {
        a.id: load_kw(a, config_dir, index, park.timezone).to_numpy(float)
        for a in park.assets
        if isinstance(a, FlexibleProcessSpec)
    }
    expected: dict[str, pd.DataFrame] = {}
    if decision_time is not None:
        require_aware(decision_time, "decision_time")
        for hub in (a for a in park.assets if isinstance(a, EvChargingSpec)):
            expected[hub.id] = expected_sessions(
                hub, config_dir, index, park.timezone, decision_time, expected_weeks
            )
    return ParkInputs(index, pv, base, expected)


def _horizon_end(index: pd.DatetimeIndex) -> pd.Timestamp:
    if len(index) < 2:
        raise InputError("a horizon index needs at least two intervals to infer its end")
    return index[-1] + (index[-1] - index[-2])


def expected_sessions(
    hub: EvChargingSpec,
    config_dir: Path,
    index: pd.DatetimeIndex,
    timezone: str,
    decision_time: dt.datetime,
    weeks: int = 4,
) -> pd.DataFrame:
    """Expected sessions: the same weekday of the previous ``weeks`` weeks, weight ``1/weeks``."""
    start = max(pd.Timestamp(decision_time).tz_convert("UTC"), index[0])
    end = _horizon_end(index)
    frames = []
    for k in range(1, weeks + 1):
        shift = pd.Timedelta(days=7 * k)
        past = ev_sessions(hub, config_dir, start - shift, end - shift, timezone)
        past = past[past["arrival"] >= start - shift]
        # Only what had happened by the decision time may inform the forecast.
        past = past[past["arrival"] < pd.Timestamp(decision_time)]
        if past.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "session_id": "expected-w" + str(k) + "/" + past["session_id"].astype(str),
                    "charger": past["charger"].to_numpy(),
                    "arrival": past["arrival"] + shift,
                    "stated_departure": past["stated_departure"] + shift,
                    "requested_energy_kwh": past["requested_energy_kwh"].to_numpy(float),
                    "charged_kwh": 0.0,
                    "weight": 1.0 / weeks,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=[*KNOWN_SESSION_COLUMNS, "weight"])
    return pd.concat(frames, ignore_index=True)


def realized_sessions(
    hub: EvChargingSpec, config_dir: Path, index: pd.DatetimeIndex, timezone: str
) -> pd.DataFrame:
    """Every session overlapping the horizon as it will happen (perfect foresight, plans).

    Foresight knows when each car really leaves, so the window closes at the
    actual departure (``stated_departure`` holds it); the energy is the request.
    """
    sessions = ev_sessions(hub, config_dir, index[0], _horizon_end(index), timezone)
    out = sessions.loc[:, ["session_id", "charger", "arrival"]].copy()
    out["stated_departure"] = sessions["departure"]
    out["requested_energy_kwh"] = sessions["requested_energy_kwh"].to_numpy(float)
    out["charged_kwh"] = 0.0
    return out


@dataclass(frozen=True)
class SessionArrays:
    """Sessions as arrays: what :func:`session_table` computes on, without pandas.

    ``arrival_ns``/``departure_ns`` are UTC nanoseconds (departure = stated
    departure); ``remaining_kwh`` = requested - charged (>= 0).
    """

    session_id: np.ndarray  # str
    charger: np.ndarray  # object
    arrival_ns: np.ndarray  # int64
    departure_ns: np.ndarray  # int64
    remaining_kwh: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.session_id)

    @classmethod
    def empty(cls) -> SessionArrays:
        none = np.zeros(0)
        ns = np.zeros(0, dtype=np.int64)
        return cls(np.zeros(0, dtype=object), np.zeros(0, dtype=object), ns, ns, none, none)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame | None, weight: float | None, hub_id: str = "hub"
    ) -> SessionArrays:
        """Rows of ``frame`` (:data:`KNOWN_SESSION_COLUMNS`; plus ``weight`` when
        ``weight`` is None), each with weight ``weight``."""
        if frame is None or frame.empty:
            return cls.empty()
        missing = set(KNOWN_SESSION_COLUMNS) - set(frame.columns)
        if missing:
            raise InputError(f"{hub_id}: sessions lack column(s) {sorted(missing)}")
        remaining = np.maximum(
            frame["requested_energy_kwh"].to_numpy(float) - frame["charged_kwh"].to_numpy(float),
            0.0,
        )
        return cls(
            frame["session_id"].astype(str).to_numpy(dtype=object),
            frame["charger"].to_numpy(dtype=object),
            _ns(frame["arrival"]),
            _ns(frame["stated_departure"]),
            remaining,
            np.full(len(frame), weight) if weight is not None else frame["weight"].to_numpy(float),
        )

    @classmethod
    def concat(cls, parts: list[SessionArrays]) -> SessionArrays:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in (
                    "session_id",
                    "charger",
                    "arrival_ns",
                    "departure_ns",
                    "remaining_kwh",
                    "weight",
                )
            )
        )


@dataclass(frozen=True)
class SessionWindow:
    """Sessions seen from a horizon: the rows :func:`session_table` keeps, as arrays.

    ``open_ns`` is the arrival clipped to the horizon start; ``energy_kwh`` the
    energy owed inside the horizon (share of the window inside it x remaining
    x weight, capped at what the charger can deliver under policy ``cap``);
    ``share`` (rows, T) the share of each interval inside each window.
    """

    sessions: SessionArrays  # kept rows
    open_ns: np.ndarray
    energy_kwh: np.ndarray
    share: np.ndarray
    overdue: int
    capped: int


def _ns(values: pd.Series) -> np.ndarray:
    return pd.DatetimeIndex(values).as_unit("ns").asi8


def window_sessions(
    hub: EvChargingSpec,
    sessions: SessionArrays,
    index: pd.DatetimeIndex,
    dt_h: np.ndarray,
    *,
    energy_policy: EnergyPolicy = "cap",
) -> SessionWindow:
    """The arithmetic of :func:`session_table` on arrays (see the module doc), no logging."""
    starts = index.as_unit("ns").asi8
    start = int(starts[0])
    end = int(starts[-1] + round(float(dt_h[-1]) * 3.6e12))
    open_ns = np.maximum(sessions.arrival_ns, start)
    departure = sessions.departure_ns
    window = (departure - open_ns).astype(np.float64)
    inside = (np.minimum(departure, end) - open_ns).astype(np.float64)
    overdue = window <= 0
    keep = np.flatnonzero(~overdue & (inside > 0))
    kept = SessionArrays(
        *(
            getattr(sessions, f)[keep]
            for f in (
                "session_id",
                "charger",
                "arrival_ns",
                "departure_ns",
                "remaining_kwh",
                "weight",
            )
        )
    )
    fraction = inside[keep] / window[keep]
    energy = kept.remaining_kwh * fraction * kept.weight
    share = availability_ns(open_ns[keep], departure[keep], starts, dt_h)
    capped = 0
    if energy_policy == "cap" and len(keep):
        deliverable = hub.charger_power_kw * kept.weight * (share @ dt_h)
        over = energy > deliverable
        capped = int(over.sum())
        energy = np.minimum(energy, deliverable)
    return SessionWindow(kept, open_ns[keep], energy, share, int(overdue.sum()), capped)


def session_table(
    hub: EvChargingSpec,
    known: pd.DataFrame | None,
    expected: pd.DataFrame | None,
    index: pd.DatetimeIndex,
    dt_h: np.ndarray,
    *,
    energy_policy: EnergyPolicy = "cap",
) -> pd.DataFrame:
    """Rows for :func:`strategies.ev.add_ev_hubs`: known sessions (weight 1) and expected ones."""
    sessions = SessionArrays.concat(
        [
            SessionArrays.from_frame(known, 1.0, hub.id),
            SessionArrays.from_frame(expected, None, hub.id),
        ]
    )
    if not len(sessions):
        return pd.DataFrame(columns=list(SESSION_TABLE_COLUMNS))
    window = window_sessions(hub, sessions, index, dt_h, energy_policy=energy_policy)
    if window.overdue:
        log.info("ev_session_overdue", hub=hub.id, sessions=window.overdue)
    if window.capped:
        log.info("ev_request_capped", hub=hub.id, sessions=window.capped)
    kept = window.sessions
    return pd.DataFrame(
        {
            "session_id": kept.session_id,
            "charger": kept.charger,
            "arrival": pd.DatetimeIndex(window.open_ns, tz="UTC"),
            "stated_departure": pd.DatetimeIndex(kept.departure_ns, tz="UTC"),
            "energy_kwh": window.energy_kwh,
            "weight": kept.weight,
        },
        columns=list(SESSION_TABLE_COLUMNS),
    )
