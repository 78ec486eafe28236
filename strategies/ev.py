"""EV charging hubs: every session gets its stated energy between arrival and stated departure.

The model sees a *session table* per hub (built by
:func:`strategies.state.session_table` from what is known at decision time):
one row per session with ``charger``, ``arrival``, ``stated_departure``,
``energy_kwh`` (still to deliver inside the horizon) and ``weight`` (1 for a
session that has arrived; ``1/K`` for an *expected* session, see
:mod:`strategies.state`).

Variable ``charge_kw`` (rows = sessions x scenarios, columns = intervals),
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
    stack: Stack  # over hubs
    specs: tuple[EvChargingSpec, ...]
    sessions: pd.DataFrame  # all hubs' sessions, column 'hub' = position in specs
    session_stack: Stack
    charge_kw: cp.Variable | None
    to_hub: sp.csr_matrix  # (S * hubs, S * sessions)
    steps: int

    @property
    def power_kw(self) -> cp.Expression:
        if self.charge_kw is None:
            return cp.Constant(np.zeros((self.stack.rows, self.steps)))
        return -(self.to_hub @ self.charge_kw)


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
        frame = table.loc[:, list(SESSION_TABLE_COLUMNS)].copy()
        frame["hub"] = hub
        frames.append(frame)
    sessions = (
        pd.concat(frames, ignore_index=True)
        if frames and any(len(f) for f in frames)
        else pd.DataFrame(columns=[*SESSION_TABLE_COLUMNS, "hub"])
    )
    ids = tuple(
        f"{specs[h].id}/{sid}" for h, sid in zip(sessions["hub"], sessions["session_id"], strict=True)
    )
    session_stack = Stack(ids, stack.scenarios, stack.weights)
    if sessions.empty:
        return EvBlock(stack, specs, sessions, session_stack, None, sp.csr_matrix((0, 0)), steps)

    hub_of = sessions["hub"].to_numpy(int)
    weight = sessions["weight"].to_numpy(float)
    energy = sessions["energy_kwh"].to_numpy(float)
    if not (np.isfinite(energy).all() and (energy >= 0).all()):
        raise ValueError("EV session energy must be finite and >= 0")
    charger_kw = np.array([specs[h].charger_power_kw for h in hub_of])
    share = availability(sessions, index, dt_h)
    upper = session_stack.tile(charger_kw[:, None] * weight[:, None] * share)
    charge_kw = cp.Variable(
        upper.shape, name="ev_charge_kw", bounds=builder.bounds("ev:charge-bounds", 0.0, upper)
    )

    builder.add(
        ASSET_TYPE, "energy", "required", session_stack.labels,
        charge_kw @ dt_h - session_stack.tile(energy), "==",
    )

    n, hubs = len(sessions), len(specs)
    scenario = np.repeat(np.arange(stack.scenarios), n)
    rows = scenario * hubs + np.tile(hub_of, stack.scenarios)
    to_hub = sp.csr_matrix(
        (np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(stack.rows, session_stack.rows)
    )
    hub_limit = stack.tile(np.array([s.hub_limit_kw for s in specs]))[:, None]
    builder.add(ASSET_TYPE, "hub", "max", stack.labels, to_hub @ charge_kw - hub_limit, "<=")

    # Arrived sessions sharing a charge point with overlapping stated windows.
    real = weight >= 1.0
    groups: list[np.ndarray] = []
    keys = sessions.loc[real, ["hub", "charger"]].drop_duplicates().itertuples(index=False)
    for hub, charger in keys:
        members = np.flatnonzero(
            real & (hub_of == hub) & (sessions["charger"].to_numpy() == charger)
        )
        if len(members) > 1 and ((share[members] > 0).sum(axis=0) > 1).any():
            groups.append(members)
    if groups:
        labels, g_rows, g_cols, limits = [], [], [], []
        for s in range(stack.scenarios):
            for members in groups:
                first = members[0]
                suffix = "" if stack.scenarios == 1 else f"@s{s}"
                labels.append(
                    f"{specs[hub_of[first]].id}/charger-{sessions['charger'].iloc[first]}{suffix}"
                )
                g_rows.extend([len(labels) - 1] * len(members))
                g_cols.extend(s * n + members)
                limits.append(charger_kw[first])
        to_charger = sp.csr_matrix(
            (np.ones(len(g_rows)), (g_rows, g_cols)), shape=(len(labels), session_stack.rows)
        )
        builder.add(
            ASSET_TYPE, "charger", "max", labels,
            to_charger @ charge_kw - np.array(limits)[:, None], "<=",
        )
    return EvBlock(stack, specs, sessions, session_stack, charge_kw, to_hub, steps)
