"""``python -m bench forecast [--days N] [-f NAME ...]``: day-ahead MAE over persistence's, per market.

Each shared price file is imported (``drop-day``), the periods of
``docs/forecasting.md`` (or each file's last ``--days`` days) are evaluated
walk-forward at the day-ahead gate closure from the replay exchange's
history (:func:`strategies.walk_forward`, the code behind ``vpp forecast
evaluate``), and per forecaster (default ``arx`` and ``gbm``) the ratio
``MAE / MAE persistence`` (< 1 beats persistence; issue #13 asks <= 0.85)
and the 10-90 % band coverage (0.8 when calibrated) are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import structlog

from market_replay import import_prices
from market_replay.canonical import PriceFrame
from market_replay.exchange import ReplayExchange
from strategies import ForecastScore, walk_forward
from vpp.config import MarketConfig, load_market
from vpp.timeutil import day_intervals_utc

REPO = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data/prices")
MARKETS = [
    ("cn-province-a", "cn-spot-96", "cn_province_a_spot_2025-05_2025-06_15min.csv"),
    ("nordpool-dk1", "nordpool-regulating", "nordpool_dk1_dk2_spot_regulating_2016_hourly.csv"),
    ("ercot-houston", "ercot-dam", "ercot_dam_spp_hubs_zones_2022-2024_hourly.csv"),
    ("epex-de-lu", "entsoe-day-ahead", "entsoe_de_lu_day_ahead_2020-2022_hourly.csv"),
]


class _Clock:
    at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self.at


def scores(
    prices: PriceFrame, market: MarketConfig, days: Sequence[dt.date], forecasters: Sequence[str]
) -> list[ForecastScore]:
    """Day-ahead scores of ``forecasters`` (and persistence) on ``days``, each day forecast
    at its gate closure from what the replay exchange has published by then."""
    frame = prices.frame
    tz = market.timezone
    clock = _Clock()
    exchange = ReplayExchange(frame, market, clock)

    def history_at(when: dt.datetime) -> pd.DataFrame:
        clock.at = when
        return exchange.history()

    return walk_forward(
        days, history_at=history_at,
        decision_time=lambda d: market.rules_on(d).gate_closure(d),
        day_index=lambda d: day_intervals_utc(d, tz, prices.interval_minutes),
        actual=frame["da_price"], forecasters=forecasters, timezone=tz,
    )


#: The periods of the table in docs/forecasting.md (``--days`` replaces them by each file's
#: last N days).
PERIODS = {
    "cn-province-a": (dt.date(2025, 5, 15), dt.date(2025, 6, 29)),
    "nordpool-dk1": (dt.date(2016, 3, 1), dt.date(2016, 12, 31)),
    "ercot-houston": (dt.date(2023, 1, 1), dt.date(2023, 10, 31)),
    "epex-de-lu": (dt.date(2022, 9, 1), dt.date(2022, 12, 31)),
}


def run(
    market_id: str, fmt: str, file: str, days: int | None, forecasters: Sequence[str]
) -> tuple[list[ForecastScore], float]:
    path = REPO / "data" / "prices" / file
    path = path if path.exists() else SHARED / file
    market = load_market(REPO / "config" / "markets" / f"{market_id}.toml")
    prices = import_prices(path, fmt, market, policy="drop-day").prices
    frame = prices.frame
    tz = market.timezone
    if days is None:
        first, last = PERIODS[market_id]
    else:
        last = frame.index[-1].tz_convert(tz).date()
        first = max(frame.index[0].tz_convert(tz).date() + dt.timedelta(days=8),
                    last - dt.timedelta(days=days - 1))
    wanted = [d for d in prices.days(tz) if first <= d <= last]
    start = time.perf_counter()
    scored = scores(prices, market, wanted, forecasters)
    return scored, time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench forecast")
    parser.add_argument("--days", type=int, help="each file's last N days (default: the "
                        "periods of docs/forecasting.md)")
    parser.add_argument("--market", action="append", help="only these market ids")
    parser.add_argument("--forecaster", "-f", action="append",
                        help="forecasters to score against persistence (default: arx, gbm)")
    args = parser.parse_args(argv)
    forecasters = args.forecaster or ["arx", "gbm"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    print(f"{'market':16} {'forecaster':12} {'days':>5} {'MAE / persistence':>18} "
          f"{'10-90% coverage':>16} {'wall s':>7}")
    for market_id, fmt, file in MARKETS:
        if args.market and market_id not in args.market:
            continue
        scored, wall = run(market_id, fmt, file, args.days, forecasters)
        for score in scored:
            print(f"{market_id:16} {score.forecaster:12} {score.days:5d} "
                  f"{score.mae_vs_persistence:18.3f} {score.coverage:16.2f} {wall:7.1f}")
    return 0
