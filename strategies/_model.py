"""Model plumbing shared by the asset modules: named constraints and scenario stacking.

Every asset module builds its constraints through a :class:`ModelBuilder`,
which records each constraint group with

* the asset type, a ``quantity`` and a ``bound`` (``soc``/``max``,
  ``energy``/``required``, ...),
* one label per row of axis 0 (an asset id, or ``asset@s2`` for scenario 2),
* the constraint written as ``lhs == 0`` or ``lhs <= 0``.

That is enough to (a) name the constraint that makes a problem infeasible as
``"{label}-{quantity}-{bound}"`` (see :func:`strategies._solver.diagnose`)
and (b) build the model *without* one kind of constraint, which the tests use
to prove that each constraint matters.

**Soft rows (real time only).** A builder made with ``soft=True`` turns the
groups added with ``soft=True`` -- the energy a plan still owes because of a
*measured* state (process recovery, EV energy, battery end-of-day SoC) -- into
``lhs == over - under`` (``lhs <= over``) with ``over, under >= 0`` and adds
``sum(weight * (over + under))`` to the cost, ``weight`` a
:class:`cvxpy.Parameter` (currency per unit of the row, kWh for all of them)
set by :meth:`ModelBuilder.set_soft_penalty`. Day-ahead, plans and perfect
foresight build hard rows (``soft=False``, the default).

Scenarios are stacked on the asset axis: with ``S`` scenarios and ``n``
assets of a type, variables have ``S * n`` rows and row ``s * n + i`` is
asset ``i`` in scenario ``s``. One vectorised builder therefore serves the
deterministic schedule (``S = 1``) and the stochastic bid program.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from vpp.errors import InputError

Sense = Literal["==", "<="]
#: A variable bound: values, or a Parameter (real-time models move their boxes per solve).
Bound = np.ndarray | float | cp.Parameter | None

#: Penalty of a soft row until :meth:`ModelBuilder.set_soft_penalty` sets one: 10 per kWh
#: (10,000 per MWh), far above any energy price the examples see.
DEFAULT_SOFT_PENALTY_PER_UNIT = 10.0


@dataclass(frozen=True)
class NamedConstraint:
    """One vectorised constraint group: ``lhs == 0`` or ``lhs <= 0``, rows labelled on axis 0."""

    asset_type: str
    quantity: str
    bound: str
    labels: tuple[str, ...]
    lhs: cp.Expression
    sense: Sense
    constraint: cp.Constraint
    violation: cp.Expression | None = None  # over + under (>= 0) of a soft group
    weight: cp.Parameter | None = None  # penalty per unit of violation, shape of lhs

    @property
    def soft(self) -> bool:
        return self.weight is not None

    @property
    def kind(self) -> str:
        """``"{asset_type}:{quantity}-{bound}"``, the key used to omit a constraint kind."""
        return f"{self.asset_type}:{self.quantity}-{self.bound}"

    def row_name(self, row: int) -> str:
        """``"{label}-{quantity}-{bound}"`` for row ``row`` of axis 0."""
        return f"{self.labels[row]}-{self.quantity}-{self.bound}"


@dataclass
class ModelBuilder:
    """Collects named constraints and objective terms of one optimisation model.

    ``omit`` lists constraint kinds (``"battery:soc-balance"``) or bound kinds
    (``"battery:soc-bounds"``) to leave out; it exists for tests and
    diagnostics, never for production use.
    """

    omit: frozenset[str] = frozenset()
    soft: bool = False
    constraints: list[NamedConstraint] = field(default_factory=list)
    cost_terms: list[cp.Expression] = field(default_factory=list)

    def keeps(self, kind: str) -> bool:
        return kind not in self.omit

    def bounds(self, kind: str, lower: Bound, upper: Bound) -> list[Bound] | None:
        """Variable bounds unless ``kind`` is omitted (then the variable is free)."""
        if kind in self.omit:
            return None
        return [lower, upper]

    def add(
        self,
        asset_type: str,
        quantity: str,
        bound: str,
        labels: Sequence[str],
        lhs: cp.Expression,
        sense: Sense,
        *,
        soft: bool = False,
    ) -> NamedConstraint | None:
        """Add ``lhs == 0`` or ``lhs <= 0`` with rows of axis 0 labelled by ``labels``.

        ``soft=True`` marks a row that carries measured state: in a builder made
        with ``soft=True`` it gets penalised slack (see module doc).
        """
        kind = f"{asset_type}:{quantity}-{bound}"
        if kind in self.omit:
            return None
        rows = lhs.shape[0] if lhs.ndim else 1
        if rows != len(labels):
            raise InputError(f"{kind}: {rows} rows but {len(labels)} labels")
        violation: cp.Expression | None = None
        weight: cp.Parameter | None = None
        if soft and self.soft:
            over = cp.Variable(lhs.shape, name=f"{asset_type}_{quantity}_{bound}_over", nonneg=True)
            weight = cp.Parameter(lhs.shape, name=f"{asset_type}_{quantity}_{bound}_penalty",
                                  nonneg=True,
                                  value=np.full(lhs.shape, DEFAULT_SOFT_PENALTY_PER_UNIT))
            if sense == "==":
                under = cp.Variable(lhs.shape, name=f"{asset_type}_{quantity}_{bound}_under",
                                    nonneg=True)
                constraint = lhs - over + under == 0
                violation = over + under
            else:
                constraint = lhs - over <= 0
                violation = over
            self.add_cost(cp.sum(cp.multiply(weight, violation)))
        else:
            constraint = lhs == 0 if sense == "==" else lhs <= 0
        named = NamedConstraint(
            asset_type, quantity, bound, tuple(labels), lhs, sense, constraint, violation, weight
        )
        self.constraints.append(named)
        return named

    def soft_groups(self) -> list[NamedConstraint]:
        return [c for c in self.constraints if c.soft]

    def set_soft_penalty(self, per_unit: float) -> None:
        """Penalty [currency per unit of violation] of every soft row."""
        if not np.isfinite(per_unit) or per_unit < 0:
            raise InputError(f"soft penalty must be finite and >= 0, got {per_unit}")
        for named in self.soft_groups():
            if named.weight is not None:
                named.weight.value = np.full(named.lhs.shape, float(per_unit))

    def soft_violations(
        self, tol: float = 1e-6, labels: Mapping[int, Sequence[str]] | None = None
    ) -> dict[str, float]:
        """Row name -> slack used [unit of the row] by soft rows (after a solve).

        ``labels`` (``id(named)`` -> row labels) renames the rows of a group whose
        rows change meaning between solves (EV slots hold different cars).
        """
        out: dict[str, float] = {}
        for named in self.soft_groups():
            if named.violation is None or named.violation.value is None:
                continue
            value = np.asarray(named.violation.value, dtype=float)
            value = value.reshape(value.shape[0], -1) if value.ndim else value.reshape(1, 1)
            per_row = value.sum(axis=1)
            names = (labels or {}).get(id(named), named.labels)
            for row in np.flatnonzero(per_row > tol):
                name = f"{names[int(row)]}-{named.quantity}-{named.bound}"
                out[name] = out.get(name, 0.0) + float(per_row[row])
        return out

    def add_cost(self, term: cp.Expression) -> None:
        """Add a cost [currency] to be minimised (a negative cost is a value)."""
        self.cost_terms.append(term)

    @property
    def cvxpy_constraints(self) -> list[cp.Constraint]:
        return [c.constraint for c in self.constraints]

    @property
    def cost(self) -> cp.Expression:
        if not self.cost_terms:
            return cp.Constant(0.0)
        return cp.sum(cp.hstack([cp.reshape(t, (1,), order="C") for t in self.cost_terms]))


@dataclass(frozen=True)
class Stack:
    """Scenario stacking of ``n`` assets of one type over ``S`` scenarios (see module doc)."""

    ids: tuple[str, ...]
    scenarios: int
    weights: np.ndarray  # (S,) scenario probabilities

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def rows(self) -> int:
        return self.n * self.scenarios

    @property
    def labels(self) -> tuple[str, ...]:
        if self.scenarios == 1:
            return self.ids
        return tuple(f"{a}@s{s}" for s in range(self.scenarios) for a in self.ids)

    def tile(self, values: np.ndarray) -> np.ndarray:
        """Repeat per-asset ``values`` (n, ...) for every scenario: (S * n, ...)."""
        values = np.asarray(values, dtype=float)
        return np.tile(values, (self.scenarios,) + (1,) * (values.ndim - 1))

    @property
    def row_weight(self) -> np.ndarray:
        """Scenario probability of each row (S * n,)."""
        return np.repeat(self.weights, self.n)

    def to_scenarios(self) -> sp.csr_matrix:
        """Sparse (S, S * n) matrix summing the rows of each scenario."""
        rows = np.repeat(np.arange(self.scenarios), self.n)
        return sp.csr_matrix(
            (np.ones(self.rows), (rows, np.arange(self.rows))), shape=(self.scenarios, self.rows)
        )


def previous(initial: cp.Expression | np.ndarray, values: cp.Expression) -> cp.Expression:
    """Values shifted one interval right along axis 1, ``initial`` (rows,) first."""
    rows = values.shape[0]
    first = cp.reshape(initial, (rows, 1), order="C")
    if values.shape[1] == 1:
        return first
    return cp.hstack([first, values[:, :-1]])


def full(value: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray:
    """A dense float array of ``shape`` broadcast from ``value`` (cvxpy bounds want full arrays)."""
    return np.array(np.broadcast_to(np.asarray(value, dtype=float), shape))
