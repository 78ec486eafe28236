"""Invariants over random inputs (hypothesis): SoC bounds, energy balance, grid limits, curves."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import Forecast, build_day_ahead_bid, check_bid
from strategies.park import interval_hours
from strategies.schedule import solve_park
from strategies.state import ParkInputs
from tests.strategies.conftest import battery, make_park, pv, utc_index

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
prices_strategy = st.lists(st.floats(-100, 1500, allow_nan=False), min_size=4, max_size=12)


@SETTINGS
@given(
    prices=prices_strategy,
    eta_c=st.floats(0.7, 1.0),
    eta_d=st.floats(0.7, 1.0),
    soc_min=st.floats(0.0, 0.4),
    soc_max=st.floats(0.6, 1.0),
    soc_initial=st.floats(0.0, 1.0),
    export_kw=st.floats(0.0, 2000.0),
    import_kw=st.floats(1.0, 2000.0),
    pv_kw=st.floats(0.0, 1500.0),
    policy=st.sampled_from(["initial", "free", "valued"]),
)
def test_schedule_invariants(prices, eta_c, eta_d, soc_min, soc_max, soc_initial, export_kw,  # type: ignore[no-untyped-def]
                             import_kw, pv_kw, policy) -> None:
    soc_initial = soc_min + (soc_max - soc_min) * soc_initial
    spec = battery(charge_efficiency=eta_c, discharge_efficiency=eta_d, soc_min=soc_min,
                   soc_max=soc_max, soc_initial=soc_initial, soc_final=policy,
                   terminal_value_per_mwh=200.0, degradation_cost_per_mwh=3.0)
    park = make_park(spec, pv(), import_kw=import_kw, export_kw=export_kw)
    index = utc_index(len(prices), 15)
    dt_h = interval_hours(index, 15)
    available = np.full(len(prices), pv_kw)
    model, stats = solve_park(park, ParkInputs(index, pv_available_kw={"pv": available}), None,
                              dt_h, np.array(prices))
    b = model.block("battery")
    charge, discharge, soc = b.charge_kw.value[0], b.discharge_kw.value[0], b.soc_kwh.value[0]
    energy = spec["energy_kwh"]
    tol = 1e-5 * energy
    # SoC within bounds
    assert (soc >= soc_min * energy - tol).all()
    assert (soc <= soc_max * energy + tol).all()
    # Energy balance: SoC follows the powers with the efficiencies and actual dt
    recomputed = soc_initial * energy + np.cumsum((eta_c * charge - discharge / eta_d) * dt_h)
    assert np.allclose(recomputed, soc, atol=tol)
    # Park balance and grid limits
    net = model.net_kw.value[0]
    assert np.allclose(net, discharge - charge + model.block("pv").output_kw.value[0], atol=1e-4)
    assert (net <= export_kw + 1e-4).all()
    assert (-net <= import_kw + 1e-4).all()
    assert np.isfinite(stats.objective)
    if policy == "initial":
        assert soc[-1] >= soc_initial * energy - tol


@SETTINGS
@given(
    scenarios=st.integers(1, 7),
    seed=st.integers(0, 10_000),
    mode=st.sampled_from(["price_quantity", "quantity_only"]),
    curve=st.sampled_from(["step", "linear"]),
    max_segments=st.integers(2, 5),
)
def test_bid_curves_are_monotone_within_limits(cn_rules, scenarios, seed, mode, curve,  # type: ignore[no-untyped-def]
                                               max_segments) -> None:
    rng = np.random.default_rng(seed)
    index = utc_index(8, 15)
    matrix = rng.uniform(-200, 1800, size=(scenarios, 8))  # beyond floor/cap on purpose
    forecast = Forecast.from_scenarios(matrix, index)
    rules = cn_rules.model_copy(update={"bidding": cn_rules.bidding.model_copy(
        update={"mode": mode, "curve": curve, "max_segments": max_segments})})
    park = make_park(battery(soc_initial=0.5), export_kw=800.0)
    result = build_day_ahead_bid([park], {"park": ParkInputs(index)}, None, rules, forecast,
                                 portfolio_id="p", created_at=dt.datetime(2025, 5, 19, tzinfo=dt.UTC),
                                 on_failure="raise")
    check_bid(result.bid, rules)  # raises MarketRuleError if any rule is broken
    floor, cap = rules.price_limits.floor_per_mwh, rules.price_limits.cap_per_mwh
    for bid_curve in result.bid.curves:
        prices = [p.price_per_mwh for p in bid_curve.points]
        quantities = [p.quantity_mw for p in bid_curve.points]
        assert all(floor <= p <= cap for p in prices)
        assert all(b >= a for a, b in itertools.pairwise(quantities))
        assert len(bid_curve.points) <= max_segments
        assert all(q <= 0.8 + 1e-9 for q in quantities)  # never offers above the export limit
        if mode == "quantity_only":
            assert len(bid_curve.points) == 1
