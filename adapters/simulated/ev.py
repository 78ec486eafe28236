"""Simulated physics of ``ev_charging``: a hub serving arriving and departing sessions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from adapters.base import Reading
from adapters.simulated.base import EPS, SimulatedDevice, hours_between
from vpp.config.models import EvChargingSpec, SimulatedAdapter
from vpp.errors import InputError
from vpp.types import Clock

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
    inputs = ("sessions",)

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
            raise InputError(f"{asset.id} sessions lack column(s) {missing}")
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
            raise InputError(f"{asset.id} sessions.requested_energy_kwh must be finite and >= 0")
        if (frame["departure"] <= frame["arrival"]).any():
            raise InputError(f"{asset.id} sessions: every departure must follow its arrival")
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
        needing = sum(1 for s in self._plugged if s[1] > EPS)
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
                if rate > 0 and remaining > EPS:
                    # Bounded by the step's end so a tiny rate cannot overflow a datetime.
                    hours = min(remaining / rate, hours_between(t, end))
                    horizon = min(horizon, t + dt.timedelta(hours=hours))
            horizon = max(horizon, t + dt.timedelta(microseconds=1))
            horizon = min(horizon, end)
            dt_h = hours_between(t, horizon)
            for session in self._plugged:
                if session[1] > EPS:
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
        needing = sum(1 for s in self._plugged if s[1] > EPS)
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


DEVICE = SimulatedEvHub
"""The simulated device class of this asset type (found through the asset registry)."""
