"""Peak memory of a backtest against its length: ``python -m bench memory [--days 3,10,30]``.

Each length runs in a fresh interpreter (``python -c``) so its peak RSS is its own:
the shipped Chinese slice (May-June 2025, 57 complete days from 12 May: at most 50
days here), the example portfolio, the shipped strategy settings with real time
re-solved every 8 intervals and no baselines. Prints the peak resident set size per
run, its growth per extra day between each pair of lengths and overall, and the
ratio of the longest run's peak to the shortest's. Issue 16 asks for constant
memory: each day is settled as the run goes, its per-asset rows spooled to disk and
its telemetry dropped (:class:`vpp.backtest.run._Books`), so the growth per day is
about 0.1 MB (it was 1.7 MB when every reading was kept to the end).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import datetime as dt, json, os, resource, shutil, sys, tempfile, time
from pathlib import Path
import structlog, logging
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from market_replay.importers import import_prices
from strategies import StrategyOptions
from vpp.backtest.report import write_backtest
from vpp.backtest.run import BacktestOptions, run_backtest
from vpp.config import load_config, load_market
from vpp.runtime.operator import MarketPortfolio
repo = Path(sys.argv[1]); days = int(sys.argv[2]); year = sys.argv[3] == "year"
report = sys.argv[4] == "report"
tmp = Path(tempfile.mkdtemp())
if year:  # EPEX DE-LU 2021, hourly day-ahead prices on the market's 15-min grid
    shared = Path(os.environ.get("VPP_SHARED_DATA", repo.parent / "shared" / "data" / "prices"))
    market = load_market(repo / "config" / "markets" / "epex-de-lu.toml")
    frame = import_prices(shared / "entsoe_de_lu_day_ahead_2020-2022_hourly.csv",
                          "entsoe-day-ahead", market, policy="drop-day").prices
    config = tmp / "config"
    shutil.copytree(repo / "config", config)
    (tmp / "data").symlink_to(repo / "data", target_is_directory=True)
    for park in (config / "parks").glob("*.toml"):
        park.write_text(park.read_text(encoding="utf-8")
                        .replace('market = "cn-province-a"', 'market = "epex-de-lu"')
                        .replace('timezone = "Asia/Shanghai"', 'timezone = "Europe/Berlin"'),
                        encoding="utf-8")
    portfolio = MarketPortfolio.from_config(load_config(config), "epex-de-lu")
    run = [d for d in frame.days("Europe/Berlin") if d.year == 2021][:days]
else:
    cfg = load_config(repo / "config")
    frame = import_prices(repo / "data/prices/cn_province_a_spot_2025-05_2025-06_15min.csv",
                          "cn-spot-96", cfg.markets["cn-province-a"], policy="drop-day").prices
    portfolio = MarketPortfolio.from_config(cfg, "cn-province-a")
    first = dt.date(2025, 5, 12)
    run = [d for d in frame.days("Asia/Shanghai") if d >= first][:days]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
options = BacktestOptions(StrategyOptions(reoptimise_every=8, scenarios=3), baselines=False)
if year:
    # The strategy's run, its carbon books and its report, without the perfect-foresight
    # bound: on DE-LU 2021 that raises InfeasibleError (daqing's tank-55 heat on a cold day)
    # instead of the UnmetDemandError it reports as an unbounded day.
    import pandas as pd
    from vpp.backtest.run import BacktestResult, carbon_books, on_schedule_grid, simulate
    frame = on_schedule_grid(frame, market.rules_on(run[0]).interval_minutes)
    main = simulate(portfolio, frame, run, options)
    result = BacktestResult(market.id, frame.currency, market.timezone, run, main,
                            pd.DataFrame(columns=["day", "revenue", "da_schedule", "solve_s"]))
    result.carbon = carbon_books(portfolio, frame, main, run, options)
else:
    result = run_backtest(portfolio, frame, run, options)
ran = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if report:
    write_backtest(result, tmp / "out")
shutil.rmtree(tmp)
print(json.dumps({"days": len(run), "wall_s": time.perf_counter() - start, "before_mb": before / 1024,
                  "run_mb": ran / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(days: int, year: bool = False, report: bool = False) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REPO), str(days), "year" if year else "cn",
         "report" if report else "-"],
        capture_output=True, text=True, cwd=REPO,
    )
    if out.returncode:
        raise SystemExit(f"{days}-day run failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _per_day(a: dict[str, float], b: dict[str, float]) -> float:
    return (b["peak_mb"] - a["peak_mb"]) / max(b["days"] - a["days"], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="3,10,30", help="run lengths, comma separated")
    parser.add_argument("--year", action="store_true",
                        help="EPEX DE-LU 2021 (shared hourly prices on the 15-min grid) instead "
                             "of the Chinese file, --days up to 365; the strategy's run, carbon "
                             "and report without the perfect-foresight bound")
    parser.add_argument("--report", action="store_true",
                        help="also write the report (into a temporary folder) inside the measurement")
    args = parser.parse_args(argv)
    rows = [measure(int(d), args.year, args.report) for d in args.days.split(",")]
    source = "EPEX DE-LU 2021, hourly prices on 15 min" if args.year else "Chinese 15-min prices"
    print(f"Backtest peak RSS by run length (example portfolio, {source}"
          f"{', report written' if args.report else ''})")
    for row in rows:
        print(f"  {row['days']:>3.0f} days: peak {row['peak_mb']:7.1f} MB (after the run "
              f"{row['run_mb']:6.1f} MB, after imports and data {row['before_mb']:6.1f} MB), "
              f"{row['wall_s']:6.1f} s")
    for a, b in itertools.pairwise(rows):
        print(f"  {a['days']:.0f} -> {b['days']:.0f} days: {_per_day(a, b):+.2f} MB per extra day")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"  growth {_per_day(a, b):.2f} MB per extra day; ratio {b['peak_mb'] / a['peak_mb']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
