"""EV charging hubs: every session gets its stated energy between arrival and stated departure.

The model sees a *session table* per hub (built by
:func:`strategies.state.session_table` from what is known at decision time):
one row per session with ``charger``, ``arrival``, ``stated_departure``,
``energy_kwh`` (still to deliver inside the horizon) and ``weight`` (1 for a
session that has arrived; ``1/K`` for an *expected* session, see
:mod:`strategies.state`).

Variable ``charge_kw`` holds one value per (session, scenario, interval) in
which the session is plugged in (sparse: idle pairs have no variable),
boxed by ``[0, charger_power_kw x weight x available]`` where ``available``
is the share of the interval inside the session's window
(``ev:charge-bounds``). Constraints:

* ``energy-required``: ``sum_t charge_kw[s, t] * dt[t] == energy_kwh[s]``;
* ``hub-max``: the sum over a hub's sessions <= ``hub_limit_kw``;
* ``charger-max``: sessions that have arrived and share a charge point with
  overlapping stated windows together stay within ``charger_power_kw``
  (expected sessions are an average, not a physical plug, so they are bound
  by their own box and the hub limit only).

Power into the grid: ``-sum(charge_kw)`` per hub.

``energy-required`` carries measured state (what a car has received) and is
soft in real time (:mod:`strategies._model`): a car that can no longer get
everything still gets as much as the hub can give it.

**Slots (real time).** Cars arrive and leave during the day; a model whose
variables are the sessions would change shape at every arrival.
:func:`add_ev_slots` builds a fixed table of *slots* instead: per hub,
``lanes x per_lane`` slots for plugged-in cars, each with a variable in every
interval of the horizon, plus one slot per expected session of the day (its
pairs are the intervals of its full-day window; windows only shrink as the
day goes on). A slot's box (charger power x weight x share of the interval
inside its window, zero before the position) and energy are Parameters,
filled by :meth:`EvBlock.set_sessions` from the session tables of the
current position; an empty slot has a zero box and zero energy. Plugged-in
cars sharing a charger go into the same lane, whose slots share one
``charger-max`` row per interval (built only when ``per_lane > 1``; with one
slot per lane the box is that limit). More cars or chargers than the slots
hold raise :class:`SlotsExhaustedError` and the caller rebuilds with more.
**Expected EV arrivals (day-ahead).** At day-ahead gate closure nobody has
arrived yet for the delivery day. The forecast (:func:`expected_sessions`)
replays the hub's sessions of the same weekday in each of the previous ``K``
weeks (default 4), shifted onto the delivery day, each with weight ``1/K``:
its energy and its power limit are scaled by ``1/K``. The sum is the average
fleet of those weeks, with realistic arrival times, dwell times and
energies; the hub limit applies to it in full. Only sessions that arrived
before the decision time are used, so the forecast cannot see the future.

**Energy policy.** Drivers' requests are often more than a charge point can
deliver before their stated departure (about a quarter of the Caltech
sessions). With ``energy_policy="cap"`` (default) such a request is capped
at what the charge point can deliver inside the window, and the number of
capped sessions is logged (``ev_request_capped``); with ``"strict"`` the
request stands and an impossible one raises
:class:`~vpp.InfeasibleError` naming ``"{hub}/{session}-energy-required"``.
Sessions whose stated window extends beyond the horizon must receive the
share of their remaining energy proportional to the share of their
remaining window inside the horizon (:func:`session_table`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp
import structlog

from strategies._model import ModelBuilder, NamedConstraint, Stack
from strategies.state import (
    KNOWN_SESSION_COLUMNS,
    AssetState,
    EnergyPolicy,
    ParkInputs,
    ParkState,
    state_of,
)
from vpp.config.models import EvChargingSpec
from vpp.errors import InputError
from vpp.profiles import ev_sessions

if TYPE_CHECKING:
    from strategies.assets import InputsRequest
    from strategies.park import ParkModelRequest

log = structlog.get_logger(__name__)

ASSET_TYPE = "ev"

SESSION_TABLE_COLUMNS = (
    "session_id",
    "charger",
    "arrival",
    "stated_departure",
    "energy_kwh",
    "weight",
)


def availability(sessions: pd.DataFrame, index: pd.DatetimeIndex, dt_h: np.ndarray) -> np.ndarray:
    """Share [0, 1] of each interval inside each session's [arrival, stated_departure)."""
    if sessions.empty:
        return np.zeros((0, len(index)))
    return availability_ns(
        pd.DatetimeIndex(sessions["arrival"]).as_unit("ns").asi8,
        pd.DatetimeIndex(sessions["stated_departure"]).as_unit("ns").asi8,
        index.as_unit("ns").asi8,
        dt_h,
    )


def availability_ns(
    arrival_ns: np.ndarray, departure_ns: np.ndarray, starts_ns: np.ndarray, dt_h: np.ndarray
) -> np.ndarray:
    """:func:`availability` on UTC nanoseconds: (sessions, intervals)."""
    starts = np.asarray(starts_ns).astype(np.float64)
    ends = starts + dt_h * 3.6e12
    arrival = np.asarray(arrival_ns).astype(np.float64)
    departure = np.asarray(departure_ns).astype(np.float64)
    overlap = np.minimum(ends[None, :], departure[:, None]) - np.maximum(
        starts[None, :], arrival[:, None]
    )
    return np.clip(overlap / (dt_h * 3.6e12)[None, :], 0.0, 1.0)


@dataclass
class EvBlock:
    """The EV hubs of one park. Charging power is one variable per (session, interval) pair
    in which the session can charge (its window), so idle pairs cost nothing to compile."""

    stack: Stack  # over hubs
    specs: tuple[EvChargingSpec, ...]
    sessions: pd.DataFrame  # all hubs' sessions, column 'hub' = position in specs
    session_stack: Stack
    charge_kw: cp.Variable | None  # (pairs,)
    pair_row: np.ndarray  # stacked session row of each pair
    pair_step: np.ndarray  # interval of each pair
    to_hub: sp.csr_matrix  # (S * hubs * T, pairs)
    steps: int
    energy_kwh: cp.Parameter | None = None  # (S * sessions,) energy each session still needs
    slots: SlotLayout | None = None  # real-time slot table (see module doc)
    box_kw: cp.Parameter | None = None  # (pairs,) slot boxes
    energy_rows: NamedConstraint | None = None
    #: slot models: the session each slot holds now ("{hub}/{session}", or the slot's id)
    slot_labels: list[str] = field(default_factory=list)

    def set_energy(self, energy_kwh: np.ndarray) -> None:
        """Update the energy [kWh] each session still needs (sessions,), e.g. in real time."""
        energy = np.asarray(energy_kwh, dtype=float)
        if energy.shape != (len(self.sessions),) or not np.isfinite(energy).all() or (energy < 0).any():
            raise InputError(f"need {len(self.sessions)} finite energies >= 0, got {energy}")
        if self.energy_kwh is not None:
            self.energy_kwh.value = self.session_stack.tile(energy)

    @property
    def power_kw(self) -> cp.Expression:
        if self.charge_kw is None:
            return cp.Constant(np.zeros((self.stack.rows, self.steps)))
        return -cp.reshape(self.to_hub @ self.charge_kw, (self.stack.rows, self.steps), order="C")

    def set_sessions(
        self, known: Sequence[SessionWindow], expected: Sequence[SessionWindow], position: int
    ) -> None:
        """Fill the slots with each hub's plugged-in (``known``) and expected sessions as seen
        from interval ``position`` (:func:`strategies.state.window_sessions` over the
        intervals ``[position, T)``).

        Raises :class:`SlotsExhaustedError` if the plugged-in cars need more lanes or
        slots per lane than the layout has.
        """
        layout = self.slots
        if layout is None:
            raise InputError("set_sessions needs a slot model (add_ev_slots)")
        need = layout.needs([w.sessions.charger for w in known])
        if any(n[0] > c[0] or n[1] > c[1] for n, c in zip(need, layout.capacity, strict=True)):
            raise SlotsExhaustedError(need)
        if self.box_kw is None or self.energy_kwh is None:
            return  # no slot at all: nothing plugged in, nothing expected
        box = np.zeros((layout.size, self.steps))
        energy = np.zeros(layout.size)
        labels = list(self.session_stack.ids)
        for hub, spec in enumerate(self.specs):
            for window, kind in ((known[hub], "known"), (expected[hub], "expected")):
                rows = window.sessions
                if not len(rows):
                    continue
                if kind == "known":
                    slot = layout.known_slots(hub, rows.charger)
                else:
                    slot = layout.expected_slots(hub, rows.session_id)
                box[slot, position:] = spec.charger_power_kw * rows.weight[:, None] * window.share
                energy[slot] = window.energy_kwh
                for i, session_id in zip(slot, rows.session_id, strict=True):
                    labels[i] = f"{spec.id}/{session_id}"
        self.slot_labels = labels
        self.box_kw.value = box[self.pair_row, self.pair_step]
        self.energy_kwh.value = energy

    def session_power_kw(self, scenario: int = 0) -> np.ndarray:
        """Solved charging power [kW, >= 0] per session (sessions, T) in ``scenario``."""
        n = len(self.sessions)
        out = np.zeros((n, self.steps))
        if self.charge_kw is None:
            return out
        value = np.asarray(self.charge_kw.value, dtype=float)
        mine = (self.pair_row // max(n, 1)) == scenario
        out[self.pair_row[mine] % n, self.pair_step[mine]] = value[mine]
        return out


class SlotsExhaustedError(ValueError):
    """The plugged-in cars need more slots than the compiled layout holds."""

    def __init__(self, need: Sequence[tuple[int, int]]) -> None:
        super().__init__(f"EV slots exhausted: need (lanes, per lane) {list(need)}")
        self.need = list(need)


@dataclass
class SlotLayout:
    """Where each hub's slots sit (see module doc). Slots are numbered hub by hub:
    ``lanes x per_lane`` slots for plugged-in cars, then one per expected session."""

    capacity: list[tuple[int, int]]  # per hub: (lanes, slots per lane)
    expected_ids: list[dict[str, int]]  # per hub: expected session id -> slot
    offsets: list[int]  # first slot of each hub
    size: int

    def needs(self, chargers: Sequence[np.ndarray]) -> list[tuple[int, int]]:
        """(lanes, slots per lane) each hub's plugged-in cars need: one lane per charger."""
        out = []
        for hub_chargers in chargers:
            if len(hub_chargers) == 0:
                out.append((0, 0))
                continue
            _, counts = np.unique(_lane_keys(hub_chargers), return_counts=True)
            out.append((len(counts), int(counts.max())))
        return out

    def known_slots(self, hub: int, chargers: np.ndarray) -> np.ndarray:
        """Slot of each plugged-in car: lane = its charger's rank, then the next free slot."""
        lanes: dict[str, int] = {}
        used: dict[str, int] = {}
        slots = np.empty(len(chargers), dtype=int)
        for i, key in enumerate(_lane_keys(chargers)):
            lane = lanes.setdefault(key, len(lanes))
            rank = used.get(key, 0)
            used[key] = rank + 1
            slots[i] = self.offsets[hub] + lane * self.capacity[hub][1] + rank
        return slots

    def expected_slots(self, hub: int, session_ids: np.ndarray) -> np.ndarray:
        ids = self.expected_ids[hub]
        try:
            return np.array([ids[str(s)] for s in session_ids], dtype=int)
        except KeyError as exc:
            raise InputError(f"expected session {exc} is not in the day's slot layout") from None


def _lane_keys(chargers: np.ndarray) -> list[str]:
    """One key per charger; a car without a charger id gets a lane of its own."""
    return [
        f"charger:{c}" if not pd.isna(c) else f"session:{i}" for i, c in enumerate(chargers)
    ]


def add_ev_slots(
    builder: ModelBuilder,
    specs: Sequence[EvChargingSpec],
    expected: Sequence[SessionWindow],
    capacity: Sequence[tuple[int, int]],
    index: pd.DatetimeIndex,
    dt_h: np.ndarray,
    stack: Stack,
) -> EvBlock:
    """EV hubs as a fixed slot table (real time, see module doc); one scenario only.

    ``expected[i]``: hub ``i``'s expected sessions seen from the start of the
    horizon (:func:`strategies.state.window_sessions`); ``capacity[i]``: (lanes,
    slots per lane) for its plugged-in cars. Fill with :meth:`EvBlock.set_sessions`.
    """
    specs = tuple(specs)
    if stack.scenarios != 1:
        raise InputError("EV slots model one scenario (real time)")
    steps = len(dt_h)
    ids, rows, steps_of, hub_of_slot = [], [], [], []
    expected_ids: list[dict[str, int]] = []
    offsets: list[int] = []
    lane_groups: list[tuple[int, np.ndarray]] = []  # (hub, slots of one lane) when per_lane > 1
    slot = 0
    for hub, spec in enumerate(specs):
        offsets.append(slot)
        lanes, per_lane = capacity[hub]
        for lane in range(lanes):
            members = np.arange(slot, slot + per_lane)
            if per_lane > 1:
                lane_groups.append((hub, members))
            for k in range(per_lane):
                ids.append(f"{spec.id}/lane-{lane}.{k}")
                rows.append(np.full(steps, slot))
                steps_of.append(np.arange(steps))
                hub_of_slot.append(hub)
                slot += 1
        share = expected[hub].share
        mine: dict[str, int] = {}
        for i, session_id in enumerate(expected[hub].sessions.session_id):
            mine[session_id] = slot
            ids.append(f"{spec.id}/{session_id}")
            window = np.flatnonzero(share[i] > 0)
            rows.append(np.full(len(window), slot))
            steps_of.append(window)
            hub_of_slot.append(hub)
            slot += 1
        expected_ids.append(mine)
    layout = SlotLayout([(int(c[0]), int(c[1])) for c in capacity], expected_ids, offsets, slot)
    session_stack = Stack(tuple(ids), 1, stack.weights)
    pair_row = np.concatenate(rows) if rows else np.zeros(0, dtype=int)
    pair_step = np.concatenate(steps_of) if steps_of else np.zeros(0, dtype=int)
    pairs = len(pair_row)
    slots_frame = pd.DataFrame({"session_id": ids, "hub": hub_of_slot})
    if pairs == 0:
        empty = np.zeros(0, dtype=int)
        return EvBlock(stack, specs, slots_frame, session_stack, None, empty, empty,
                       sp.csr_matrix((0, 0)), steps, slots=layout)
    box = cp.Parameter(pairs, name="ev_charge_max_kw", nonneg=True, value=np.zeros(pairs))
    charge_kw = cp.Variable(pairs, name="ev_charge_kw",
                            bounds=builder.bounds("ev:charge-bounds", 0.0, box))
    columns = np.arange(pairs)
    to_session = sp.csr_matrix((dt_h[pair_step], (pair_row, columns)), shape=(slot, pairs))
    energy_kwh = cp.Parameter(slot, name="ev_energy_kwh", nonneg=True, value=np.zeros(slot))
    energy_rows = builder.add(
        ASSET_TYPE, "energy", "required", session_stack.labels,
        to_session @ charge_kw - energy_kwh, "==", soft=True,
    )
    hub_of = np.asarray(hub_of_slot)
    to_hub = sp.csr_matrix(
        (np.ones(pairs), (hub_of[pair_row] * steps + pair_step, columns)),
        shape=(len(specs) * steps, pairs),
    )
    hub_kw = cp.reshape(to_hub @ charge_kw, (len(specs), steps), order="C")
    hub_limit = np.array([s.hub_limit_kw for s in specs])[:, None]
    builder.add(ASSET_TYPE, "hub", "max", stack.labels, hub_kw - hub_limit, "<=")
    if lane_groups:
        lane_of = np.full(slot, -1)
        for g, (_, members) in enumerate(lane_groups):
            lane_of[members] = g
        in_lane = lane_of[pair_row] >= 0
        to_lane = sp.csr_matrix(
            (np.ones(int(in_lane.sum())),
             (lane_of[pair_row[in_lane]] * steps + pair_step[in_lane], columns[in_lane])),
            shape=(len(lane_groups) * steps, pairs),
        )
        lane_kw = cp.reshape(to_lane @ charge_kw, (len(lane_groups), steps), order="C")
        limits = np.array([specs[h].charger_power_kw for h, _ in lane_groups])[:, None]
        labels = [ids[members[0]].rsplit(".", 1)[0] for _, members in lane_groups]
        builder.add(ASSET_TYPE, "charger", "max", labels, lane_kw - limits, "<=")
    return EvBlock(
        stack, specs, slots_frame, session_stack, charge_kw, pair_row, pair_step, to_hub, steps,
        energy_kwh, layout, box, energy_rows, list(ids),
    )


def add_ev_hubs(
    builder: ModelBuilder,
    specs: Sequence[EvChargingSpec],
    tables: Sequence[pd.DataFrame],
    index: pd.DatetimeIndex,
    dt_h: np.ndarray,
    stack: Stack,
) -> EvBlock:
    """Add every EV hub of a park; ``tables[i]`` is hub ``i``'s session table."""
    specs = tuple(specs)
    steps = len(dt_h)
    frames = []
    for hub, table in enumerate(tables):
        missing = set(SESSION_TABLE_COLUMNS) - set(table.columns)
        if missing:
            raise InputError(f"{specs[hub].id}: session table lacks {sorted(missing)}")
        if table.empty:
            continue
        frame = table.loc[:, list(SESSION_TABLE_COLUMNS)].copy()
        frame["hub"] = hub
        frames.append(frame)
    sessions = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*SESSION_TABLE_COLUMNS, "hub"])
    )
    ids = tuple(
        f"{specs[h].id}/{sid}" for h, sid in zip(sessions["hub"], sessions["session_id"], strict=True)
    )
    session_stack = Stack(ids, stack.scenarios, stack.weights)
    empty = np.zeros(0, dtype=int)
    if sessions.empty:
        return EvBlock(
            stack, specs, sessions, session_stack, None, empty, empty, sp.csr_matrix((0, 0)), steps
        )

    n, hubs = len(sessions), len(specs)
    hub_of = sessions["hub"].to_numpy(int)
    weight = sessions["weight"].to_numpy(float)
    energy = sessions["energy_kwh"].to_numpy(float)
    if not (np.isfinite(energy).all() and (energy >= 0).all()):
        raise InputError("EV session energy must be finite and >= 0")
    charger_kw = np.array([specs[h].charger_power_kw for h in hub_of])
    share = availability(sessions, index, dt_h)
    upper = charger_kw[:, None] * weight[:, None] * share  # (n, T)
    session, step = np.nonzero(upper > 0)
    scenario = np.repeat(np.arange(stack.scenarios), len(session))
    pair_row = scenario * n + np.tile(session, stack.scenarios)
    pair_step = np.tile(step, stack.scenarios)
    pairs = len(pair_row)
    bounds = builder.bounds("ev:charge-bounds", 0.0, np.tile(upper[session, step], stack.scenarios))
    charge_kw = cp.Variable(max(pairs, 1), name="ev_charge_kw", bounds=bounds)
    if pairs == 0:  # sessions exist but none can charge inside the horizon
        charge_kw = cp.Variable(1, name="ev_charge_kw", bounds=[np.zeros(1), np.zeros(1)])
    columns = np.arange(pairs)
    to_session = sp.csr_matrix(
        (dt_h[pair_step], (pair_row, columns)), shape=(session_stack.rows, charge_kw.size)
    )
    energy_kwh = cp.Parameter(session_stack.rows, name="ev_energy_kwh", nonneg=True)
    energy_kwh.value = session_stack.tile(energy)
    builder.add(
        ASSET_TYPE, "energy", "required", session_stack.labels,
        to_session @ charge_kw - energy_kwh, "==", soft=True,
    )
    hub_row = (pair_row // n) * hubs + hub_of[pair_row % n]
    to_hub = sp.csr_matrix(
        (np.ones(pairs), (hub_row * steps + pair_step, columns)),
        shape=(stack.rows * steps, charge_kw.size),
    )
    hub_kw = cp.reshape(to_hub @ charge_kw, (stack.rows, steps), order="C")
    hub_limit = stack.tile(np.array([s.hub_limit_kw for s in specs]))[:, None]
    builder.add(ASSET_TYPE, "hub", "max", stack.labels, hub_kw - hub_limit, "<=")

    # Arrived sessions sharing a charge point with overlapping stated windows.
    real = weight >= 1.0
    groups: list[np.ndarray] = []
    chargers = sessions["charger"].to_numpy()
    for hub, charger in sessions.loc[real, ["hub", "charger"]].drop_duplicates().itertuples(
        index=False
    ):
        members = np.flatnonzero(real & (hub_of == hub) & (chargers == charger))
        if len(members) > 1 and ((share[members] > 0).sum(axis=0) > 1).any():
            groups.append(members)
    if groups:
        group_of = np.full(n, -1)
        labels, limits = [], []
        for s in range(stack.scenarios):
            suffix = "" if stack.scenarios == 1 else f"@s{s}"
            for members in groups:
                first = members[0]
                labels.append(f"{specs[hub_of[first]].id}/charger-{chargers[first]}{suffix}")
                limits.append(charger_kw[first])
        for g, members in enumerate(groups):
            group_of[members] = g
        in_group = group_of[pair_row % n] >= 0
        group_row = (pair_row // n) * len(groups) + group_of[pair_row % n]
        to_charger = sp.csr_matrix(
            (np.ones(int(in_group.sum())),
             (group_row[in_group] * steps + pair_step[in_group], columns[in_group])),
            shape=(len(labels) * steps, charge_kw.size),
        )
        charger_kw_expr = cp.reshape(to_charger @ charge_kw, (len(labels), steps), order="C")
        builder.add(
            ASSET_TYPE, "charger", "max", labels,
            charger_kw_expr - np.array(limits)[:, None], "<=",
        )
    return EvBlock(
        stack, specs, sessions, session_stack, charge_kw, pair_row, pair_step, to_hub, steps,
        energy_kwh,
    )


# --------------------------------------------------------------------------- sessions


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


def charge_on_arrival(
    hub: EvChargingSpec, table: pd.DataFrame, index: pd.DatetimeIndex, dt_h: np.ndarray
) -> np.ndarray:
    """Uncontrolled charging: full power from arrival until the energy is in, then hub-capped."""
    if table.empty:
        return np.zeros(len(index))
    share = availability(table, index, dt_h)
    rate = hub.charger_power_kw * table["weight"].to_numpy(float)[:, None] * share
    needed = table["energy_kwh"].to_numpy(float)
    delivered_before = np.cumsum(rate * dt_h[None, :], axis=1) - rate * dt_h[None, :]
    left = np.clip(needed[:, None] - delivered_before, 0.0, None)
    charge = np.minimum(rate, left / dt_h[None, :]).sum(axis=0)
    return np.minimum(charge, hub.hub_limit_kw)


class EvModel:
    """The EV-charging type in the strategy layer (:class:`strategies.assets.AssetModel`).

    In real time the plugged-in and expected cars of a position are put into
    the slot table by the dispatcher (:meth:`EvBlock.set_sessions`), since
    more cars than the slots hold means a rebuild; :meth:`set_position` has
    nothing left to do.
    """

    asset_type = ASSET_TYPE
    build_rank = 3
    idle_after_others = False

    def add_block(
        self,
        builder: ModelBuilder,
        specs: Sequence[EvChargingSpec],
        stack: Stack,
        request: ParkModelRequest,
    ) -> EvBlock:
        index, dt_h = request.index, request.dt_h
        if request.dynamic is not None:
            layout = request.dynamic
            return add_ev_slots(
                builder, specs, [layout.expected[h.id] for h in specs],
                [layout.capacity[h.id] for h in specs], index, dt_h, stack,
            )
        tables = [
            request.session_tables[hub.id]
            if request.session_tables is not None
            else session_table(
                hub,
                state_of(request.state, hub.id).sessions,
                request.inputs.expected_sessions.get(hub.id),
                index,
                dt_h,
                energy_policy=request.energy_policy,
            )
            for hub in specs
        ]
        return add_ev_hubs(builder, specs, tables, index, dt_h, stack)

    def soc_kwh(self, block: EvBlock, scenarios: int) -> dict[str, np.ndarray]:
        return {}

    def set_position(self, block: EvBlock, state: ParkState | None, position: int) -> None:
        return None

    def idle_power_kw(
        self,
        specs: Sequence[EvChargingSpec],
        inputs: ParkInputs,
        state: ParkState | None,
        dt_h: np.ndarray,
        headroom_kw: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Idle: every car charges at full power from arrival (:func:`charge_on_arrival`)."""
        power = {}
        for hub in specs:
            table = session_table(
                hub, state_of(state, hub.id).sessions, inputs.expected_sessions.get(hub.id),
                inputs.index, dt_h,
            )
            power[hub.id] = -charge_on_arrival(hub, table, inputs.index, dt_h)
        return power, {}

    def initial_state(self, spec: EvChargingSpec) -> AssetState:
        return AssetState()

    def load_inputs(self, spec: EvChargingSpec, request: InputsRequest) -> Mapping[str, Any]:
        """Forecast (``decision_time`` set): the expected sessions (:func:`expected_sessions`)
        for arrivals in ``[max(decision_time, index[0]), horizon end)``; realized: none (perfect
        foresight plugs the realized sessions in as state, :meth:`realized_state`)."""
        if request.decision_time is None:
            return {}
        expected = expected_sessions(
            spec, request.config_dir, request.index, request.timezone, request.decision_time,
            request.expected_weeks,
        )
        return {"expected_sessions": expected}

    def realized_state(
        self, spec: EvChargingSpec, previous: AssetState, request: InputsRequest
    ) -> AssetState | None:
        """``previous`` with every session of the horizon plugged in as it will happen."""
        sessions = realized_sessions(spec, request.config_dir, request.index, request.timezone)
        return AssetState(
            previous.soc_kwh, sessions, previous.energy_offset_kwh, previous.shift_kw
        )


MODEL = EvModel()
