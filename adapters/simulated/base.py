"""Shared machinery of the simulated devices: lazy, exact integration up to ``clock.now()``.

Each device integrates its state exactly from the last time it was touched
to ``clock.now()`` whenever it is read or written, so the backtest drives
it by advancing its clock; no thread, no sleep. Exogenous data (PV
available power, process baseline, EV sessions) comes in as pandas objects
with a tz-aware UTC index (:class:`Profile`); a time outside the data makes
the device unavailable with reason ``no_data`` (never a silent fill).

Power follows :mod:`vpp.units` (> 0 into the grid). Energy counters use the
actual elapsed time: ``energy_kwh = power_kw * dt_h``. One module per asset
type holds its physics (:mod:`adapters.simulated.battery`, ``ev``,
``process``, ``pv``), named by the asset registry (:mod:`vpp.assets`).
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pandas as pd

from adapters.base import Adapter, DeviceFaultError, Reading, Reason
from vpp.config.models import SimulatedAdapter
from vpp.errors import InputError
from vpp.timeutil import require_aware_index
from vpp.types import Clock, Setpoint, Telemetry

EPS = 1e-9


def hours_between(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds() / 3600.0


class Profile:
    """A step series [kW] on interval starts: the value holds until the next start.

    The last interval ends one step (the most common spacing) after the last
    start. Values must be finite and >= 0.
    """

    def __init__(self, series: pd.Series, name: str) -> None:
        if not isinstance(series, pd.Series):
            raise TypeError(f"{name} must be a pandas Series, got {type(series).__name__}")
        require_aware_index(series.index, name)
        if len(series) < 2:
            raise InputError(f"{name} needs at least two intervals, got {len(series)}")
        index = series.index.tz_convert("UTC")
        if not (index.is_monotonic_increasing and index.is_unique):
            raise InputError(f"{name} index must be sorted and unique")
        values = series.to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            first = index[int(np.argmax(bad))]
            raise InputError(
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
    # The exogenous inputs (keyword arguments) a subclass needs: its data, not its config.
    inputs: ClassVar[tuple[str, ...]] = ()

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
        self._lost_to_restarts: dict[str, float] = {}  # register -> sum of values at restarts
        #: passive stores fed by this device: brought up to date before its setpoint changes
        self._listeners: list[SimulatedDevice] = []

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
        for store in self._listeners:  # their step ends here: its supply is constant within
            store._advance()
        if self._advance() is None:
            status = self.health()
            raise DeviceFaultError(status.reason or Reason.NO_DATA, status.detail or "no data")
        self._setpoint_kw = setpoint.power_kw
        self._setpoint_start = setpoint.interval_start
        self._on_setpoint()

    def _advance(self) -> Reading | None:
        now = self.clock.now()
        if now < self._t:
            raise InputError(f"simulated clock went backwards: {now} < {self._t}")
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
            self._lost_to_restarts[name] = self._lost_to_restarts.get(name, 0.0) + before[name]
        return before

    def lifetime(self, register: str) -> float:
        """A register's total since the device was created, across meter restarts [kWh, kg].

        What the physics delivered, as opposed to what the meter shows: passive
        stores read their suppliers through this so a meter restart loses nothing.
        """
        return float(getattr(self, register)) + self._lost_to_restarts.get(register, 0.0)

    def supply_shape(self, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, float]]:
        """How this device's output rate varies over ``[start, end)`` at a constant setpoint.

        ``(from, relative rate)`` pieces (the rate holds until the next piece);
        default: constant. A heat pump's heat follows its COP steps. A passive
        store spreads what the device delivered over a step by this shape.
        """
        return [(start, 1.0)]

    def couple(self, peers: Mapping[str, SimulatedDevice]) -> None:
        """Link this device to the other devices of its park, by asset id (default: none).

        A passive store (thermal, hydrogen) floats on its node's balance, so it
        keeps the peers that supply its node and reads their registers as it
        integrates. Called once, after every device of the park exists.
        """

    def _on_setpoint(self) -> None:
        """React at once to a new setpoint (e.g. recompute the present power)."""

    @abc.abstractmethod
    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        """Advance the state over ``[start, end)`` under the current setpoint."""

    @abc.abstractmethod
    def _reading(self, now: dt.datetime) -> Reading:
        """The state at ``now``; raise DeviceFaultError(NO_DATA) outside the data."""
