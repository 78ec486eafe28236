"""A second (and third) solver agrees with HiGHS on the example portfolio to 1e-6 relative."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import numpy as np
import pytest

from strategies import optimise_schedule, perfect_foresight
from strategies.foresight import realized_states
from strategies.park import interval_hours
from strategies.state import load_inputs
from tests.strategies.conftest import REPO
from vpp.timeutil import day_intervals_utc

DAY = dt.date(2025, 5, 20)


@pytest.fixture(scope="module")
def portfolio(example_config, cn_frame):  # type: ignore[no-untyped-def]
    index = day_intervals_utc(DAY, "Asia/Shanghai", 15)
    parks = example_config.parks_in("cn-province-a")
    folder = {p.id: example_config.park_files[p.id].parent for p in parks}
    inputs = {p.id: load_inputs(p, folder[p.id], index) for p in parks}
    states = {p.id: realized_states(p, folder[p.id], index) for p in parks}
    return parks, inputs, states, index, cn_frame.loc[index]


@pytest.mark.parametrize("solver", ["ECOS", "CLARABEL"])
def test_second_solver_agrees_on_schedule(portfolio, solver: str) -> None:  # type: ignore[no-untyped-def]
    parks, inputs, states, index, prices = portfolio
    dt_h = interval_hours(index, 15)
    reference = optimise_schedule(parks, inputs, states, dt_h, prices["da_price"], on_failure="raise")
    other = optimise_schedule(parks, inputs, states, dt_h, prices["da_price"], solver=solver,
                              on_failure="raise")
    assert reference.stats.solver == "HIGHS"
    assert other.stats.solver == solver
    assert other.objective == pytest.approx(reference.objective, rel=1e-6)
    # Schedules may differ where the LP has ties, but both respect the grid limits.
    for park in parks:
        net = other.park_power_kw[park.id].to_numpy()
        assert (net <= park.grid.export_limit_kw + 1e-3).all()
        assert (-net <= park.grid.import_limit_kw + 1e-3).all()


@pytest.mark.parametrize("solver", ["ECOS", "CLARABEL"])
def test_second_solver_agrees_on_two_settlement_foresight(portfolio, solver: str) -> None:  # type: ignore[no-untyped-def]
    parks, inputs, states, _, prices = portfolio
    reference = perfect_foresight(parks, inputs, states, 15, prices["da_price"], prices["rt_price"])
    other = perfect_foresight(parks, inputs, states, 15, prices["da_price"], prices["rt_price"],
                              solver=solver)
    assert other.objective == pytest.approx(reference.objective, rel=1e-6)
    assert reference.position_kw is not None
    assert np.isfinite(reference.position_kw.to_numpy()).all()


def test_two_settlement_foresight_is_at_least_the_single_price_optimum(portfolio) -> None:  # type: ignore[no-untyped-def]
    # Position 0 (all at the real-time price) and position == schedule (all at the day-ahead
    # price) are both feasible, so the two-settlement bound is at least either optimum.
    parks, inputs, states, _, prices = portfolio
    both = perfect_foresight(parks, inputs, states, 15, prices["da_price"], prices["rt_price"])
    rt_only = perfect_foresight(parks, inputs, states, 15, prices["rt_price"])
    da_only = perfect_foresight(parks, inputs, states, 15, prices["da_price"])
    assert both.objective >= max(rt_only.objective, da_only.objective) - 1e-6


def test_highs_prints_no_banner() -> None:
    # highspy prints "Running HiGHS ... Copyright" once per process from the first Highs();
    # strategies swallows it. A fresh interpreter: solves through CVXPY and a persistent model.
    script = (
        "import numpy as np, cvxpy as cp\n"
        "from strategies._solver import HotHighs, solve\n"
        "x = cp.Variable(2, nonneg=True)\n"
        "p = cp.Parameter(2, value=np.array([1.0, 2.0]))\n"
        "problem = cp.Problem(cp.Minimize(p @ x), [cp.sum(x) >= 1])\n"
        "solve(problem, [], sense=1.0)\n"
        "HotHighs(problem).solve()\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=REPO)
    assert result.stdout.strip().endswith("done")
    assert "Running HiGHS" not in result.stdout + result.stderr
    assert "Copyright" not in result.stdout + result.stderr


def test_a_stalled_warm_start_is_solved_again_from_scratch() -> None:
    """HiGHS can stop a warm-started re-solve with kUnknown (seen with carbon-priced real
    time); the persistent model then re-solves cold and answers the right optimum. The
    stall is forced on a real HiGHS by a one-iteration limit on the warm run only."""
    import cvxpy as cp

    from strategies._solver import HotHighs

    x = cp.Variable(3, nonneg=True)
    price = cp.Parameter(3, value=np.array([1.0, 2.0, 3.0]))
    problem = cp.Problem(cp.Minimize(price @ x + cp.sum(cp.pos(1 - x))), [cp.sum(x) >= 2, x <= 5])
    hot = HotHighs(problem)
    hot.solve()
    price.value = np.array([3.0, 2.0, -1.0])
    highs = hot.highs
    real_run = highs.run
    calls = []

    def stalled_then_real() -> object:
        calls.append(1)
        if len(calls) == 1:
            highs.setOptionValue("simplex_iteration_limit", 0)
            out = real_run()
            highs.setOptionValue("simplex_iteration_limit", 2**31 - 1)
            return out
        return real_run()

    highs.run = stalled_then_real
    stats = hot.solve()
    assert len(calls) >= 2
    assert stats.status.value == "optimal"
    reference = cp.Problem(problem.objective, problem.constraints)
    reference.solve(solver=cp.HIGHS)
    assert problem.value == pytest.approx(reference.value, abs=1e-7)
