"""Parks of one structure share one compiled schedule problem, with the results of their own.

:func:`strategies.schedule.solve_shared` compiles the first park of a structure
with its numbers as Parameters and only sets values for the next ones; the LP
each park gets is its own, so every value must equal :func:`solve_park`'s bit
for bit, whatever park built the shared problem. A failure is diagnosed on the
park's own model (the shared one carries another park's row names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.strategy import make_case
from strategies.park import ParkModelRequest
from strategies.schedule import (
    _SHARED,
    optimise_schedule,
    schedule_from_models,
    solve_park,
    solve_shared,
)
from strategies.state import AssetState
from vpp.config.models import ParkConfig
from vpp.errors import InfeasibleError


def _renamed(park: ParkConfig, park_id: str, prefix: str, **battery: object) -> ParkConfig:
    assets = [a.model_copy(update={"id": f"{prefix}{i}", **battery}) for i, a in enumerate(park.assets)]
    return park.model_copy(update={"id": park_id, "assets": assets})


def _parks() -> tuple[list[ParkConfig], dict, np.ndarray, np.ndarray]:
    cases = [make_case(4, seed=s, park_id=f"p{s}", types=("battery",)) for s in range(5)]
    parks = [_renamed(c.park, c.park.id, f"{c.park.id}b") for c in cases]
    parks.append(_renamed(cases[0].park, "valued", "v", soc_final="valued", terminal_value_per_mwh=300.0))
    parks.append(_renamed(make_case(2, seed=9, types=("battery",)).park, "small", "s"))
    inputs = {p.id: cases[0].inputs for p in parks}
    return parks, inputs, cases[0].dt_h, cases[1].prices


def test_shared_solves_equal_each_parks_own_solve_bit_for_bit() -> None:
    parks, inputs, dt_h, prices = _parks()
    states = {"p3": {"p3b1": AssetState(soc_kwh=0.5 * parks[3].assets[1].energy_kwh)}}
    for order in (parks, parks[::-1]):  # a different park builds the shared problem
        _SHARED.clear()
        shared = optimise_schedule(order, inputs, states, dt_h, prices, on_failure="raise")
        own = [solve_park(p, inputs[p.id], states.get(p.id), dt_h, prices) for p in order]
        expected = schedule_from_models([m for m, _ in own], [s for _, s in own], 0)
        pd.testing.assert_frame_equal(shared.asset_power_kw, expected.asset_power_kw, check_exact=True)
        pd.testing.assert_frame_equal(shared.park_power_kw, expected.park_power_kw, check_exact=True)
        pd.testing.assert_frame_equal(shared.soc_kwh, expected.soc_kwh, check_exact=True)
        assert shared.objective == expected.objective
    assert len(_SHARED) == 3  # 4 "initial" batteries, 4 "valued" ones, 2 batteries
    assert all(found is not None for found in _SHARED.values())


def test_structure_is_the_shape_not_the_numbers() -> None:
    parks, inputs, dt_h, _ = _parks()

    def structure(park: ParkConfig) -> object:
        return ParkModelRequest(park, inputs[park.id], None, dt_h, shared=True).structure()

    assert structure(parks[0]) == structure(parks[1])
    assert structure(parks[0]) != structure(parks[5]) != structure(parks[6])
    mixed = make_case(4, seed=0)  # PV and a process hold their numbers as constants
    assert ParkModelRequest(mixed.park, mixed.inputs, None, mixed.dt_h).structure() is None


def test_a_failed_shared_solve_is_diagnosed_on_the_parks_own_model() -> None:
    parks, inputs, dt_h, prices = _parks()
    _SHARED.clear()
    solve_shared(parks[0], inputs[parks[0].id], None, dt_h, prices)  # p0 builds it
    battery = parks[1].assets[0]
    # measured above soc_max with no power to come down in one interval: infeasible
    stuck = _renamed(parks[1], "stuck", "x", power_kw=1.0)
    state = {"x0": AssetState(soc_kwh=battery.energy_kwh)}
    with pytest.raises(InfeasibleError) as caught:
        solve_shared(stuck, inputs["p1"], state, dt_h, prices)
    assert caught.value.constraint is not None
    assert caught.value.constraint.startswith("x0-")
    values, _ = solve_shared(parks[2], inputs["p2"], None, dt_h, prices)  # still shared, still right
    own, _ = solve_park(parks[2], inputs["p2"], None, dt_h, prices)
    assert all(np.array_equal(v, own.asset_power_kw()[a]) for a, v in values.asset_power_kw().items())
