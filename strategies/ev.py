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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from strategies._model import ModelBuilder, Stack
from vpp.config.models import EvChargingSpec

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
    starts = index.as_unit("ns").asi8.astype(np.float64)
    ends = starts + dt_h * 3.6e12
    arrival = pd.DatetimeIndex(sessions["arrival"]).as_unit("ns").asi8.astype(np.float64)
    departure = pd.DatetimeIndex(sessions["stated_departure"]).as_unit("ns").asi8.astype(np.float64)
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

    def set_energy(self, energy_kwh: np.ndarray) -> None:
        """Update the energy [kWh] each session still needs (sessions,), e.g. in real time."""
        energy = np.asarray(energy_kwh, dtype=float)
        if energy.shape != (len(self.sessions),) or not np.isfinite(energy).all() or (energy < 0).any():
            raise ValueError(f"need {len(self.sessions)} finite energies >= 0, got {energy}")
        if self.energy_kwh is not None:
            self.energy_kwh.value = self.session_stack.tile(energy)

    @property
    def power_kw(self) -> cp.Expression:
        if self.charge_kw is None:
            return cp.Constant(np.zeros((self.stack.rows, self.steps)))
        return -cp.reshape(self.to_hub @ self.charge_kw, (self.stack.rows, self.steps), order="C")

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
            raise ValueError(f"{specs[hub].id}: session table lacks {sorted(missing)}")
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
        raise ValueError("EV session energy must be finite and >= 0")
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
        to_session @ charge_kw - energy_kwh, "==",
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
