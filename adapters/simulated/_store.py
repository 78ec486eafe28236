"""A passive store floating on one balance node of its park (heat level or hydrogen).

Shared by :mod:`adapters.simulated.thermal_storage` and
:mod:`adapters.simulated.hydrogen_storage`. The store has no setpoint: over
each step ``[a, b)`` it integrates, the supply into its node is what its
coupled peers' cumulative registers grew by (the peers are advanced to the
same instant first; all devices share one clock, so that is idempotent),
the demand is its node's offtake. The net is taken by the store within its
rate and fill limits; what it cannot take is dumped (surplus) or unmet
(deficit). Exact for piecewise-constant supply and demand whenever it is
read: a step ends wherever a supplier's setpoint changes (the supplier
brings its stores up to date first) and is cut at the steps of the demand
and of each supplier's output shape (a heat pump's COP), so the limits
apply to each constant piece -- the result does not depend on how often
the store is read (the daemon polls, the backtest reads at boundaries).

The identities, per step and so cumulatively (tested as hypothesis
properties)::

    supply - demand = charged - discharged + dumped - unmet
    stored_end = stored_start - lost + charged - discharged
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from typing import Any

from adapters.base import Reading
from adapters.simulated.base import EPS, SimulatedDevice, hours_between
from vpp.config.models import SimulatedAdapter
from vpp.errors import InputError
from vpp.types import Clock


class PassiveStore(SimulatedDevice):
    """Base of the passive stores: content, limits, coupling and the step balance.

    Subclasses set ``registers`` -- (charged, discharged, unmet, surplus[,
    lost]) in the store's unit -- and ``stored_name``, pass the capacity and
    rate limits, and implement :meth:`_supplies` (which
    peer registers feed the node) and :meth:`_demand` (the node's offtake
    over a step).
    """

    stored_name = "stored"
    #: The lowest fill [fraction of capacity] a deficit may drain the store to. A heat store's
    #: ``soc_min`` is the plan's reserve: in a deficit the tank gives what it holds (it just
    #: cools), so its floor is 0; a hydrogen store cannot deliver below its minimum pressure.
    drain_floor: float | None = None

    def __init__(
        self,
        park_id: str,
        asset: Any,
        spec: SimulatedAdapter,
        *,
        clock: Clock,
        capacity: float,
        charge_rate: float,
        discharge_rate: float,
        soc: float | None,
    ) -> None:
        super().__init__(park_id, asset, spec, clock=clock)
        self.capacity = capacity
        self.charge_rate = charge_rate  # per hour, in the store's unit
        self.discharge_rate = discharge_rate
        self.soc_min, self.soc_max = asset.soc_limits
        start = asset.soc_initial if soc is None else soc
        # Standing losses may have taken a store below soc_min (the previous day's end):
        # only soc_max and the physical floor bound where it may start.
        if not -EPS <= start <= self.soc_max + EPS:
            raise InputError(f"soc {start} outside [0, {self.soc_max}]")
        self.stored = min(max(start, 0.0), self.soc_max) * capacity
        self.counters: dict[str, float] = dict.fromkeys(self.registers, 0.0)
        self.supplied = 0.0  # what the peers delivered, since start (not a device register)
        self.demanded = 0.0  # the node's offtake, since start
        self._peers: list[tuple[SimulatedDevice, str]] = []
        self._seen: list[float] = []

    def counter(self, name: str) -> float:
        """A cumulative register by its name (``charged_kwh``, ``unmet_kg``, ...)."""
        return self.counters[name]

    def restart_meter(self) -> dict[str, float]:
        self._advance()
        before = dict(self.counters)
        for name in self.counters:
            self.counters[name] = 0.0
            self._lost_to_restarts[name] = self._lost_to_restarts.get(name, 0.0) + before[name]
        return before

    def lifetime(self, register: str) -> float:
        return self.counters[register] + self._lost_to_restarts.get(register, 0.0)

    @property
    def soc(self) -> float:
        return self.stored / self.capacity

    def _supplies(self, peers: Mapping[str, SimulatedDevice]) -> list[tuple[SimulatedDevice, str]]:
        raise NotImplementedError

    def _demand(self, start: dt.datetime, end: dt.datetime) -> float:
        raise NotImplementedError

    def _loss(self, dt_h: float) -> float:
        return 0.0

    def couple(self, peers: Mapping[str, SimulatedDevice]) -> None:
        self._peers = self._supplies(peers)
        self._seen = []
        for peer, register in self._peers:
            peer._advance()
            self._seen.append(peer.lifetime(register))
            if self not in peer._listeners:
                peer._listeners.append(self)

    def _supply(self) -> float:
        """What the peers delivered since the store last looked (their registers' growth)."""
        return sum(self._peer_supplies())

    def _peer_supplies(self) -> list[float]:
        out = []
        for i, (peer, register) in enumerate(self._peers):
            peer._advance()
            now = peer.lifetime(register)
            out.append(now - self._seen[i])
            self._seen[i] = now
        return out

    def _demand_cuts(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        """Where the node's demand steps inside ``(start, end)`` (default: nowhere)."""
        return []

    def _integrate(self, start: dt.datetime, end: dt.datetime) -> None:
        supplies = self._peer_supplies()
        shapes = [peer.supply_shape(start, end) for peer, _ in self._peers]
        cuts = {start, end, *self._demand_cuts(start, end)}
        cuts.update(t for shape in shapes for t, _ in shape if start < t < end)
        edges = sorted(cuts)
        pieces = list(itertools.pairwise(edges))
        supply = [0.0] * len(pieces)
        for delivered, shape in zip(supplies, shapes, strict=True):
            weights = [
                _rate_at(shape, a) * hours_between(a, b) for a, b in pieces
            ]
            total = sum(weights)
            if total <= 0:
                weights = [hours_between(a, b) for a, b in pieces]
                total = sum(weights)
            for k, weight in enumerate(weights):
                supply[k] += delivered * weight / total if total > 0 else 0.0
        for (a, b), piece_supply in zip(pieces, supply, strict=True):
            self._step(a, b, piece_supply)

    def _step(self, start: dt.datetime, end: dt.datetime, supply: float) -> None:
        """One piece of constant supply and demand rates."""
        dt_h = hours_between(start, end)
        demand = self._demand(start, end)
        lost = self.stored * self._loss(dt_h)
        self.stored -= lost
        net = supply - demand
        room = max(self.soc_max * self.capacity - self.stored, 0.0)
        floor = self.soc_min if self.drain_floor is None else self.drain_floor
        content = max(self.stored - floor * self.capacity, 0.0)
        charge = min(max(net, 0.0), self.charge_rate * dt_h, room)
        discharge = min(max(-net, 0.0), self.discharge_rate * dt_h, content)
        self.stored += charge - discharge
        charged, discharged, unmet, surplus, *rest = self.registers
        self.counters[charged] += charge
        self.counters[discharged] += discharge
        self.counters[unmet] += max(-net, 0.0) - discharge
        self.counters[surplus] += max(net, 0.0) - charge
        if rest:
            self.counters[rest[0]] += lost
        self.supplied += supply
        self.demanded += demand

    def _reading(self, now: dt.datetime) -> Reading:
        return Reading(now, 0.0, self.soc, {**self.counters, self.stored_name: self.stored})


def _rate_at(shape: list[tuple[dt.datetime, float]], t: dt.datetime) -> float:
    """The relative rate of ``shape`` (``(from, rate)`` pieces) at ``t``."""
    rate = shape[0][1] if shape else 1.0
    for start, value in shape:
        if start <= t:
            rate = value
        else:
            break
    return rate
