"""``simulated``: devices with physics for the backtest and the demo.

Each device integrates its state exactly from the last time it was touched
to ``clock.now()`` whenever it is read or written, so the backtest drives
it by advancing its clock; no thread, no sleep. Exogenous data (PV
available power, process baseline, EV sessions) comes in as pandas objects
with a tz-aware UTC index; a time outside the data makes the device
unavailable with reason ``no_data`` (never a silent fill).

Power follows :mod:`vpp.units` (> 0 into the grid). Energy counters use the
actual elapsed time: ``energy_kwh = power_kw * dt_h``.
"""

from __future__ import annotations

import abc
import datetime as dt
import math
from typing import ClassVar

import numpy as np
import pandas as pd

from adapters.base import Adapter, DeviceFaultError, Reading, Reason
from vpp.config.models import (
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    PvSpec,
    SimulatedAdapter,
)
from vpp.timeutil import require_aware_index
from vpp.types import Clock, Setpoint, Telemetry

_EPS = 1e-9


def _hours(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 3600.0


class _Profile:
    """A step series [kW] on interval starts: the value holds until the next start.

    The last interval ends one step (the most common spacing) after the last
    start. Values must be finite and >= 0.
    """

    def __init__(self, series: pd.Series, name: str) -> None:
        if not isinstance(series, pd.Series):
            raise TypeError(f"{name} must be a pandas Series, got {type(series).__name__}")
        require_aware_index(series.index, name)
        if len(series) < 2:
            raise ValueError(f"{name} needs at least two intervals, got {len(series)}")
        index = series.index.tz_convert("UTC")
        if not (index.is_monotonic_increasing and index.is_unique):
            raise ValueError(f"{name} index must be sorted and unique")
        values = series.to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            first = index[int(np.argmax(bad))]
            raise ValueError(
                f"{name} has {int(bad.sum())} missing, infinite or negative value(s), "
                f"first at {first}; fill or drop them explicitly before simulating"
            )
        step = pd.Series(index[1:] - index[:-1]).mode().iloc[0]
        self.name = name
        self.starts = [t.to_pydatetime() for t in index]
        self._starts_ns = index.as_unit("ns").asi8
        self.end = (index[-1] + step).to_pydatetime()
        self.values = values

    def _position(self, t: dt.datetime) -> int | None:
        i = int(np.searchsorted(self._starts_ns, pd.Timestamp(t).as_unit("ns").value, "right")) - 1
        if i < 0 or t >= self.end:
            return None
        return i

    def at(self, t: dt.datetime) -> float | None:
        i = self._position(t)
        return None if i is None else float(self.values[i])

    def covers(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.starts[0] <= start and end <= self.end

    def segments(
        self, start: dt.datetime, end: dt.datetime
    ) -> list[tuple[dt.datetime, dt.datetime, float]]:
        """``(from, to, value)`` pieces of ``[start, end)``, split where the value steps."""
        out = []
        t = start
        while t < end:
            i = self._position(t)
            if i is None:
                raise DeviceFaultError(Reason.NO_DATA, f"{self.name} has no value at {t}")
            boundary = self.starts[i + 1] if i + 1 < len(self.starts) else self.end
            piece_end = min(end, boundary)
            out.append((t, piece_end, float(self.values[i])))
            t = piece_end
        return out


class SimulatedDevice(Adapter):
    """Base of the simulated devices: lazy, exact integration up to ``clock.now()``."""

    protocol = "simulated"
    # The cumulative energy registers [kWh] a subclass reports in its readings.
    registers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, park_id: str, asset: object, spec: SimulatedAdapter, *, clock: Clock
    ) -> None:
        super().__init__(park_id, asset, clock=clock)  # type: ignore[arg-type]
        self.spec = spec
        self._rng = np.random.default_rng(spec.seed)
        self._t = clock.now()
        self._setpoint_kw: float | None = None
        self._setpoint_start: dt.datetime | None = None
        self._connected = False

    def connect(self) -> None:
        self._connected = True
        self._advance()

    def close(self) -> None:
        self._advance()  # the physics runs on; only the link is gone
        self._connected = False
        self._mark_unavailable(Reason.NOT_CONNECTED, "closed")

    def read(self) -> Telemetry:
        if not self._connected:
            self._advance()
            return self._telemetry(None)
        reading = self._advance()
        if reading is None:
            return self._telemetry(None)
        if self.spec.telemetry_noise_kw > 0:
            noisy = reading.power_kw + float(self._rng.normal(0.0, self.spec.telemetry_noise_kw))
            reading = Reading(reading.measured_at, noisy, reading.soc, reading.extra)
        return self._telemetry(reading)

    def _send(self, setpoint: Setpoint) -> None:
        if not self._connected:
            raise DeviceFaultError(Reason.NOT_CONNECTED, "call connect() first")
        if self._advance() is None:
            status = self.health()
            raise DeviceFaultError(status.reason or Reason.NO_DATA, status.detail or "no data")
        self._setpoint_kw = setpoint.power_kw
        self._setpoint_start = setpoint.interval_start
        self._on_setpoint()

    def _advance(self) -> Reading | None:
        now = self.clock.now()
        if now < self._t:
            raise ValueError(f"simulated clock went backwards: {now} < {self._t}")
        try:
            if now > self._t:
                self._integrate(self._t, now)
            self._t = now
            reading = self._reading(now)
        except DeviceFaultError as fault:
            self._t = now
            if self._connected:
                self._mark_unavailable(fault.reason, fault.detail)
            return None
        if self._connected:
            self._mark_available()
        return reading

    def restart_meter(self) -> dict[str, float]:
        """Model a device restart: its energy registers start again at zero.

        The physics (state of charge, plugged cars, the held setpoint) runs on;
        only the counters are lost, like a meter without non-volatile registers.
        Returns the register values just before the restart [kWh].
        """
        self._advance()
        before = {name: float(getattr(self, name)) for name in self.registers}
        for name in self.registers:
            setattr(self, name, 0.0)
        return before

    def _on_setpoint(self) -> None:
        """React at once to a new setpoint (e.g. recompute the present power)."""

    @abc.abstractmethod
    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        """Advance the state over ``[start, end)`` under the current setpoint."""

    @abc.abstractmethod
    def _reading(self, now: dt.datetime) -> Reading:
        """The state at ``now``; raise DeviceFaultError(NO_DATA) outside the data."""


# --------------------------------------------------------------------------- battery


class SimulatedBattery(SimulatedDevice):
    """A battery: SoC with charge/discharge efficiencies within power and SoC limits.

    Stored energy changes by ``eta_c * charged_kwh - discharged_kwh / eta_d``
    where both counters are measured at the grid. When the SoC reaches a
    limit, power drops to 0 at that instant (the setpoint stays; it resumes
    if reversed).
    """

    registers = ("charged_kwh", "discharged_kwh")

    def __init__(
        self,
        park_id: str,
        asset: BatterySpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        soc: float | None = None,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.battery = asset
        start = asset.soc_initial if soc is None else soc
        if not asset.soc_min - _EPS <= start <= asset.soc_max + _EPS:
            raise ValueError(f"soc {start} outside [{asset.soc_min}, {asset.soc_max}]")
        self.stored_kwh = start * asset.energy_kwh
        self.charged_kwh = 0.0
        self.discharged_kwh = 0.0
        self._power_kw = 0.0

    @property
    def soc(self) -> float:
        return self.stored_kwh / self.battery.energy_kwh

    def _feasible(self, power_kw: float) -> float:
        """``power_kw`` if the SoC allows that direction now, else 0."""
        b = self.battery
        if power_kw > 0 and self.stored_kwh <= b.soc_min * b.energy_kwh + _EPS:
            return 0.0
        if power_kw < 0 and self.stored_kwh >= b.soc_max * b.energy_kwh - _EPS:
            return 0.0
        return power_kw

    def _on_setpoint(self) -> None:
        self._power_kw = self._feasible(self._setpoint_kw or 0.0)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        b = self.battery
        power = self._feasible(self._setpoint_kw or 0.0)
        dt_h = _hours(start, end)
        if power < 0:
            rate = -power * b.charge_efficiency  # into storage [kW]
            room = b.soc_max * b.energy_kwh - self.stored_kwh
            run_h = dt_h if rate * dt_h <= room else max(room, 0.0) / rate
            self.stored_kwh = min(self.stored_kwh + rate * run_h, b.soc_max * b.energy_kwh)
            self.charged_kwh += -power * run_h
        elif power > 0:
            rate = power / b.discharge_efficiency  # out of storage [kW]
            room = self.stored_kwh - b.soc_min * b.energy_kwh
            run_h = dt_h if rate * dt_h <= room else max(room, 0.0) / rate
            self.stored_kwh = max(self.stored_kwh - rate * run_h, b.soc_min * b.energy_kwh)
            self.discharged_kwh += power * run_h
        else:
            run_h = dt_h
        self._power_kw = power if run_h >= dt_h else 0.0
        self._power_kw = self._feasible(self._power_kw)

    def _reading(self, now: dt.datetime) -> Reading:
        return Reading(
            now,
            self._power_kw,
            self.soc,
            {"charged_kwh": self.charged_kwh, "discharged_kwh": self.discharged_kwh},
        )


# --------------------------------------------------------------------------- PV


class SimulatedPv(SimulatedDevice):
    """A PV plant following its available AC power, capped by a curtailment setpoint."""

    registers = ("produced_kwh", "curtailed_kwh")

    def __init__(
        self,
        park_id: str,
        asset: PvSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        available_kw: pd.Series,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.pv = asset
        self.available = _Profile(available_kw, f"{asset.id} available_kw")
        self.inverter_kw = asset.inverter_kw or asset.capacity_kwp
        self.produced_kwh = 0.0
        self.curtailed_kwh = 0.0

    def _output(self, available_kw: float) -> float:
        cap = self.inverter_kw if self._setpoint_kw is None else self._setpoint_kw
        return min(available_kw, self.inverter_kw, cap)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        for a, b, available in self.available.segments(start, end):
            out = self._output(available)
            self.produced_kwh += out * _hours(a, b)
            self.curtailed_kwh += (min(available, self.inverter_kw) - out) * _hours(a, b)

    def _reading(self, now: dt.datetime) -> Reading:
        available = self.available.at(now)
        if available is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no available-power data at {now}")
        return Reading(
            now,
            self._output(available),
            None,
            {
                "available_kw": min(available, self.inverter_kw),
                "produced_kwh": self.produced_kwh,
                "curtailed_kwh": self.curtailed_kwh,
            },
        )


# --------------------------------------------------------------------------- process


class SimulatedProcess(SimulatedDevice):
    """A flexible process: follows its baseline, shifted by a setpoint within the shift band.

    Consumption is ``baseline + shift``. The target consumption is the
    setpoint's magnitude clamped to ``[baseline - shift_down, baseline +
    shift_up]`` and ``[0, max_power]``. The *shift* (the controllable
    deviation from the baseline, as in :mod:`strategies.process`) changes
    when a setpoint arrives, by at most ``ramp_limit_kw_per_min`` times the
    minutes since the previous setpoint -- the plant prepares a change over
    the interval before it, the same discrete ramp the optimiser plans with.
    The baseline itself is what the plant does anyway and is followed at once.
    """

    registers = ("consumed_kwh", "baseline_kwh")

    def __init__(
        self,
        park_id: str,
        asset: FlexibleProcessSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        baseline_kw: pd.Series,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.process = asset
        self.baseline = _Profile(baseline_kw, f"{asset.id} baseline_kw")
        self.target_kw: float | None = None  # consumption asked for by the setpoint
        self.shift_kw = 0.0
        self._interval_start = self._t  # the setpoint interval the current step belongs to
        self._shift_at_start = 0.0
        self._room_kw = math.inf if asset.ramp_limit_kw_per_min is None else 0.0
        self.consumed_kwh = 0.0
        self.baseline_kwh = 0.0

    def _base(self, baseline_kw: float) -> float:
        return min(baseline_kw, self.process.max_power_kw)

    def _band(self, baseline_kw: float) -> tuple[float, float]:
        p = self.process
        base = self._base(baseline_kw)
        low = max(0.0, base - p.shift_down_kw)
        high = min(p.max_power_kw, base + p.shift_up_kw)
        return min(low, high), high

    def _consumption(self, baseline_kw: float) -> float:
        low, high = self._band(baseline_kw)
        return min(max(self._base(baseline_kw) + self.shift_kw, low), high)

    def limits_kw(self) -> tuple[float, float]:
        baseline = self.baseline.at(self.clock.now())
        if baseline is None:
            return super().limits_kw()
        low, high = self._band(baseline)
        return -high, -low

    def _on_setpoint(self) -> None:
        now = self.clock.now()
        baseline = self.baseline.at(now)
        if baseline is None or self._setpoint_kw is None:
            return
        start = self._setpoint_start or now
        if start != self._interval_start:
            # A setpoint for a new interval: the plant had the time since the previous
            # interval's setpoint to prepare the change. Re-sends and re-plans for the same
            # interval share that one step (watchdog refreshes change nothing).
            ramp = self.process.ramp_limit_kw_per_min
            minutes = (start - self._interval_start).total_seconds() / 60.0
            self._room_kw = math.inf if ramp is None else ramp * max(minutes, 0.0)
            self._shift_at_start = self.shift_kw
            self._interval_start = start
        low, high = self._band(baseline)
        target = min(max(-self._setpoint_kw, low), high) - self._base(baseline)
        self.shift_kw = min(
            max(target, self._shift_at_start - self._room_kw), self._shift_at_start + self._room_kw
        )

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        for a, b, baseline in self.baseline.segments(start, end):
            dt_h = _hours(a, b)
            self.consumed_kwh += self._consumption(baseline) * dt_h
            self.baseline_kwh += self._base(baseline) * dt_h

    def _reading(self, now: dt.datetime) -> Reading:
        baseline = self.baseline.at(now)
        if baseline is None:
            raise DeviceFaultError(Reason.NO_DATA, f"no baseline data at {now}")
        consumption = self._consumption(baseline)
        return Reading(
            now,
            -consumption,
            None,
            {
                "baseline_kw": baseline,
                "shift_kw": consumption - self._base(baseline),
                "consumed_kwh": self.consumed_kwh,
                "shifted_kwh": self.consumed_kwh - self.baseline_kwh,
            },
        )


# --------------------------------------------------------------------------- EV hub

SESSION_REQUIRED = ("arrival", "departure", "requested_energy_kwh")


class SimulatedEvHub(SimulatedDevice):
    """An EV charging hub serving sessions (arrival, departure, requested energy).

    An arriving car takes a free charger or is turned away. Plugged cars
    with energy still needed share the hub cap (the nameplate, or the
    setpoint's magnitude if lower) equally, each at most
    ``charger_power_kw``. A car leaving before it is full leaves its
    remaining need as ``unserved_kwh``.
    """

    registers = ("delivered_kwh", "unserved_kwh")

    def __init__(
        self,
        park_id: str,
        asset: EvChargingSpec,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        sessions: pd.DataFrame,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.hub = asset
        missing = [c for c in SESSION_REQUIRED if c not in sessions.columns]
        if missing:
            raise ValueError(f"{asset.id} sessions lack column(s) {missing}")
        frame = sessions.loc[:, list(SESSION_REQUIRED)].copy()
        frame["session_id"] = (
            sessions["session_id"].astype(str).to_numpy()
            if "session_id" in sessions.columns
            else [f"{asset.id}-{i}" for i in range(len(sessions))]
        )
        for column in ("arrival", "departure"):
            if not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                raise TypeError(f"{asset.id} sessions.{column} must be tz-aware timestamps")
            frame[column] = frame[column].dt.tz_convert("UTC")
        energy = frame["requested_energy_kwh"].to_numpy(dtype=float)
        if not (np.isfinite(energy).all() and (energy >= 0).all()):
            raise ValueError(f"{asset.id} sessions.requested_energy_kwh must be finite and >= 0")
        if (frame["departure"] <= frame["arrival"]).any():
            raise ValueError(f"{asset.id} sessions: every departure must follow its arrival")
        frame = frame.sort_values("arrival", kind="stable")
        self._pending = [
            (a.to_pydatetime(), d.to_pydatetime(), float(e), str(sid))
            for a, d, e, sid in frame.itertuples(index=False)
        ]
        self._pending.reverse()  # pop() takes the earliest
        self._plugged: list[list] = []  # [departure, remaining_kwh, session_id, charged_kwh]
        self.delivered_kwh = 0.0
        self.unserved_kwh = 0.0
        self.turned_away = 0
        self._events(self._t)

    def _events(self, now: dt.datetime) -> None:
        """Apply departures and arrivals due at ``now``."""
        for session in [s for s in self._plugged if s[0] <= now]:
            self.unserved_kwh += session[1]
            self._plugged.remove(session)
        while self._pending and self._pending[-1][0] <= now:
            _arrival, departure, need, session_id = self._pending.pop()
            if departure <= now:
                self.unserved_kwh += need
                continue
            if len(self._plugged) < self.hub.chargers:
                self._plugged.append([departure, need, session_id, 0.0])
            else:
                self.turned_away += 1

    def _rate_kw(self) -> float:
        """Power of each charging car now [kW, >= 0]."""
        needing = sum(1 for s in self._plugged if s[1] > _EPS)
        if needing == 0:
            return 0.0
        cap = self.hub.hub_limit_kw
        if self._setpoint_kw is not None:
            cap = min(cap, -self._setpoint_kw)
        return min(self.hub.charger_power_kw, max(cap, 0.0) / needing)

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        t = start
        while t < end:
            self._events(t)
            rate = self._rate_kw()
            horizon = end
            if self._pending:
                horizon = min(horizon, self._pending[-1][0])
            for departure, remaining, *_ in self._plugged:
                horizon = min(horizon, departure)
                if rate > 0 and remaining > _EPS:
                    # Bounded by the step's end so a tiny rate cannot overflow a datetime.
                    hours = min(remaining / rate, _hours(t, end))
                    horizon = min(horizon, t + dt.timedelta(hours=hours))
            horizon = max(horizon, t + dt.timedelta(microseconds=1))
            horizon = min(horizon, end)
            dt_h = _hours(t, horizon)
            for session in self._plugged:
                if session[1] > _EPS:
                    energy = min(rate * dt_h, session[1])
                    session[1] -= energy
                    session[3] += energy
                    self.delivered_kwh += energy
            t = horizon
        self._events(end)

    def plugged_sessions(self) -> pd.DataFrame:
        """Cars plugged in now: ``session_id`` and ``charged_kwh`` received so far."""
        self._advance()
        return pd.DataFrame(
            [(sid, charged) for _dep, _rem, sid, charged in self._plugged],
            columns=["session_id", "charged_kwh"],
        )

    def _reading(self, now: dt.datetime) -> Reading:
        self._events(now)
        needing = sum(1 for s in self._plugged if s[1] > _EPS)
        return Reading(
            now,
            -self._rate_kw() * needing,
            None,
            {
                "plugged": float(len(self._plugged)),
                "charging": float(needing),
                "delivered_kwh": self.delivered_kwh,
                "unserved_kwh": self.unserved_kwh,
                "turned_away": float(self.turned_away),
            },
        )
