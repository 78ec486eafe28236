"""The replay exchange: historical prices published only once they were known.

It plays the market for backtests (and, served over HTTP, for the daemon's
simulation mode). Three rules make a backtest honest:

* **Publication.** Each value has a publication time: day-ahead prices for
  delivery day D at the market's day-ahead publication time (D-1 afternoon
  in China, 12:45 D-1 in SDAC); real-time prices when their interval ends;
  published fundamentals (forecasts of load, renewables, bidding space) at
  ``fundamentals_publication`` local time on D-1 (default 08:00, before the
  day-ahead gate closes, which is when Chinese trading centres publish
  them). Asking for a value before its publication time raises
  :class:`~vpp.LookAheadError`: look-ahead is impossible, not unlikely.
* **Gate closure and rules.** A day-ahead bid is accepted only before gate
  closure and only if every curve obeys the market's rules on that day
  (:mod:`vpp.market_rules`, the same validator the strategy runs before
  submitting); otherwise :class:`~vpp.MarketRuleError` names the rule.
* **Clearing.** Each interval's curve is cleared at the realized day-ahead
  price: ``step`` curves give the quantity of the highest point priced at
  or below the clearing price, ``linear`` curves interpolate between points;
  both extend flat beyond their first and last point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import structlog

from vpp.awards import delivery_intervals
from vpp.config.models import MarketConfig
from vpp.errors import InputError, LookAheadError, MarketRuleError
from vpp.market_rules import check_rt_submission, check_submission, clear_rt_bid, rt_clearing_price
from vpp.timeutil import zone
from vpp.types import Award, BidCurve, Clock, DayAheadBid, RealTimeAward, RealTimeBid

log = structlog.get_logger(__name__)

PRICE_COLUMNS = ("da_price", "rt_price", "rt_price_up", "rt_price_down")
_REALTIME = ("rt_price", "rt_price_up", "rt_price_down")


# --------------------------------------------------------------------------- clearing
# The bid rules live in vpp.market_rules, the one validator the strategy runs too.


def clear_curve(curve: BidCurve, price_per_mwh: float, shape: str, mode: str) -> float:
    """Quantity [MW] a curve is awarded at a clearing price."""
    quantities = np.array([p.quantity_mw for p in curve.points])
    if mode == "quantity_only":
        return float(quantities[0])
    prices = np.array([p.price_per_mwh for p in curve.points])
    if shape == "linear":
        return float(np.interp(price_per_mwh, prices, quantities))
    index = int(np.searchsorted(prices, price_per_mwh, side="right")) - 1
    return float(quantities[max(index, 0)])


# --------------------------------------------------------------------------- exchange


@dataclass(frozen=True)
class Receipt:
    bid_id: str
    accepted_at: dt.datetime


class ReplayExchange:
    """A :class:`vpp.types.Exchange` over a historical price frame.

    ``prices`` is a frame with a UTC ``DatetimeIndex`` of interval starts and
    the canonical columns (see ``market_replay.canonical``).
    """

    def __init__(
        self,
        prices: pd.DataFrame,
        market: MarketConfig,
        clock: Clock,
        *,
        fundamentals_publication: dt.time = dt.time(8, 0),
    ) -> None:
        if not isinstance(prices.index, pd.DatetimeIndex) or prices.index.tz is None:
            raise TypeError("prices must have a tz-aware DatetimeIndex of interval starts")
        self.prices = prices.sort_index()
        self.market = market
        self.clock = clock
        self._tz = zone(market.timezone)
        index = self.prices.index.tz_convert("UTC")
        local_days = index.tz_convert(market.timezone).normalize().tz_localize(None)
        self._day_of = np.array([d.date() for d in local_days])
        step = pd.Timedelta(minutes=self._interval_minutes(index))
        ends_ns = (index + step).as_unit("ns").asi8
        da_pub: dict[dt.date, int] = {}
        fund_pub: dict[dt.date, int] = {}
        for day in sorted(set(self._day_of)):
            da_pub[day] = _ns(market.rules_on(day).da_publication(day))
            fund_local = dt.datetime.combine(
                day - dt.timedelta(days=1), fundamentals_publication, self._tz
            )
            fund_pub[day] = _ns(fund_local)
        days = self._day_of
        self._published_ns: dict[str, np.ndarray] = {}
        for column in self.prices.columns:
            if column == "da_price":
                self._published_ns[column] = np.array([da_pub[d] for d in days], dtype=np.int64)
            elif column in _REALTIME:
                self._published_ns[column] = ends_ns
            else:
                self._published_ns[column] = np.array([fund_pub[d] for d in days], dtype=np.int64)
        self._bids: dict[str, DayAheadBid] = {}
        self._bid_ids: dict[str, str] = {}
        self._rt_bids: dict[str, RealTimeBid] = {}
        self._rt_bid_ids: dict[str, str] = {}

    @staticmethod
    def _interval_minutes(index: pd.DatetimeIndex) -> int:
        """The interval length: the most common step (whole days may be missing)."""
        steps, counts = np.unique(np.diff(index.as_unit("ns").asi8), return_counts=True)
        if len(steps) == 0:
            raise InputError("price frame needs at least two intervals")
        step = int(steps[np.argmax(counts)])
        if (steps % step).any():
            raise InputError("price frame intervals must be whole multiples of one step")
        return step // 60_000_000_000

    # ----------------------------------------------------------------- data

    def published_at(self, column: str, interval_start: dt.datetime) -> dt.datetime:
        """When the value of ``column`` for ``interval_start`` became known."""
        position = self.prices.index.get_loc(pd.Timestamp(interval_start))
        return pd.Timestamp(self._published_ns[column][position], tz="UTC").to_pydatetime()

    def known(self, column: str) -> pd.Series:
        """Every value of ``column`` published by now (may reach into the future for DA)."""
        self._check_column(column)
        mask = self._published_ns[column] <= _ns(self.clock.now())
        return self.prices[column][mask]

    def history(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """All rows with at least one value published by now; unpublished values are NaN.

        This is the only frame a forecaster receives. By default it holds the
        value columns (prices, fundamentals); the quality-flag columns of a
        file imported with ``--on-missing flag`` are left out (a flagged value
        that was missing is already NaN). Asked for by name, a flag column
        comes back as float 1.0/0.0, NaN while unpublished.
        """
        if columns is None:
            columns = [c for c in self.prices.columns if not _is_flag(c)]
        columns = list(columns)
        for column in columns:
            self._check_column(column)
        now = _ns(self.clock.now())
        frame = self.prices[columns].astype("float64")
        for column in columns:
            frame.loc[self._published_ns[column] > now, column] = np.nan
        return frame.dropna(how="all")

    def get(self, column: str, start: dt.datetime, end: dt.datetime) -> pd.Series:
        """Values of ``column`` for intervals in [start, end); error if any is unpublished."""
        self._check_column(column)
        index = self.prices.index
        mask = (index >= pd.Timestamp(start)) & (index < pd.Timestamp(end))
        if not mask.any():
            raise KeyError(f"no {column} data between {start} and {end}")
        published = self._published_ns[column][mask]
        now = _ns(self.clock.now())
        if (published > now).any():
            first = pd.Timestamp(published[published > now].min(), tz="UTC")
            raise LookAheadError(
                f"{column} for [{start}, {end}) is not published at {self.clock.now().isoformat()} "
                f"(first value known at {first.isoformat()})"
            )
        return self.prices[column][mask]

    def _check_column(self, column: str) -> None:
        if column not in self._published_ns:
            raise KeyError(f"price frame has no column {column!r}; it has {list(self.prices)}")

    # ----------------------------------------------------------------- bids

    def submit_day_ahead(self, bid: DayAheadBid) -> str:
        if bid.idempotency_key in self._bids:
            raise MarketRuleError(
                "duplicate_bid", f"a bid for {bid.idempotency_key} was already accepted"
            )
        rules = self.market.rules_on(bid.delivery_day)
        now = self.clock.now()
        try:
            check_submission(bid, rules, now, "day_ahead")
        except MarketRuleError as exc:
            log.warning(
                "bid_rejected", market=bid.market_id, day=str(bid.delivery_day), rule=exc.rule
            )
            raise
        bid_id = f"replay-{len(self._bids) + 1}"
        self._bids[bid.idempotency_key] = bid
        self._bid_ids[bid.idempotency_key] = bid_id
        log.info(
            "bid_accepted",
            market=bid.market_id,
            day=str(bid.delivery_day),
            bid_id=bid_id,
            intervals=len(bid.curves),
        )
        return bid_id

    def day_ahead_bid(
        self, market_id: str, portfolio_id: str, delivery_day: dt.date
    ) -> DayAheadBid | None:
        """The bid held for a portfolio's delivery day, or None (lets a bidder verify it)."""
        return self._bids.get(f"{market_id}/{delivery_day.isoformat()}/{portfolio_id}/day_ahead")

    def receipt(self, idempotency_key: str) -> str | None:
        """The bid id given when the bid (day-ahead or real-time) with this idempotency key
        was accepted."""
        return self._bid_ids.get(idempotency_key) or self._rt_bid_ids.get(idempotency_key)

    def day_ahead_awards(
        self, market_id: str, portfolio_id: str, delivery_day: dt.date
    ) -> list[Award]:
        key = f"{market_id}/{delivery_day.isoformat()}/{portfolio_id}/day_ahead"
        bid = self._bids.get(key)
        if bid is None:
            return []
        rules = self.market.rules_on(delivery_day)
        publication = rules.da_publication(delivery_day)
        if self.clock.now() < publication:
            raise LookAheadError(
                f"day-ahead results for {delivery_day} are published at {publication.isoformat()}, "
                f"now {self.clock.now().isoformat()}"
            )
        awards = []
        for curve in bid.curves:
            price = self._product_price(curve.interval_start, rules.day_ahead.interval_minutes)
            quantity = clear_curve(curve, price, rules.bidding.curve, rules.bidding.mode)
            awards.append(Award(curve.interval_start, quantity, price))
        return awards

    # ----------------------------------------------------------------- real-time bids

    def submit_real_time(self, bid: RealTimeBid) -> str:
        """Accept a real-time bid until its period's gate (:func:`vpp.market_rules.check_rt_submission`).

        A bid for a period already holding one of the same key (market,
        product, period, portfolio, direction) REPLACES it while the gate is
        open -- real-time offers are updatable until the gate (ERCOT); after it
        the bid is refused by ``rt_gate_closure`` like any late bid.
        """
        start = pd.Timestamp(bid.period_start).tz_convert("UTC")
        day = start.tz_convert(self._tz).date()
        rules = self.market.rules_on(day)
        now = self.clock.now()
        try:
            check_rt_submission(bid, rules, bid.product_id, now)
        except MarketRuleError as exc:
            log.warning("rt_bid_rejected", market=bid.market_id, product=bid.product_id,
                        period=start.isoformat(), rule=exc.rule)
            raise
        key = bid.idempotency_key
        replaced = key in self._rt_bids
        bid_id = self._rt_bid_ids.get(key) or f"replay-rt-{len(self._rt_bid_ids) + 1}"
        self._rt_bids[key] = bid
        self._rt_bid_ids[key] = bid_id
        log.info("rt_bid_accepted", market=bid.market_id, product=bid.product_id,
                 period=start.isoformat(), direction=bid.direction, bid_id=bid_id,
                 replaced=replaced)
        return bid_id

    def real_time_bid(self, idempotency_key: str) -> RealTimeBid | None:
        """The real-time bid held under ``idempotency_key`` (lets a bidder verify it)."""
        return self._rt_bids.get(idempotency_key)

    def real_time_awards(self, bid: RealTimeBid) -> list[RealTimeAward]:
        """What ``bid`` is awarded per settlement interval of its period, from the period's start.

        Cleared with the product's rule against the realised price
        (:func:`vpp.market_rules.clear_rt_bid`). The quantity is known from the
        interval's start (the market activates the bid then); the price it is
        paid is given only once published (the interval's end), ``None`` before.
        Before the period starts: :class:`~vpp.LookAheadError`.
        """
        held = self._rt_bids.get(bid.idempotency_key)
        if held is None:
            return []
        start = pd.Timestamp(held.period_start).tz_convert("UTC")
        now = pd.Timestamp(self.clock.now()).tz_convert("UTC")
        if now < start:
            raise LookAheadError(
                f"real-time awards for {held.product_id} at {start.isoformat()} are known from "
                f"the period's start, now {now.isoformat()}"
            )
        rules = self.market.rules_on(start.tz_convert(self._tz).date())
        product = rules.rt_product(held.product_id)
        end = start + pd.Timedelta(minutes=product.period_minutes)
        index = self.prices.index
        positions = np.flatnonzero((index >= start) & (index < end))
        out = []
        for position in positions:
            interval = index[position]
            if interval > now:
                break  # activation of a later interval of the period is not known yet
            row = self.prices.iloc[position]
            quantity = clear_rt_bid(held, product, row)
            published = self._published_ns[product.price_columns[0]][position] <= _ns(now)
            price = rt_clearing_price(held, product, row) if published else None
            out.append(RealTimeAward(held.product_id, held.direction, interval.to_pydatetime(),
                                     float(quantity), price))
        return out

    def _product_price(self, start: dt.datetime, product_minutes: int) -> float:
        """The day-ahead price of a product (mean over its canonical intervals)."""
        intervals = delivery_intervals(pd.DatetimeIndex(self.prices.index), start, product_minutes)
        values = self.prices["da_price"].to_numpy(float)[intervals]
        if len(values) == 0 or not np.isfinite(values).all():
            raise KeyError(f"no day-ahead price for the product starting {start.isoformat()}")
        return float(values.mean())


def _is_flag(column: str) -> bool:
    return column == "quality_flag" or column.startswith("flag_")


def _ns(when: dt.datetime) -> int:
    return int(pd.Timestamp(when).as_unit("ns").value)
