"""Scale benchmark: parks solved in worker processes, and sweep throughput on Dask.

``python -m bench scale [--parks 100] [--batteries 10] [--cells 4]``.

1. A deterministic day-ahead schedule of P parks x B batteries x 96 quarter-hours
   (:func:`strategies.schedule.optimise_schedule`, the plan's and the deterministic
   bid's code path) with 1 and 2 worker processes, against the sum of the same
   per-park LPs built with scipy and solved by highspy directly
   (:class:`bench.strategy.Reference`), all in this run. The worker pool is started
   (and warmed, on parks of another structure, so each worker still compiles this run's
   shared problem inside the timing) before timing; its start-up is printed on its own.
2. Sweep throughput: the same cells (one day each of the shipped Chinese slice) on a
   ``LocalCluster`` of 1 and of 2 worker processes (:func:`vpp.backtest.sweep.run_sweep`),
   cells per minute after the cluster is up, and their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import structlog

from bench.strategy import Reference, make_case
from strategies.schedule import optimise_schedule

REPO = Path(__file__).resolve().parents[1]
CN = REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv"


def parks_row(parks: int, batteries: int) -> dict[str, float]:
    first = make_case(batteries, seed=0, park_id="p0", types=("battery",))
    cases = [
        dataclasses.replace(
            make_case(batteries, seed=p, park_id=f"p{p}", types=("battery",)),
            prices=first.prices,
        )
        for p in range(parks)
    ]
    park_list = [c.park for c in cases]
    inputs = {c.park.id: c.inputs for c in cases}
    reference = 0.0
    ref_objective = 0.0
    for case in cases:
        start = time.perf_counter()
        ref_objective += Reference(case).solve()
        reference += time.perf_counter() - start
    row: dict[str, float] = {"reference_s": reference, "reference_objective": ref_objective}
    # The pool is warmed on parks of another structure (1 battery): the timed run still
    # pays its own compile, once per structure and worker (strategies.schedule.solve_shared).
    warm = [make_case(1, seed=p, park_id=f"w{p}", types=("battery",)) for p in range(4)]
    for workers in (1, 2):
        if workers > 1:
            start = time.perf_counter()
            optimise_schedule([c.park for c in warm], {c.park.id: c.inputs for c in warm}, None,
                              first.dt_h, first.prices, parallel=workers)  # start the pool
            row["pool_start_s"] = time.perf_counter() - start
        start = time.perf_counter()
        schedule = optimise_schedule(
            park_list, inputs, None, first.dt_h, first.prices, parallel=workers
        )
        row[f"plan_{workers}_s"] = time.perf_counter() - start
        row[f"objective_{workers}"] = schedule.objective
    return row


def sweep_row(cells: int) -> dict[str, float]:
    import pandas as pd

    from market_replay.canonical import write_prices
    from market_replay.importers import import_prices
    from vpp.backtest.sweep import dask_client, run_sweep, sweep_cells
    from vpp.config import SweepSpec, load_config

    cfg = load_config(REPO / "config")
    frame = import_prices(CN, "cn-spot-96", cfg.markets["cn-province-a"], policy="drop-day").prices
    days = sorted(d for d in frame.days("Asia/Shanghai") if d.month == 5 and d.day >= 12)
    frame = frame.between(pd.Timestamp("2025-05-04T16:00Z"), frame.frame.index[-1])
    row: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prices = Path(tmp) / "cn.csv"
        write_prices(frame, prices, source="shipped slice")
        spec = SweepSpec.model_validate({
            "baselines": False,
            "grid": {"scenarios": [2], "reoptimise_every": [96]},
            "periods": [{"start": str(d), "end": str(d)} for d in days[:cells]],
            "markets": [{"prices": str(prices)}],
        })
        grid = sweep_cells(spec, cfg)
        for workers in (1, 2):
            start = time.perf_counter()
            with dask_client(None, workers) as client:
                row[f"cluster_{workers}_s"] = time.perf_counter() - start
                start = time.perf_counter()
                run_sweep(grid, REPO / "config", Path(tmp) / f"out{workers}", client)
                row[f"sweep_{workers}_s"] = time.perf_counter() - start
    row["cells"] = len(grid)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--parks", type=int, default=100)
    parser.add_argument("--batteries", type=int, default=10)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    row = parks_row(args.parks, args.batteries)
    print(f"Day-ahead schedule, {args.parks} parks x {args.batteries} batteries x 96 x 15 min")
    print(f"  direct highspy, sum of per-park build + solve: {row['reference_s']:.3f} s")
    for workers in (1, 2):
        print(
            f"  vpp, {workers} worker process{'es' if workers > 1 else ''}: "
            f"{row[f'plan_{workers}_s']:.3f} s  ratio {row[f'plan_{workers}_s'] / row['reference_s']:.2f}"
        )
    print(f"  (pool start-up, once per process: {row['pool_start_s']:.2f} s; objectives "
          f"{row['objective_1']:.6g} / {row['objective_2']:.6g}, reference {row['reference_objective']:.6g})")
    sys.stdout.flush()
    if not args.skip_sweep:
        sweep = sweep_row(args.cells)
        n = sweep["cells"]
        print(f"Sweep of {n:.0f} one-day cells on a LocalCluster (after start-up)")
        for workers in (1, 2):
            s = sweep[f"sweep_{workers}_s"]
            print(f"  {workers} worker{'s' if workers > 1 else ''}: {s:.2f} s, {60 * n / s:.1f} cells/min "
                  f"(cluster start {sweep[f'cluster_{workers}_s']:.1f} s)")
        print(f"  throughput ratio 2/1: {sweep['sweep_1_s'] / sweep['sweep_2_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
