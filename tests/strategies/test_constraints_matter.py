"""Each constraint is needed: the property it guards holds, and fails once it is left out.

``ModelBuilder.omit`` builds the same model without one constraint (or bound)
kind; every case below checks its property on the full model and asserts the
property is violated on the model without that constraint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from strategies import StrategyOptions
from strategies.day_ahead import _solve_bid_park, price_groups, product_matrix
from strategies.park import ParkModel, interval_hours
from strategies.real_time import RealTimePark
from strategies.schedule import solve_park
from strategies.state import AssetState, ParkInputs
from tests.strategies.conftest import battery, ev_hub, make_park, process, pv, sessions, utc_index

TOL = 1e-6


@dataclass(frozen=True)
class Case:
    build: Callable[[frozenset[str]], ParkModel]
    holds: Callable[[ParkModel], bool]


def _solve(park, prices, inputs=None, state=None, minutes=60):  # type: ignore[no-untyped-def]
    index = utc_index(len(prices), minutes)

    def build(omit: frozenset[str]) -> ParkModel:
        model, _ = solve_park(
            park, inputs or ParkInputs(index), state, interval_hours(index, minutes),
            np.asarray(prices, float), omit=omit,
        )
        return model

    return build


def _battery_soc_recomputed(model: ParkModel) -> np.ndarray:
    b = model.block("battery")
    spec = b.specs[0]
    delta = (
        spec.charge_efficiency * b.charge_kw.value[0] - b.discharge_kw.value[0] / spec.discharge_efficiency
    ) * model.dt_h
    return b.soc_initial_kwh.value[0] + np.cumsum(delta)


ARBITRAGE = make_park(battery(charge_efficiency=0.9, discharge_efficiency=0.95, soc_initial=0.5,
                              soc_min=0.1, soc_max=0.9))
ARBITRAGE_PRICES = [10, 200, 5, 300, 50, 400]


def _process_case(**overrides):  # type: ignore[no-untyped-def]
    index = utc_index(6)
    park = make_park(process(**overrides))
    inputs = ParkInputs(index, baseline_kw={"furnace": np.full(6, 1000.0)})
    # Shedding saves 300/MWh, consuming it again costs 100/MWh: worth it, but not free.
    return _solve(park, [300, 300, 300, 100, 100, 100], inputs)


def _shift(model: ParkModel) -> np.ndarray:
    return np.asarray(model.block("process").shift_kw.value)[0]


def _recovered_each_block(model: ParkModel, window: int) -> bool:
    """The energy offset is back to zero at the end of every block of ``window`` intervals."""
    offset = np.cumsum(_shift(model) * model.dt_h)
    return bool(np.allclose(offset[window - 1 :: window], 0.0, atol=TOL))


def _ev_case(hub_kw: float | None = None, overlap: bool = False):  # type: ignore[no-untyped-def]
    index = utc_index(4)
    rows = [("a", 0, "2025-05-20 00:00", "2025-05-20 04:00", 20.0, 0.0),
            ("b", 1, "2025-05-20 01:00", "2025-05-20 03:00", 15.0, 0.0)]
    if overlap:
        rows[1] = ("b", 0, "2025-05-20 01:00", "2025-05-20 03:00", 15.0, 0.0)
    park = make_park(ev_hub(hub_power_kw=hub_kw))
    state = {"hub": AssetState(sessions=sessions(*rows))}
    return _solve(park, [100, 0, 0, 100], ParkInputs(index), state)


def _session_power(model: ParkModel) -> np.ndarray:
    return model.block("ev").session_power_kw(0)


def _ev_energy_met(model: ParkModel) -> bool:
    return bool(np.allclose(_session_power(model) @ model.dt_h, [20.0, 15.0], atol=TOL))


CASES: dict[str, Case] = {
    "battery:soc-balance": Case(
        _solve(ARBITRAGE, ARBITRAGE_PRICES),
        lambda m: bool(
            ((_battery_soc_recomputed(m) >= 200 - 1e-4) & (_battery_soc_recomputed(m) <= 1800 + 1e-4)).all()
        ),
    ),
    "battery:soc-bounds": Case(
        _solve(ARBITRAGE, ARBITRAGE_PRICES),
        lambda m: bool(((m.block("battery").soc_kwh.value >= 200 - TOL) & (m.block("battery").soc_kwh.value <= 1800 + TOL)).all()),
    ),
    "battery:charge-bounds": Case(
        _solve(ARBITRAGE, ARBITRAGE_PRICES),
        lambda m: bool((m.block("battery").charge_kw.value <= 1000 + TOL).all() and (m.block("battery").charge_kw.value >= -TOL).all()),
    ),
    "battery:discharge-bounds": Case(
        _solve(ARBITRAGE, ARBITRAGE_PRICES),
        lambda m: bool((m.block("battery").discharge_kw.value <= 1000 + TOL).all() and (m.block("battery").discharge_kw.value >= -TOL).all()),
    ),
    "battery:soc-final": Case(
        _solve(make_park(battery(soc_initial=0.5, soc_final="initial")), [100, 100]),
        lambda m: bool(m.block("battery").soc_kwh.value[0, -1] >= 1000 - TOL),
    ),
    "park:grid-export-max": Case(
        _solve(make_park(battery(), export_kw=300.0), [0, 100]),
        lambda m: bool((m.net_kw.value <= 300 + TOL).all()),
    ),
    "park:grid-import-max": Case(
        _solve(make_park(battery(), import_kw=300.0), [0, 100]),
        lambda m: bool((-m.net_kw.value <= 300 + TOL).all()),
    ),
    "pv:output-bounds": Case(
        _solve(make_park(pv(), export_kw=5000.0), [-10, 20],
               ParkInputs(utc_index(2), pv_available_kw={"pv": np.array([100.0, 100.0])})),
        lambda m: bool(((m.block("pv").output_kw.value >= -TOL) & (m.block("pv").output_kw.value <= 100 + TOL)).all()),
    ),
    "process:shift-bounds": Case(
        _process_case(recovery_window_h=6.0),
        lambda m: bool((np.abs(_shift(m)) <= 500 + TOL).all()),
    ),
    "process:energy-recovered": Case(
        _process_case(recovery_window_h=6.0),
        lambda m: abs(float(_shift(m) @ m.dt_h)) <= TOL,
    ),
    "process:recovery-window": Case(
        _process_case(recovery_window_h=2.0), lambda m: _recovered_each_block(m, 2)
    ),
    "process:ramp-bounds": Case(
        _process_case(recovery_window_h=6.0, ramp_limit_kw_per_min=2.0),
        lambda m: bool((np.abs(np.diff(np.concatenate([[0.0], _shift(m)]))) <= 120 + TOL).all()),
    ),
    "process:ramp-balance": Case(
        _process_case(recovery_window_h=6.0, ramp_limit_kw_per_min=2.0),
        lambda m: bool((np.abs(np.diff(np.concatenate([[0.0], _shift(m)]))) <= 120 + TOL).all()),
    ),
    "ev:energy-required": Case(_ev_case(), _ev_energy_met),
    "ev:charge-bounds": Case(
        _ev_case(),
        lambda m: bool((_session_power(m) <= 10 + TOL).all() and (_session_power(m)[1, [0, 3]] <= TOL).all()),
    ),
    "ev:hub-max": Case(
        _ev_case(hub_kw=12.0), lambda m: bool((-m.block("ev").power_kw.value <= 12 + TOL).all())
    ),
    "ev:charger-max": Case(
        _ev_case(overlap=True),
        lambda m: bool((_session_power(m).sum(axis=0) <= 10 + TOL).all()),
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_property_holds_with_constraint_and_fails_without(kind: str) -> None:
    case = CASES[kind]
    assert case.holds(case.build(frozenset())), f"{kind}: property fails on the full model"
    assert not case.holds(case.build(frozenset({kind}))), (
        f"{kind}: property still holds without the constraint -- the test cannot catch its loss"
    )


@pytest.mark.parametrize("kind", ["bid:quantity-monotone", "bid:quantity-tie"])
def test_bid_ordering_constraints_matter(kind: str) -> None:
    # A full 1 MWh / 1 MW battery sells in one of two hours. Alone, each scenario sells in its
    # dearer hour, so in hour 0 the 120 scenario would sell and the 150 ones would not
    # (non-monotone), and the two 150 scenarios would disagree (not one quantity per price).
    index = utc_index(2, 60)
    dt_h = interval_hours(index, 60)
    prices = np.array([[100.0, 300.0], [150.0, 1000.0], [150.0, 50.0], [120.0, 50.0]])
    probabilities = np.full(4, 1 / 4)
    products = product_matrix(index, 60, 60)
    groups = price_groups(prices @ products.T, 0.01, quantity_only=False)
    park = make_park(battery(energy_kwh=1000.0, soc_initial=1.0))

    def quantities(omit: frozenset[str]) -> np.ndarray:
        model, _ = _solve_bid_park(
            park, ParkInputs(index), None, dt_h, prices, probabilities, groups, products, index,
            solver="HIGHS", time_limit_s=10, energy_policy="cap", omit=omit,
        )
        return np.asarray(model.net_kw.value)

    def ordered(q: np.ndarray) -> bool:
        for j, product in enumerate(groups):
            values = [q[g, j] for g in product]
            if any(np.ptp(v) > TOL for v in values):
                return False
            heads = [v[0] for v in values]
            if (np.diff(heads) < -TOL).any():
                return False
        return True

    assert ordered(quantities(frozenset()))
    assert not ordered(quantities(frozenset({kind})))


# --------------------------------------------------------------------------- real time
# Real time makes the rows that carry measured state soft (penalised slack). They must
# still bind whenever they can hold: same properties, through the real-time day model.


def _real_time(park, prices, inputs=None, state=None, position=0):  # type: ignore[no-untyped-def]
    index = utc_index(len(prices))

    def build(omit: frozenset[str]) -> ParkModel:
        rt = RealTimePark(
            park, inputs or ParkInputs(index), 60,
            StrategyOptions(deviation_penalty_per_mwh=0.0), omit=omit,
        )
        solution, _ = rt.solve(position, state, np.zeros(len(prices) - position),
                               np.asarray(prices[position:], float))
        assert not solution.shortfall_kwh
        return solution.model

    return build


PROCESS_INPUTS = ParkInputs(utc_index(6), baseline_kw={"furnace": np.full(6, 1000.0)})
PROCESS_PRICES = [300, 300, 300, 100, 100, 100]
SHED = {"furnace": AssetState(energy_offset_kwh=-500.0, shift_kw=-500.0)}


def _recovered_from(model: ParkModel, offset: float, position: int, window: int) -> bool:
    """Each block from ``position`` on evens out, ``offset`` counting in the first one."""
    shift = _shift(model) * model.dt_h
    shift[position] += offset
    ends = range(window, len(shift) + 1, window)
    return all(abs(shift[end - window:end].sum()) <= TOL for end in ends if end > position)


SOFT_CASES: dict[str, Case] = {
    "battery:soc-final": Case(
        _real_time(make_park(battery(soc_initial=0.5, soc_final="initial")), [100, 100]),
        lambda m: bool(m.block("battery").soc_kwh.value[0, -1] >= 1000 - TOL),
    ),
    "process:energy-recovered": Case(
        _real_time(make_park(process(recovery_window_h=6.0)), PROCESS_PRICES, PROCESS_INPUTS),
        lambda m: abs(float(_shift(m) @ m.dt_h)) <= TOL,
    ),
    "process:recovery-window": Case(
        _real_time(make_park(process(recovery_window_h=2.0)), PROCESS_PRICES, PROCESS_INPUTS),
        lambda m: _recovered_each_block(m, 2),
    ),
    "process:recovery-window@1": Case(
        _real_time(make_park(process(recovery_window_h=2.0)), PROCESS_PRICES, PROCESS_INPUTS,
                   SHED, position=1),
        lambda m: _recovered_from(m, -500.0, 1, 2),
    ),
    "ev:energy-required": Case(
        _real_time(make_park(ev_hub()), [100, 0, 0, 100], ParkInputs(utc_index(4)),
                   {"hub": AssetState(sessions=sessions(
                       ("a", 0, "2025-05-20 00:00", "2025-05-20 04:00", 20.0, 0.0),
                       ("b", 1, "2025-05-20 01:00", "2025-05-20 03:00", 15.0, 0.0)))}),
        _ev_energy_met,
    ),
}


@pytest.mark.parametrize("name", sorted(SOFT_CASES))
def test_soft_real_time_rows_bind_when_they_can_hold(name: str) -> None:
    case, kind = SOFT_CASES[name], name.split("@")[0]
    assert case.holds(case.build(frozenset())), f"{name}: property fails in real time"
    assert not case.holds(case.build(frozenset({kind}))), (
        f"{name}: property still holds without the constraint -- the test cannot catch its loss"
    )
