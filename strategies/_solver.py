"""Solving: solver choice, status checks, infeasibility diagnosis, persistent HiGHS.

* :func:`solve` runs a CVXPY problem on HiGHS (default), ECOS or Clarabel,
  checks the status *before* any value is read, checks every variable value
  is finite, and logs ``solve_finished`` or ``solve_failed``.
* An infeasible problem raises :class:`~vpp.InfeasibleError` whose
  ``constraint`` is ``"{label}-{quantity}-{bound}"`` of the row that had to
  give most in an *elastic* copy of the model (every named constraint gets a
  non-negative slack, the sum of slacks is minimised; variable boxes stay
  hard -- on their own they are always satisfiable).
* :class:`HotHighs` keeps one ``highspy.Highs`` model built from CVXPY's
  problem data and, on a re-solve, changes only costs and bounds and runs
  from the previous basis -- the fast path for real-time re-optimisation.

Warnings raised by CVXPY or a solver during a solve are logged as
``solver_warning`` events (captured locally; nothing is silenced globally).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import cvxpy.settings as cps
import numpy as np
import scipy.sparse as sp
import structlog

from strategies._model import ModelBuilder
from vpp.errors import InfeasibleError, InputError, SolverError

log = structlog.get_logger(__name__)


def _swallow_highs_banner() -> None:
    """Make this process's first ``highspy.Highs`` with its stdout pointed at /dev/null.

    highspy prints its banner ("Running HiGHS ... Copyright ...") to file
    descriptor 1 once per process, from the ``Highs()`` constructor (it
    enables callbacks there, before any option can be set), so neither
    ``output_flag=False`` nor CVXPY's ``log_to_console=False`` -- both set on
    every solve here -- can stop it, and CVXPY makes its own ``Highs`` per
    solve. Letting the one-off banner go to /dev/null keeps ``vpp plan`` /
    ``vpp backtest`` output (and anything piped from it) clean.
    """
    try:
        import highspy
    except ImportError:  # pragma: no cover - highspy is a dependency
        return
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no usable stdout (closed by a service manager): no banner
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            try:
                highspy.Highs()
            finally:
                _flush_c_stdout()
                os.dup2(saved, 1)
    finally:
        os.close(saved)


def _flush_c_stdout() -> None:
    """Flush C's stdio buffers (where HiGHS prints) before file descriptor 1 is restored."""
    with contextlib.suppress(OSError, AttributeError):  # no C library to ask (Windows)
        ctypes.CDLL(None).fflush(None)


_swallow_highs_banner()

SOLVERS = ("HIGHS", "ECOS", "CLARABEL")
#: CVXPY's COO canonicalisation backend: O(nnz) for parameter-heavy problems. Prices are
#: Parameters (S x T of them); the default C++ backend took 6x longer to compile the
#: stochastic day-ahead program of the example portfolio (1.84 s vs 0.29 s).
CANON_BACKEND = "COO"
DEFAULT_SOLVER = "HIGHS"


class SolveStatus(enum.StrEnum):
    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    FAILED = "failed"


@dataclass(frozen=True)
class SolveStats:
    """How a solve went. Times in seconds; ``objective`` in the model's currency."""

    solver: str
    status: SolveStatus
    objective: float
    build_s: float
    compile_s: float
    solve_s: float
    total_s: float

    def after(self, earlier: SolveStats) -> SolveStats:
        """This solve's result, with the time of an ``earlier`` solve it needed added."""
        return SolveStats(
            self.solver,
            self.status,
            self.objective,
            self.build_s + earlier.build_s,
            self.compile_s + earlier.compile_s,
            self.solve_s + earlier.solve_s,
            self.total_s + earlier.total_s,
        )

    def plus(self, other: SolveStats) -> SolveStats:
        """Sum of two solves (e.g. two parks solved one after the other)."""
        worst = self.status if self.status != SolveStatus.OPTIMAL else other.status
        return SolveStats(
            self.solver,
            worst,
            self.objective + other.objective,
            self.build_s + other.build_s,
            self.compile_s + other.compile_s,
            self.solve_s + other.solve_s,
            self.total_s + other.total_s,
        )


def check_solver(name: str) -> str:
    """Upper-case solver name if supported, else :class:`~vpp.errors.InputError` naming the choices."""
    upper = name.upper()
    if upper not in SOLVERS:
        raise InputError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    return upper


def _options(solver: str, time_limit_s: float) -> dict[str, Any]:
    if solver == "HIGHS":
        # CVXPY already sets log_to_console=False unless verbose; say it for the whole log.
        return {"time_limit": float(time_limit_s), "output_flag": False}
    if solver == "CLARABEL":
        return {"time_limit": float(time_limit_s)}
    return {"max_iters": 500}  # ECOS has no time limit


def _run(problem: cp.Problem, solver: str, time_limit_s: float, context: dict[str, Any]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            problem.solve(
                solver=solver, warm_start=False, canon_backend=CANON_BACKEND,
                **_options(solver, time_limit_s),
            )
        except cp.error.SolverError as exc:
            log.error("solve_failed", solver=solver, reason=str(exc), **context)
            raise SolverError(f"{solver} failed: {exc}") from exc
    for warning in caught:
        log.warning(
            "solver_warning", solver=solver, category=warning.category.__name__,
            message=str(warning.message), **context,
        )


def solve(
    problem: cp.Problem,
    builders: Sequence[ModelBuilder],
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    build_s: float = 0.0,
    sense: float = -1.0,
    context: dict[str, Any] | None = None,
) -> SolveStats:
    """Solve ``problem``; raise :class:`SolverError`/:class:`InfeasibleError` unless optimal.

    ``sense`` converts the problem's value to the reported objective (``-1``:
    the problem minimises cost, the report is profit).
    """
    context = dict(context or {})
    solver = check_solver(solver)
    start = time.perf_counter()
    _run(problem, solver, time_limit_s, context)
    wall = time.perf_counter() - start
    compile_s = float(problem.compilation_time or 0.0)
    solve_s = max(wall - compile_s, 0.0)
    status = problem.status
    if status in (cps.INFEASIBLE, cps.INFEASIBLE_INACCURATE, cps.INFEASIBLE_OR_UNBOUNDED):
        culprits = diagnose(builders)
        name = culprits[0] if culprits else None
        log.error(
            "solve_failed", solver=solver, status="infeasible", constraint=name,
            culprits=culprits[:10], **context,
        )
        raise InfeasibleError(f"{context.get('model', 'model')} is infeasible", constraint=name)
    if status in (cps.UNBOUNDED, cps.UNBOUNDED_INACCURATE):
        log.error("solve_failed", solver=solver, status="unbounded", **context)
        raise SolverError(f"{solver}: problem is unbounded (a price or cost is missing)")
    if status not in (cps.OPTIMAL, cps.OPTIMAL_INACCURATE):
        log.error("solve_failed", solver=solver, status=str(status), **context)
        raise SolverError(f"{solver} returned status {status!r}")
    for variable in problem.variables():
        if variable.value is None or not np.isfinite(variable.value).all():
            log.error("solve_failed", solver=solver, status="non_finite", variable=variable.name())
            raise SolverError(f"{solver} returned a non-finite value for {variable.name()}")
    return _finished(problem, solver, build_s, compile_s, solve_s, wall, sense, context)


def solve_or_none(
    problem: cp.Problem,
    *,
    solver: str = DEFAULT_SOLVER,
    time_limit_s: float = 60.0,
    build_s: float = 0.0,
    sense: float = -1.0,
    context: dict[str, Any] | None = None,
) -> SolveStats | None:
    """:func:`solve`, but ``None`` (and a ``solve_retry`` log) instead of any failure.

    For a model whose failure is better diagnosed elsewhere (a shared model carries
    another park's constraint names): the caller then solves the park's own model.
    """
    context = dict(context or {})
    solver = check_solver(solver)
    start = time.perf_counter()
    try:
        _run(problem, solver, time_limit_s, context)
    except SolverError as exc:
        log.info("solve_retry", solver=solver, reason=str(exc), **context)
        return None
    wall = time.perf_counter() - start
    compile_s = float(problem.compilation_time or 0.0)
    solve_s = max(wall - compile_s, 0.0)
    status = problem.status
    finite = status in (cps.OPTIMAL, cps.OPTIMAL_INACCURATE) and all(
        variable.value is not None and np.isfinite(variable.value).all()
        for variable in problem.variables()
    )
    if not finite:
        log.info("solve_retry", solver=solver, status=str(status), **context)
        return None
    return _finished(problem, solver, build_s, compile_s, solve_s, wall, sense, context)


def _finished(
    problem: cp.Problem, solver: str, build_s: float, compile_s: float, solve_s: float,
    wall: float, sense: float, context: dict[str, Any],
) -> SolveStats:
    """The stats of an optimal solve, logged as ``solve_finished``."""
    status = problem.status
    stats = SolveStats(
        solver,
        SolveStatus.OPTIMAL if status == cps.OPTIMAL else SolveStatus.OPTIMAL_INACCURATE,
        float(sense * problem.value),
        build_s,
        compile_s,
        solve_s,
        build_s + wall,
    )
    log.info(
        "solve_finished", solver=solver, status=stats.status.value, objective=stats.objective,
        build_s=round(build_s, 4), compile_s=round(compile_s, 4), solve_s=round(solve_s, 4),
        **context,
    )
    return stats


class CompiledBounds:
    """The variable boxes of a compiled DPP problem, replaced before each solve.

    A shared model (:func:`strategies.schedule.solve_shared`) keeps its variable
    boxes as numbers -- CVXPY's DPP rules do not allow a Parameter-bounded variable
    to be multiplied by a Parameter -- so each park's boxes are set on the variables
    (as their constructor sets them: CVXPY also clips the solution to them) and
    CVXPY's own column bounds are recomputed from them into the compiled problem
    (``ParamConeProg.lower_bounds``/``upper_bounds``, what the solver is handed).
    :meth:`of` compiles the problem and checks that this gives the bounds CVXPY
    compiled, or returns ``None`` (log ``shared_model_disabled``): a CVXPY upgrade
    can cost speed, never correctness.
    """

    def __init__(self, prog: Any) -> None:
        self.prog = prog

    @classmethod
    def of(
        cls, problem: cp.Problem, solver: str, bounds: Sequence[tuple[cp.Variable, Any, Any]]
    ) -> CompiledBounds | None:
        try:
            data, _, _ = problem.get_problem_data(solver, canon_backend=CANON_BACKEND)
            prog = data[cps.PARAM_PROB]
            if prog.lb_tensor is not None or prog.ub_tensor is not None:
                raise ValueError("the bounds hold Parameters")
            compiled = (np.array(prog.lower_bounds), np.array(prog.upper_bounds))
            found = cls(prog)
            found.write(bounds)
            same = all(
                np.array_equal(mine, theirs)
                for mine, theirs in zip((prog.lower_bounds, prog.upper_bounds), compiled,
                                        strict=True)
            )
        except (AttributeError, KeyError, IndexError, TypeError, ValueError,
                cp.error.SolverError) as exc:
            log.warning("shared_model_disabled", reason=f"{type(exc).__name__}: {exc}")
            return None
        if not same:
            log.warning("shared_model_disabled", reason="bounds differ from CVXPY's")
            return None
        return found

    def write(self, bounds: Sequence[tuple[cp.Variable, Any, Any]]) -> None:
        """The next solve of the problem uses ``bounds`` (variable, lower, upper)."""
        from cvxpy.reductions.matrix_stuffing import extract_lower_bounds, extract_upper_bounds

        for variable, lower, upper in bounds:
            variable.bounds = variable._ensure_valid_bounds([lower, upper])
            variable.attributes["bounds"] = variable.bounds
        prog = self.prog
        prog.lower_bounds = extract_lower_bounds(prog.variables, prog.x.size)
        prog.upper_bounds = extract_upper_bounds(prog.variables, prog.x.size)


def solve_compiled(
    problem: cp.Problem,
    bounds: CompiledBounds,
    *,
    time_limit_s: float = 60.0,
    build_s: float = 0.0,
    sense: float = -1.0,
    context: dict[str, Any] | None = None,
) -> SolveStats | None:
    """A compiled DPP LP solved on HiGHS the way CVXPY does it, minus CVXPY's per-solve upkeep.

    The LP is CVXPY's (``get_problem_data`` on the cached DPP map), handed to a
    fresh ``highspy.Highs`` exactly as CVXPY's HiGHS interface hands it (rows
    ``A x == b`` then ``A x <= b``, column bounds, the same options), solved from
    scratch; the solution is written back as CVXPY's inversion does (columns in
    Fortran order, projected on each variable's box) and the value is the
    objective's. Skipped: CVXPY's dual values, basis and solution chain. ``None``
    (log ``solve_retry``) unless HiGHS says optimal and every value is finite: the
    caller then solves another way (:func:`solve_or_none`'s contract).
    """
    import highspy as hp
    from cvxpy.reductions.solvers.conic_solvers.conic_solver import dims_to_solver_dict

    context = dict(context or {})
    start = time.perf_counter()
    data, _, _ = problem.get_problem_data(cps.HIGHS, canon_backend=CANON_BACKEND)
    compile_s = time.perf_counter() - start
    prog = bounds.prog
    dims = dims_to_solver_dict(data[cps.DIMS])
    b = data[cps.B]
    eq, leq = dims[cps.EQ_DIM], dims[cps.LEQ_DIM]
    if eq + leq != len(b) or data[cps.BOOL_IDX] or data[cps.INT_IDX] or data[cps.PARAM_PROB] is not prog:
        log.info("solve_retry", solver="HIGHS", reason="not a compiled LP", **context)
        return None
    matrix = data[cps.A].tocsc()
    inf = hp.kHighsInf
    model = hp.HighsModel()
    lp = model.lp_
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.offset_ = 0
    lp.col_cost_ = data[cps.C]
    lp.row_lower_ = np.concatenate([b[:eq], -inf * np.ones(b[eq : eq + leq].shape)])
    lp.row_upper_ = b
    lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    c = data[cps.C]
    lb, ub = data[cps.LOWER_BOUNDS], data[cps.UPPER_BOUNDS]
    lp.col_lower_ = np.full(lp.num_col_, -inf, dtype=c.dtype) if lb is None else lb.copy()
    lp.col_upper_ = np.full(lp.num_col_, inf, dtype=c.dtype) if ub is None else ub.copy()
    highs = hp.Highs()
    highs.setOptionValue("log_to_console", False)
    for name, value in _options("HIGHS", time_limit_s).items():
        highs.setOptionValue(name, value)
    highs.passModel(model)
    run_start = time.perf_counter()
    highs.run()
    solve_s = time.perf_counter() - run_start
    status = highs.getModelStatus().name
    if status != "kOptimal":
        log.info("solve_retry", solver="HIGHS", status=status, **context)
        return None
    x = np.array(highs.getSolution().col_value)
    for variable in prog.variables:
        col = prog.var_id_to_col[variable.id]
        value = variable.project(
            np.reshape(x[col : col + variable.size], variable.shape, order="F")
        )
        if not np.isfinite(value).all():
            log.info("solve_retry", solver="HIGHS", status="non_finite", **context)
            return None
        variable.save_value(value)
    objective = float(sense * problem.objective.value)
    wall = time.perf_counter() - start
    stats = SolveStats(
        "HIGHS", SolveStatus.OPTIMAL, objective, build_s, compile_s, solve_s, build_s + wall
    )
    log.info(
        "solve_finished", solver="HIGHS", status=stats.status.value, objective=objective,
        build_s=round(build_s, 4), compile_s=round(compile_s, 4), solve_s=round(solve_s, 4),
        **context,
    )
    return stats


def diagnose(builders: Sequence[ModelBuilder]) -> list[str]:
    """Names of the constraint rows that must give way, largest violation first.

    Solves the elastic copy of the model with HiGHS (see module doc). Returns
    an empty list if even the elastic model fails (then the variable boxes
    themselves are inconsistent).
    """
    constraints: list[cp.Constraint] = []
    slacks: list[tuple[Any, cp.Variable]] = []
    for builder in builders:
        for named in builder.constraints:
            if named.sense == "<=":
                slack = cp.Variable(named.lhs.shape, nonneg=True)
                constraints.append(named.lhs - slack <= 0)
                slacks.append((named, slack))
            else:
                over = cp.Variable(named.lhs.shape, nonneg=True)
                under = cp.Variable(named.lhs.shape, nonneg=True)
                constraints.append(named.lhs - over + under == 0)
                slacks.append((named, over))
                slacks.append((named, under))
    if not slacks:
        return []
    elastic = cp.Problem(cp.Minimize(cp.sum([cp.sum(s) for _, s in slacks])), constraints)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            elastic.solve(solver="HIGHS")
        except cp.error.SolverError:
            return []
    if elastic.status not in (cps.OPTIMAL, cps.OPTIMAL_INACCURATE):
        return []
    found: dict[str, float] = {}
    for named, slack in slacks:
        value = np.asarray(slack.value, dtype=float)
        value = value.reshape(value.shape[0], -1) if value.ndim else value.reshape(1, 1)
        per_row = value.max(axis=1)
        for row in np.flatnonzero(per_row > 1e-6):
            name = named.row_name(int(row))
            found[name] = max(found.get(name, 0.0), float(per_row[row]))
    return sorted(found, key=lambda k: -found[k])


class HotHighs:
    """A persistent HiGHS model of a DPP CVXPY problem, re-solved when parameters change.

    Build once with :meth:`__init__` (compiles through CVXPY, passes the LP to
    HiGHS). After changing parameter values, :meth:`solve` asks CVXPY for the
    new problem data (a sparse matrix-vector product on the cached DPP map,
    no re-canonicalisation), pushes only the changed costs and bounds into
    HiGHS and runs from the previous basis. Results are written back into the
    CVXPY variables, so callers read ``variable.value`` as usual. If the
    constraint matrix changed (a parameter multiplies a variable), the HiGHS
    model is rebuilt.

    **Constant matrix fast path.** When no parameter enters the constraint
    matrix (the real-time day model is built that way), re-computing the
    matrix at every solve is wasted: it is most of CVXPY's ~3 ms per call on
    the example parks. :class:`_ParamMap` then applies the parameters to the
    objective, right-hand side and bounds only, from the same DPP tensors
    CVXPY keeps (``ParamConeProg``). It is checked against CVXPY's own
    ``get_problem_data`` on the first re-solve and dropped (with a
    ``hot_fast_path_disabled`` log) if it differs or CVXPY's internals have
    moved, so a CVXPY upgrade can cost speed, never correctness.
    """

    def __init__(
        self,
        problem: cp.Problem,
        builders: Sequence[ModelBuilder] = (),
        time_limit_s: float = 60.0,
    ) -> None:
        import highspy

        if not problem.is_dpp():
            raise InputError("HotHighs needs a DPP problem")
        self.problem = problem
        self.builders = list(builders)
        self._highspy = highspy
        self.time_limit_s = time_limit_s
        self.highs: Any = None
        self._matrix: sp.csc_matrix | None = None
        self._fast: _ParamMap | None = None
        self._fast_checked = False
        self._chain: Any = None
        self._inverse: Any = None
        self.compile_s = 0.0
        self.solve_s = 0.0

    def _data(self) -> tuple[dict[str, Any], Any, Any]:
        start = time.perf_counter()
        data, chain, inverse = self.problem.get_problem_data(cp.HIGHS, canon_backend=CANON_BACKEND)
        self.compile_s = time.perf_counter() - start
        return data, chain, inverse

    def _pass_model(self, data: dict[str, Any], matrix: sp.csc_matrix) -> None:
        hp = self._highspy
        inf = hp.kHighsInf
        highs = hp.Highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("time_limit", float(self.time_limit_s))
        lp = hp.HighsLp()
        lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
        lp.col_cost_ = np.asarray(data[cps.C], dtype=float)
        lp.col_lower_, lp.col_upper_ = self._col_bounds(data, inf)
        lp.row_lower_, lp.row_upper_ = self._row_bounds(data, inf)
        lp.a_matrix_.format_ = hp.MatrixFormat.kColwise
        lp.a_matrix_.start_ = matrix.indptr
        lp.a_matrix_.index_ = matrix.indices
        lp.a_matrix_.value_ = matrix.data
        highs.passModel(lp)
        self.highs = highs
        self._matrix = matrix
        self._remember(lp.col_cost_, lp.col_lower_, lp.col_upper_, lp.row_lower_, lp.row_upper_)

    def _remember(self, cost: Any, lower: Any, upper: Any, row_lower: Any, row_upper: Any) -> None:
        self._cost = np.array(cost, dtype=float)
        self._lower = np.array(lower, dtype=float)
        self._upper = np.array(upper, dtype=float)
        self._row_lower = np.array(row_lower, dtype=float)
        self._row_upper = np.array(row_upper, dtype=float)

    @staticmethod
    def _col_bounds(data: dict[str, Any], inf: float) -> tuple[np.ndarray, np.ndarray]:
        n = len(data[cps.C])
        lb, ub = data.get(cps.LOWER_BOUNDS), data.get(cps.UPPER_BOUNDS)
        lower = np.full(n, -inf) if lb is None else np.asarray(lb, dtype=float).copy()
        upper = np.full(n, inf) if ub is None else np.asarray(ub, dtype=float).copy()
        return lower, upper

    @staticmethod
    def _row_bounds(data: dict[str, Any], inf: float) -> tuple[np.ndarray, np.ndarray]:
        """Conic form ``A x (== | <=) b``: equality rows first, then inequality rows."""
        from cvxpy.reductions.solvers.conic_solvers.conic_solver import dims_to_solver_dict

        dims = dims_to_solver_dict(data[cps.DIMS])
        b = np.asarray(data[cps.B], dtype=float)
        eq = dims[cps.EQ_DIM]
        if eq + dims[cps.LEQ_DIM] != len(b):
            raise InputError("HotHighs solves LPs only (no cones)")
        lower = np.concatenate([b[:eq], np.full(len(b) - eq, -inf)])
        return lower, b.copy()

    @property
    def fast_path(self) -> bool:
        """True once re-solves skip CVXPY's matrix (see the class doc)."""
        return self._fast is not None and self._fast_checked

    def _problem_data(self) -> tuple[dict[str, Any], Any, Any, sp.csc_matrix]:
        """CVXPY's problem data for the current parameters (fast path when it is safe)."""
        if self._fast is not None and self._fast_checked:
            start = time.perf_counter()
            data = self._fast.apply()
            holder = _offset_holder(self._inverse)
            if holder is not None:
                holder[cps.OFFSET] = data.pop(cps.OFFSET)
            self.compile_s = time.perf_counter() - start
            return data, self._chain, self._inverse, self._matrix
        data, chain, inverse = self._data()
        matrix = data[cps.A].tocsc()
        if self._fast is not None:  # second solve: check the fast path against CVXPY once
            self._fast_checked = True
            holder = _offset_holder(inverse)
            if holder is None or not self._fast.agrees(data, holder.get(cps.OFFSET)):
                log.warning("hot_fast_path_disabled", reason="differs from get_problem_data")
                self._fast = None
        elif self.highs is None:
            self._fast = _ParamMap.of(data, inverse)
        self._chain, self._inverse = chain, inverse
        return data, chain, inverse, matrix

    def solve(self) -> SolveStats:
        """Re-solve with the current parameter values; raise unless optimal."""
        start = time.perf_counter()
        data, chain, inverse, matrix = self._problem_data()
        hp = self._highspy
        inf = hp.kHighsInf
        if self.highs is None or (
            not (self._fast is not None and self._fast_checked)
            and not _same_matrix(self._matrix, matrix)
        ):
            self._pass_model(data, matrix)
        else:
            # Push only what changed: an unchanged bound pushed again still costs HiGHS time
            # and may cost it the warm basis.
            cost = np.asarray(data[cps.C], dtype=float)
            lower, upper = self._col_bounds(data, inf)
            row_lower, row_upper = self._row_bounds(data, inf)
            changed = np.flatnonzero(cost != self._cost)
            if changed.size:
                self.highs.changeColsCost(changed.size, changed.astype(np.int32), cost[changed])
            changed = np.flatnonzero((lower != self._lower) | (upper != self._upper))
            if changed.size:
                self.highs.changeColsBounds(
                    changed.size, changed.astype(np.int32), lower[changed], upper[changed]
                )
            changed = np.flatnonzero((row_lower != self._row_lower) | (row_upper != self._row_upper))
            if changed.size:
                self.highs.changeRowsBounds(
                    changed.size, changed.astype(np.int32), row_lower[changed], row_upper[changed]
                )
            self._remember(cost, lower, upper, row_lower, row_upper)
        run_start = time.perf_counter()
        self.highs.run()
        status = self.highs.getModelStatus().name
        if status not in ("kOptimal", "kInfeasible"):
            # A warm start can stall on a degenerate basis (HiGHS says kUnknown): solve the
            # same LP from scratch, then from a freshly passed model, before giving up.
            log.info("hot_solve_retry", status=status)
            self.highs.clearSolver()
            self.highs.run()
            status = self.highs.getModelStatus().name
            if status not in ("kOptimal", "kInfeasible"):
                self._pass_model(data, matrix)
                self.highs.run()
                status = self.highs.getModelStatus().name
        self.solve_s = time.perf_counter() - run_start
        if status != "kOptimal":
            culprits = diagnose(self.builders) if status in (
                "kInfeasible", "kUnboundedOrInfeasible") else []
            log.error("solve_failed", solver="HIGHS", status=status, mode="hot",
                      culprits=culprits[:10])
            if culprits or status == "kInfeasible":
                raise InfeasibleError(
                    "real-time model is infeasible", constraint=culprits[0] if culprits else None
                )
            raise SolverError(f"HiGHS returned {status}")
        results = {
            "solution": self.highs.getSolution(),
            "info": self.highs.getInfo(),
            "model_status": status,
            "run_time": self.highs.getRunTime(),
        }
        self.problem.unpack_results(results, chain, inverse)
        for variable in self.problem.variables():
            if variable.value is None or not np.isfinite(variable.value).all():
                raise SolverError(f"HiGHS returned a non-finite value for {variable.name()}")
        total = time.perf_counter() - start
        return SolveStats(
            "HIGHS", SolveStatus.OPTIMAL, -float(self.problem.value), 0.0,
            self.compile_s, self.solve_s, total,
        )


def _offset_holder(inverse: Any) -> dict[str, Any] | None:
    """The solver's inverse data (a dict holding the objective offset), if it can be found."""
    last = inverse[-1] if isinstance(inverse, list) and inverse else None
    held = getattr(last, "inverse_data", last)
    return held if isinstance(held, dict) else None


class _ParamMap:
    """Parameters -> costs, right-hand side and bounds of a DPP LP whose matrix is constant.

    Built from the ``ParamConeProg`` CVXPY keeps for the problem (its DPP
    tensors): ``b`` is the offset column of the reduced constraint tensor,
    ``c``/``d`` the objective tensor, bounds the bound tensors. See
    :class:`HotHighs` for why and how it is checked.
    """

    def __init__(self, prog: Any, base: dict[str, Any], b_rows: np.ndarray, b_map: Any) -> None:
        self.prog = prog
        self.base = base  # the parts of the data that never change
        self.b_rows = b_rows
        self.b_map = b_map
        self.m = len(base[cps.B])

    @classmethod
    def of(cls, data: dict[str, Any], inverse: Any) -> _ParamMap | None:
        """The map for this problem, or None if it does not apply (or CVXPY changed)."""
        try:
            prog = data[cps.PARAM_PROB]
            reduced = prog.reduced_A
            if reduced.problem_data_index is None or prog.P is not None:
                return None
            indices, indptr, shape = reduced.problem_data_index
            n = shape[1] - 1
            matrix_rows = reduced.reduced_mat[: indptr[n]]
            if sp.csr_matrix(matrix_rows)[:, :-1].count_nonzero():
                return None  # a parameter enters the matrix
            holder = _offset_holder(inverse)
            if holder is None or cps.OFFSET not in holder:
                return None
            b_rows = np.asarray(indices[indptr[n] : indptr[n + 1]])
            b_map = sp.csr_matrix(reduced.reduced_mat[indptr[n] : indptr[n + 1]])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("hot_fast_path_disabled", reason=f"{type(exc).__name__}: {exc}")
            return None
        base = {k: data[k] for k in (cps.A, cps.B, cps.DIMS)}
        return cls(prog, base, b_rows, b_map)

    def apply(self) -> dict[str, Any]:
        from cvxpy.cvxcore.python import canonInterface

        prog = self.prog
        param_vec = canonInterface.get_parameter_vector(
            prog.total_param_size, prog.param_id_to_col, prog.param_id_to_size,
            lambda i: np.array(prog.id_to_param[i].value),
        )
        q, d = canonInterface.get_matrix_from_tensor(
            prog.q, param_vec, prog.x.size, with_offset=True
        )
        b = np.zeros(self.m)
        b[self.b_rows] = self.b_map @ param_vec
        lower = prog.lower_bounds if prog.lb_tensor is None else prog.lb_tensor @ param_vec
        upper = prog.upper_bounds if prog.ub_tensor is None else prog.ub_tensor @ param_vec
        return {
            **self.base,
            cps.C: np.asarray(q.toarray()).ravel(),
            cps.B: b,
            cps.LOWER_BOUNDS: None if lower is None else np.asarray(lower, dtype=float).ravel(),
            cps.UPPER_BOUNDS: None if upper is None else np.asarray(upper, dtype=float).ravel(),
            cps.OFFSET: float(np.asarray(d).ravel()[0]) if np.size(d) else 0.0,
        }

    def agrees(self, data: dict[str, Any], offset: Any) -> bool:
        """Does the map give what CVXPY gives for the current parameters?"""
        try:
            mine = self.apply()
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            return False

        def same(a: Any, b: Any) -> bool:
            if a is None or b is None:
                return a is None and b is None
            return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12,
                                    atol=1e-12))

        return (
            same(mine[cps.C], data[cps.C]) and same(mine[cps.B], data[cps.B])
            and same(mine[cps.OFFSET], offset)
            and same(mine[cps.LOWER_BOUNDS], data.get(cps.LOWER_BOUNDS))
            and same(mine[cps.UPPER_BOUNDS], data.get(cps.UPPER_BOUNDS))
        )


def _same_matrix(old: sp.csc_matrix | None, new: sp.csc_matrix) -> bool:
    return (
        old is not None
        and old.shape == new.shape
        and np.array_equal(old.indptr, new.indptr)
        and np.array_equal(old.indices, new.indices)
        and np.array_equal(old.data, new.data)
    )
