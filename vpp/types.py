"""The plain, typed values that flow between the parts of vpp.

adapters -> portfolio -> strategy -> market -> dispatch -> adapters. Each
arrow carries one of these frozen dataclasses, never a shared mutable
object. Power and quantities follow :mod:`vpp.units`: positive = into the
grid (sold), negative = drawn from the grid (bought). Timestamps are
tz-aware UTC; constructing one of these with a naive timestamp raises
``TypeError``.

The injected seams (:class:`Clock`, :class:`Exchange`, :class:`Device`) are
protocols: the daemon gets real implementations, the backtest replayed and
simulated ones, and the strategy and dispatch code never knows which.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from vpp.errors import InputError
from vpp.timeutil import require_aware

# --------------------------------------------------------------------------- bids


@dataclass(frozen=True)
class BidPoint:
    """One point of a price-quantity curve.

    ``quantity_mw`` is what the portfolio offers at ``price_per_mwh``: > 0
    sells, < 0 buys.
    """

    price_per_mwh: float
    quantity_mw: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price_per_mwh) and math.isfinite(self.quantity_mw)):
            raise InputError(f"bid point must be finite, got {self}")


@dataclass(frozen=True)
class BidCurve:
    """A bid for one market interval: points sorted by price.

    Monotone by contract: a higher price never yields less energy sold (or
    more bought), i.e. ``quantity_mw`` is non-decreasing in price. A
    ``quantity_only`` bid has exactly one point whose price is ignored.
    """

    interval_start: dt.datetime
    points: tuple[BidPoint, ...]

    def __post_init__(self) -> None:
        require_aware(self.interval_start, "interval_start")
        if not self.points:
            raise InputError("a bid curve needs at least one point")


@dataclass(frozen=True)
class DayAheadBid:
    """A portfolio's day-ahead bid: one curve per interval of the delivery day."""

    market_id: str
    portfolio_id: str
    delivery_day: dt.date
    curves: tuple[BidCurve, ...]
    created_at: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")

    @property
    def idempotency_key(self) -> str:
        """One bid per market, delivery day and portfolio: resubmission is detectable."""
        return f"{self.market_id}/{self.delivery_day.isoformat()}/{self.portfolio_id}/day_ahead"


#: Directions of a real-time bid: ``both`` for energy offers and auctions (one curve that
#: sells and buys), ``up``/``down`` for the separate bids of a regulating product.
RT_DIRECTIONS = ("both", "up", "down")


@dataclass(frozen=True)
class RealTimeAward:
    """What a real-time bid was awarded in one settlement interval.

    ``quantity_mw`` (> 0 sold, :mod:`vpp.units`) is known from the interval's
    start (the market activates or dispatches the bid in real time);
    ``price_per_mwh``, the price it is paid, only once the interval's real-time
    price is published (None before).
    """

    product_id: str
    direction: str
    interval_start: dt.datetime
    quantity_mw: float
    price_per_mwh: float | None = None

    def __post_init__(self) -> None:
        require_aware(self.interval_start, "interval_start")
        if not math.isfinite(self.quantity_mw):
            raise InputError(f"real-time award quantity must be finite, got {self.quantity_mw}")


@dataclass(frozen=True)
class RealTimeBid:
    """A portfolio's bid into one real-time product for one delivery period.

    ``points`` is a monotone price-quantity curve as in :class:`BidCurve` (quantity
    non-decreasing in price; > 0 sells/injects, < 0 buys/draws, :mod:`vpp.units`).
    ``direction`` is ``"both"`` for an energy offer or an intraday auction; a regulating
    product takes separate bids: ``"up"`` (more injection or less draw, every quantity
    >= 0, activated where the up-regulating price >= the point's price) and ``"down"``
    (less injection or more draw, every quantity <= 0, activated where the
    down-regulating price <= the point's price). Each point's quantity is the total
    offered at that price, not an increment (``vpp.market_rules.clear_rt_bid``).
    """

    market_id: str
    portfolio_id: str
    product_id: str
    period_start: dt.datetime
    points: tuple[BidPoint, ...]
    direction: str
    created_at: dt.datetime

    def __post_init__(self) -> None:
        require_aware(self.period_start, "period_start")
        require_aware(self.created_at, "created_at")
        if not self.points:
            raise InputError("a real-time bid needs at least one point")
        if self.direction not in RT_DIRECTIONS:
            raise InputError(
                f"real-time bid direction {self.direction!r}, allowed {list(RT_DIRECTIONS)}"
            )

    @property
    def curve(self) -> BidCurve:
        """The points as the curve of the delivery period (what the curve rules check)."""
        return BidCurve(self.period_start, self.points)

    @property
    def idempotency_key(self) -> str:
        """One bid per market, product, period, portfolio and direction."""
        start = self.period_start.astimezone(dt.UTC).isoformat()
        return f"{self.market_id}/{self.product_id}/{start}/{self.portfolio_id}/{self.direction}"


@dataclass(frozen=True)
class Award:
    """The exchange's result for one product: quantity cleared at a price (the market wire).

    ``quantity_mw`` [MW] holds over the product starting at ``interval_start``.
    Inside vpp an award is kW per schedule interval, :class:`vpp.awards.IntervalAward`;
    :func:`vpp.awards.portfolio_award_kw` is the one conversion.
    """

    interval_start: dt.datetime
    quantity_mw: float
    price_per_mwh: float

    def __post_init__(self) -> None:
        require_aware(self.interval_start, "interval_start")


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Setpoint:
    """A power command for one asset, valid from ``interval_start`` [kW]."""

    park_id: str
    asset_id: str
    interval_start: dt.datetime
    power_kw: float

    def __post_init__(self) -> None:
        require_aware(self.interval_start, "interval_start")
        if not math.isfinite(self.power_kw):
            raise InputError(f"setpoint for {self.park_id}/{self.asset_id} is not finite")


class Health(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Telemetry:
    """One reading from a device. ``soc`` is a fraction in [0, 1] where it applies."""

    park_id: str
    asset_id: str
    measured_at: dt.datetime
    power_kw: float | None
    soc: float | None = None
    health: Health = Health.OK
    reason: str | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_aware(self.measured_at, "measured_at")


# --------------------------------------------------------------------------- seams


@runtime_checkable
class Clock(Protocol):
    """The current time: wall clock in the daemon, replay clock in a backtest."""

    def now(self) -> dt.datetime:
        """The current tz-aware UTC time."""
        ...


@runtime_checkable
class Exchange(Protocol):
    """A market gateway: the replay exchange or an HTTP client for a real one."""

    def submit_day_ahead(self, bid: DayAheadBid) -> str:
        """Submit a bid; return the exchange's receipt id. Raises MarketRuleError."""
        ...

    def day_ahead_awards(self, market_id: str, portfolio_id: str, delivery_day: dt.date) -> (
        Sequence[Award]
    ):
        """Awards for a delivery day, once published. Raises LookAheadError before then."""
        ...


@runtime_checkable
class Device(Protocol):
    """A device behind an adapter, as dispatch sees it."""

    park_id: str
    asset_id: str

    def read(self) -> Telemetry: ...

    def write(self, setpoint: Setpoint) -> Setpoint:
        """Send a setpoint; return what was actually sent (after clamping)."""
        ...
