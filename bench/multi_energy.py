"""Multi-energy benchmark: heat assets in a day's plan, and electrolysers as MILP against LP.

``python -m bench multi_energy [--parks 100] [--repeats 3]``:

1. One day's plan (perfect foresight, the shipped Chinese prices of
   2025-05-12) of the shipped oilfield park (``config/parks/daqing-oilfield.toml``:
   heat pump, hot-water tank, electrode boiler, molten-salt store, battery,
   PV) against the same park without its heat assets and heat demand
   (battery and PV only): solve time of each and their ratio, and the day's
   energy cost of each.
2. ``--parks`` parks (default 100), each a PEM/alkaline electrolyser
   (seeded sizes, minimum load 5-15 %, stand-by power) with its hydrogen
   store and offtake and a battery, planned on the same day's prices as a
   MILP (on/off above the minimum load) and as its LP relaxation: summed
   solve times and their ratio, and the relative objective gap
   (MILP - LP) / |LP| (the LP bound is at least as good).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.park import interval_hours
from strategies.schedule import solve_park
from strategies.state import load_inputs
from vpp.config import load_config
from vpp.config.models import ParkConfig
from vpp.timeutil import day_intervals_utc

REPO = Path(__file__).resolve().parents[1]
PRICES = REPO / "tests" / "data" / "cn_province_a_2025-05-01_2025-05-28.csv"
DAY = dt.date(2025, 5, 12)


def _prices(index: pd.DatetimeIndex) -> np.ndarray:
    from tests.strategies.conftest import cn_prices

    return cn_prices(PRICES)["da_price"].reindex(index).to_numpy(float)


def _time(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def heat_side_by_side(repeats: int) -> None:
    config = load_config(REPO / "config")
    park = config.parks["daqing-oilfield"]
    folder = config.park_files[park.id].parent
    index = day_intervals_utc(DAY, park.timezone, 15)
    dt_h = interval_hours(index, 15)
    prices = _prices(index)
    data = park.model_dump(mode="python")
    data["heat_levels"] = []
    data["assets"] = [a for a in data["assets"] if a["type"] in ("battery", "pv")]
    bare = ParkConfig.model_validate(data)
    rows = []
    for name, case in (("with heat", park), ("without heat", bare)):
        inputs = load_inputs(case, folder, index)
        seconds, (model, stats) = _time(
            lambda case=case, inputs=inputs: solve_park(case, inputs, None, dt_h, prices), repeats
        )
        net = np.asarray(model.net_kw.value)[0]
        cost = float(-(net * dt_h * prices).sum() / 1000)
        rows.append((name, seconds, stats.solve_s, cost))
    print(f"oilfield plan {DAY} (96 x 15 min), best of {repeats}:")
    print(f"  {'case':<14}{'total s':>10}{'solve s':>10}{'energy cost CNY':>18}")
    for name, total, solve_s, cost in rows:
        print(f"  {name:<14}{total:>10.3f}{solve_s:>10.4f}{cost:>18,.0f}")
    print(f"  ratio with/without heat: total {rows[0][1] / rows[1][1]:.2f}x, "
          f"solve {rows[0][2] / max(rows[1][2], 1e-9):.2f}x")


def electrolyser_park(i: int, rng: np.random.Generator) -> ParkConfig:
    alkaline = i % 2 == 1
    power = float(rng.uniform(1000, 5000))
    per_kg = float(rng.uniform(52, 58))
    offtake = float(rng.uniform(0.4, 0.7)) * power / per_kg  # kg/h: 40-70 % capacity factor
    return ParkConfig.model_validate({
        "id": f"h{i}", "name": f"h{i}", "market": "cn-province-a", "timezone": "Asia/Shanghai",
        "grid": {"import_limit_kw": 2 * power, "export_limit_kw": power},
        "assets": [
            {"id": "ely", "type": "electrolyser", "power_kw": power, "kwh_per_kg": per_kg,
             "technology": "alkaline" if alkaline else "pem",
             "min_load_fraction": 0.15 if alkaline else 0.05,
             "standby_kw": 0.01 * power, "ramp_limit_kw_per_min": power / 10},
            {"id": "store", "type": "hydrogen_storage", "capacity_kg": offtake * 12,
             "soc_min": 0.1, "soc_initial": 0.5, "offtake_kg_per_h": offtake},
            {"id": "bess", "type": "battery", "power_kw": power / 4, "energy_kwh": power / 2,
             "soc_initial": 0.5, "degradation_cost_per_mwh": 20.0},
        ],
    })


def milp_against_lp(parks: int, repeats: int) -> None:
    index = day_intervals_utc(DAY, "Asia/Shanghai", 15)
    dt_h = interval_hours(index, 15)
    prices = _prices(index)
    rng = np.random.default_rng(7)
    cases = [electrolyser_park(i, rng) for i in range(parks)]
    from strategies.state import ParkInputs

    inputs = ParkInputs(index)
    totals = {}
    objectives = {}
    for name, omit in (("MILP", frozenset()), ("LP relaxation",
                                               frozenset({"electrolyser:on-integrality"}))):
        def run(omit: frozenset[str] = omit) -> list[float]:
            return [solve_park(p, inputs, None, dt_h, prices, omit=omit)[1].objective
                    for p in cases]

        totals[name], objectives[name] = _time(run, repeats)
    milp, lp = np.array(objectives["MILP"]), np.array(objectives["LP relaxation"])
    gap = (lp - milp) / np.maximum(np.abs(lp), 1e-9)
    print(f"{parks} electrolyser parks, plan {DAY}, best of {repeats}:")
    print(f"  MILP {totals['MILP']:.2f} s, LP relaxation {totals['LP relaxation']:.2f} s, "
          f"ratio {totals['MILP'] / totals['LP relaxation']:.2f}x")
    print(f"  objective gap (LP - MILP) / |LP|: mean {gap.mean():.4%}, max {gap.max():.4%} "
          f"(profit; the relaxation is an upper bound: min {gap.min():.2e})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench multi_energy")
    parser.add_argument("--parks", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    heat_side_by_side(args.repeats)
    milp_against_lp(args.parks, max(1, args.repeats - 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
