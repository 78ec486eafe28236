"""Backtest benchmark: wall time per simulated day, and how it grows with assets and days.

``python -m bench backtest [--days 1,3,7] [--copies 1,2,4] [--reoptimise-every 4]``

Runs the example portfolio (``config/``, the two parks on cn-province-a) on
the shipped Chinese prices, and copies of it (each park duplicated under a
new id) to grow the number of assets. Each row runs the strategy's full
simulation (day-ahead bid, awards, real-time dispatch of every interval,
simulated devices, settlement) plus perfect foresight, as ``vpp backtest
--no-baselines`` does; the baselines of ``vpp backtest`` add one more
simulation each (persistence; idle is cheap).

Ratios are against the first row measured in the same run (machines are
shared and noisy; absolute seconds move, ratios much less). The year
estimate multiplies the per-day time by 365 and adds the persistence
baseline at the same cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

from market_replay import import_prices
from strategies import StrategyOptions
from vpp.backtest.run import BacktestOptions, foresight, simulate
from vpp.config import load_config, load_market
from vpp.logging import configure_logging
from vpp.runtime.operator import MarketPortfolio

REPO = Path(__file__).resolve().parents[1]
FIRST_DAY = dt.date(2025, 5, 10)


def _portfolio(workdir: Path, copies: int) -> MarketPortfolio:
    config = workdir / f"config-{copies}"
    shutil.copytree(REPO / "config", config)
    data = workdir / "data"
    if not data.exists():
        data.symlink_to(REPO / "data", target_is_directory=True)
    parks = config / "parks"
    shutil.rmtree(parks)
    parks.mkdir()
    for source in (REPO / "config" / "parks").glob("*.toml"):
        text = source.read_text(encoding="utf-8")
        if 'market = "cn-province-a"' not in text:
            continue
        for k in range(copies):
            park_id = text.split('id = "', 1)[1].split('"', 1)[0]
            (parks / f"{park_id}-{k}.toml").write_text(
                text.replace(f'id = "{park_id}"', f'id = "{park_id}-{k}"', 1).replace(
                    "../../data", str(data)
                ),
                encoding="utf-8",
            )
    return MarketPortfolio.from_config(load_config(config), "cn-province-a")


def _row(
    portfolio: MarketPortfolio, prices, days: int, options: BacktestOptions
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    chosen = [d for d in prices.days("Asia/Shanghai") if d >= FIRST_DAY][:days]
    start = time.perf_counter()
    run = simulate(portfolio, prices, chosen, options)
    simulated = time.perf_counter() - start
    bound = foresight(portfolio, prices, chosen, options)
    total = time.perf_counter() - start
    assets = sum(len(p.assets) for p in portfolio.parks)
    return {
        "assets": assets,
        "days": len(chosen),
        "simulate_s": simulated,
        "foresight_s": total - simulated,
        "per_day_s": total / len(chosen),
        "net": run.net_revenue,
        "bound": float(bound["revenue"].sum()),
    }


def _year(reoptimise_every: int) -> int:
    import os

    from vpp.backtest.run import run_backtest

    shared = Path(os.environ.get("VPP_SHARED_DATA", REPO.parent / "shared" / "data"))
    source = shared / "prices" / "entsoe_de_lu_day_ahead_2020-2022_hourly.csv"
    market = load_market(REPO / "config" / "markets" / "epex-de-lu.toml")
    prices = import_prices(source, "entsoe-day-ahead", market, policy="drop-day").prices
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = work / "config"
        shutil.copytree(REPO / "config", config)
        (work / "data").symlink_to(REPO / "data", target_is_directory=True)
        for park in (config / "parks").glob("*.toml"):
            text = (
                park.read_text(encoding="utf-8")
                .replace('market = "cn-province-a"', 'market = "epex-de-lu"')
                .replace('timezone = "Asia/Shanghai"', 'timezone = "Europe/Berlin"')
            )
            park.write_text(text, encoding="utf-8")
        portfolio = MarketPortfolio.from_config(load_config(config), "epex-de-lu")
        days = [d for d in prices.days("Europe/Berlin") if d.year == 2021]
        options = BacktestOptions(StrategyOptions(reoptimise_every=reoptimise_every), workers=2)
        start = time.perf_counter()
        result = run_backtest(portfolio, prices, days, options)
        wall = time.perf_counter() - start
    summary = result.summary()
    print(
        f"year benchmark: EPEX DE-LU 2021, {summary['days']} days, {summary['intervals']} intervals"
    )
    print(
        f"wall time {wall:.0f} s ({wall / 60:.1f} min; target 10 min), "
        f"{wall / summary['days']:.2f} s per simulated day incl. references"
    )
    print(
        f"net {summary['net_revenue']:.0f} EUR, perfect foresight {summary['perfect_foresight_revenue']:.0f}, "
        f"no flexibility {summary['no_flexibility_revenue']:.0f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench backtest", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--days", default="1,3,7", help="day counts, comma separated")
    parser.add_argument("--copies", default="1,2,4", help="portfolio copies, comma separated")
    parser.add_argument("--reoptimise-every", type=int, default=4)
    parser.add_argument(
        "--year",
        action="store_true",
        help="instead: the full-year target (35,040 quarter-hours) -- EPEX DE-LU 2021 from the "
        "shared data, the example parks moved onto that market, with perfect foresight and the "
        "baselines in a second process, as `vpp backtest` runs it",
    )
    args = parser.parse_args(argv)
    configure_logging(json=True, level="ERROR")
    if args.year:
        return _year(args.reoptimise_every)
    market = load_market(REPO / "config" / "markets" / "cn-province-a.toml")
    prices = import_prices(
        REPO / "data" / "prices" / "cn_province_a_spot_2025-05_2025-06_15min.csv",
        "cn-spot-96",
        market,
        policy="drop-day",
    ).prices
    options = BacktestOptions(StrategyOptions(reoptimise_every=args.reoptimise_every), baselines=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = _portfolio(work, 1)
        for days in (int(d) for d in args.days.split(",")):
            rows.append(("days", _row(base, prices, days, options)))
        for copies in (int(c) for c in args.copies.split(",")):
            if copies == 1:
                continue
            rows.append(("assets", _row(_portfolio(work, copies), prices, 1, options)))
    reference = rows[0][1]["per_day_s"]
    print(
        f"backtest benchmark: example portfolio on cn-province-a, 15-min, "
        f"real time re-solved every {args.reoptimise_every} interval(s)"
    )
    print(
        f"{'grows':>6} {'assets':>6} {'days':>4} {'simulate s':>10} {'foresight s':>11} "
        f"{'s/day':>7} {'ratio':>6} {'year est. min':>13}"
    )
    for grows, row in rows:
        year_min = row["per_day_s"] * 365 * 2 / 60  # strategy + persistence baseline
        print(
            f"{grows:>6} {row['assets']:>6} {row['days']:>4} {row['simulate_s']:>10.2f} "
            f"{row['foresight_s']:>11.2f} {row['per_day_s']:>7.2f} "
            f"{row['per_day_s'] / reference:>6.2f} {year_min:>13.1f}"
        )
    return 0
