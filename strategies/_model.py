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

Scenarios are stacked on the asset axis: with ``S`` scenarios and ``n``
assets of a type, variables have ``S * n`` rows and row ``s * n + i`` is
asset ``i`` in scenario ``s``. One vectorised builder therefore serves the
deterministic schedule (``S = 1``) and the stochastic bid program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

Sense = Literal["==", "<="]


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
    constraints: list[NamedConstraint] = field(default_factory=list)
    cost_terms: list[cp.Expression] = field(default_factory=list)

    def keeps(self, kind: str) -> bool:
        return kind not in self.omit

    def bounds(
        self, kind: str, lower: np.ndarray | float | None, upper: np.ndarray | float | None
    ) -> list[np.ndarray | float | None] | None:
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
    ) -> NamedConstraint | None:
        """Add ``lhs == 0`` or ``lhs <= 0`` with rows of axis 0 labelled by ``labels``."""
        kind = f"{asset_type}:{quantity}-{bound}"
        if kind in self.omit:
            return None
        rows = lhs.shape[0] if lhs.ndim else 1
        if rows != len(labels):
            raise ValueError(f"{kind}: {rows} rows but {len(labels)} labels")
        constraint = lhs == 0 if sense == "==" else lhs <= 0
        named = NamedConstraint(asset_type, quantity, bound, tuple(labels), lhs, sense, constraint)
        self.constraints.append(named)
        return named

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


def previous(initial: cp.Expression, values: cp.Expression) -> cp.Expression:
    """Values shifted one interval right along axis 1, ``initial`` (rows,) first."""
    rows = values.shape[0]
    first = cp.reshape(initial, (rows, 1), order="C")
    if values.shape[1] == 1:
        return first
    return cp.hstack([first, values[:, :-1]])


def full(value: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray:
    """A dense float array of ``shape`` broadcast from ``value`` (cvxpy bounds want full arrays)."""
    return np.array(np.broadcast_to(np.asarray(value, dtype=float), shape))
