"""JSON wire format of bids, awards and prices for the exchange HTTP API.

Timestamps are ISO 8601 with offset (UTC); a naive timestamp in a payload is
rejected. Quantities keep the sign convention of :mod:`vpp.units`.

Every entry point that reads a bid from the network goes through
:func:`loads_limited` and :func:`bid_from_json`, which bound what a payload
may hold (see ``docs/exchange-api.md``): nesting depth, the length and
characters of ids, the number of products and points, finite quantities
within :data:`MAX_QUANTITY_MW` and finite prices within
:data:`MAX_ABS_PRICE_PER_MWH` (the market's own floor and cap are checked
afterwards by the market rule validator). :func:`bid_content_hash` is the
hash both sides compare to know that the bid an exchange holds is the one
that was sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from vpp.types import (
    RT_DIRECTIONS,
    Award,
    BidCurve,
    BidPoint,
    DayAheadBid,
    RealTimeAward,
    RealTimeBid,
)

MAX_ID_CHARS = 128
MAX_JSON_DEPTH = 8  # a bid is 5 deep: object > curves > curve > points > point
MAX_PRODUCTS = 400  # a 25-hour day of 5-minute products is 300
MAX_POINTS_PER_CURVE = 64
MAX_QUANTITY_MW = 1e5
MAX_ABS_PRICE_PER_MWH = 1e6
MAX_TIME_CHARS = 64
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class WireError(ValueError):
    """A payload does not have the documented shape."""


def _show(value: Any) -> str:
    """A payload value for an error message, never more than 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} chars)"


def loads_limited(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON body: UTF-8, nesting at most ``max_depth``, no NaN/Infinity, no repeated key."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"body is not UTF-8 (byte {exc.start})") from exc
    depth = 0
    for match in _TOKENS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise WireError(f"body nests deeper than {max_depth} levels")
        elif token in (b"]", b"}"):
            depth -= 1

    def constant(name: str) -> Any:
        raise WireError(f"body: {name} is not a JSON number")

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Two values for one key are ambiguous (parsers disagree which wins): refuse them.
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise WireError(f"body: key {_show(key)} appears twice in one object")
            out[key] = value
        return out

    try:
        return json.loads(text, parse_constant=constant, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise WireError(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def check_id(value: Any, field: str) -> str:
    """An id (market, portfolio): a string of 1..128 safe characters."""
    if not isinstance(value, str):
        raise WireError(f"{field}: expected a string, got {_show(value)}")
    if len(value) > MAX_ID_CHARS:
        raise WireError(f"{field}: {len(value)} characters, at most {MAX_ID_CHARS} allowed")
    if not _ID.fullmatch(value):
        raise WireError(
            f"{field} = {_show(value)}: use letters, digits and . _ : - (starting with a "
            "letter or digit)"
        )
    return value


def _time(value: Any, field: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > MAX_TIME_CHARS:
        raise WireError(f"{field}: expected an ISO 8601 string, got {_show(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"{field}: {_show(value)} is not ISO 8601") from exc
    if parsed.tzinfo is None:
        raise WireError(f"{field}: {value!r} has no UTC offset")
    return parsed.astimezone(dt.UTC)


def _number(value: Any, field: str, bound: float | None = None, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{field}: expected a number, got {_show(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise WireError(f"{field} = {_show(value)}: must be finite")
    if bound is not None and abs(number) > bound:
        raise WireError(f"{field} = {value:g}: must be within ±{bound:g}{unit}")
    return number


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise WireError(f"{field}: expected a list, got {_show(value)}")
    if not value:
        raise WireError(f"{field}: must not be empty")
    if len(value) > limit:
        raise WireError(f"{field}: {len(value)} entries, at most {limit} allowed")
    return value


def bid_to_json(bid: DayAheadBid) -> dict[str, Any]:
    return {
        "market_id": bid.market_id,
        "portfolio_id": bid.portfolio_id,
        "delivery_day": bid.delivery_day.isoformat(),
        "created_at": bid.created_at.isoformat(),
        "curves": [
            {
                "interval_start": c.interval_start.isoformat(),
                "points": [[p.price_per_mwh, p.quantity_mw] for p in c.points],
            }
            for c in bid.curves
        ],
    }


def bid_from_json(data: Any) -> DayAheadBid:
    """A bid from its JSON form; :class:`WireError` names the first bad field and value."""
    if not isinstance(data, dict):
        raise WireError("bid: expected an object")
    for name in ("market_id", "portfolio_id", "delivery_day", "created_at", "curves"):
        if name not in data:
            raise WireError(f"bid: missing field {name!r}")
    market_id = check_id(data["market_id"], "market_id")
    portfolio_id = check_id(data["portfolio_id"], "portfolio_id")
    day = data["delivery_day"]
    if not isinstance(day, str) or len(day) != 10:
        raise WireError(f"delivery_day: expected YYYY-MM-DD, got {_show(day)}")
    try:
        delivery_day = dt.date.fromisoformat(day)
    except ValueError as exc:
        raise WireError(f"delivery_day: {day!r} is not YYYY-MM-DD") from exc
    created_at = _time(data["created_at"], "created_at")
    curves = []
    for i, curve in enumerate(_list(data["curves"], "curves", MAX_PRODUCTS)):
        where = f"curves[{i}]"
        if not isinstance(curve, dict) or "interval_start" not in curve or "points" not in curve:
            raise WireError(f"{where}: expected an object with interval_start and points")
        points = []
        for j, point in enumerate(_list(curve["points"], f"{where}.points", MAX_POINTS_PER_CURVE)):
            if not isinstance(point, list) or len(point) != 2:
                raise WireError(
                    f"{where}.points[{j}]: expected [price_per_mwh, quantity_mw], got {_show(point)}"
                )
            price = _number(
                point[0], f"{where}.points[{j}][0] (price_per_mwh)", MAX_ABS_PRICE_PER_MWH, "/MWh"
            )
            quantity = _number(
                point[1], f"{where}.points[{j}][1] (quantity_mw)", MAX_QUANTITY_MW, " MW"
            )
            points.append(BidPoint(price, quantity))
        curves.append(
            BidCurve(_time(curve["interval_start"], f"{where}.interval_start"), tuple(points))
        )
    return DayAheadBid(
        market_id=market_id,
        portfolio_id=portfolio_id,
        delivery_day=delivery_day,
        curves=tuple(curves),
        created_at=created_at,
    )


def _points(value: Any, where: str) -> tuple[BidPoint, ...]:
    points = []
    for j, point in enumerate(_list(value, f"{where}", MAX_POINTS_PER_CURVE)):
        if not isinstance(point, list) or len(point) != 2:
            raise WireError(
                f"{where}[{j}]: expected [price_per_mwh, quantity_mw], got {_show(point)}"
            )
        price = _number(point[0], f"{where}[{j}][0] (price_per_mwh)", MAX_ABS_PRICE_PER_MWH, "/MWh")
        quantity = _number(point[1], f"{where}[{j}][1] (quantity_mw)", MAX_QUANTITY_MW, " MW")
        points.append(BidPoint(price, quantity))
    return tuple(points)


def rt_bid_to_json(bid: RealTimeBid) -> dict[str, Any]:
    """A real-time bid's JSON form (``POST /v1/real-time/bids``)."""
    return {
        "market_id": bid.market_id,
        "portfolio_id": bid.portfolio_id,
        "product_id": bid.product_id,
        "period_start": bid.period_start.isoformat(),
        "direction": bid.direction,
        "created_at": bid.created_at.isoformat(),
        "points": [[p.price_per_mwh, p.quantity_mw] for p in bid.points],
    }


def rt_bid_from_json(data: Any) -> RealTimeBid:
    """A real-time bid from its JSON form; :class:`WireError` names the first bad field and value.

    The product's own rules (gate, lot, tick, direction signs) are checked afterwards by
    :func:`vpp.market_rules.check_rt_submission`; here only the shape and the bounds.
    """
    if not isinstance(data, dict):
        raise WireError("real-time bid: expected an object")
    for name in ("market_id", "portfolio_id", "product_id", "period_start", "direction",
                 "created_at", "points"):
        if name not in data:
            raise WireError(f"real-time bid: missing field {name!r}")
    direction = data["direction"]
    if direction not in RT_DIRECTIONS:
        raise WireError(f"direction = {_show(direction)}: allowed {', '.join(RT_DIRECTIONS)}")
    return RealTimeBid(
        market_id=check_id(data["market_id"], "market_id"),
        portfolio_id=check_id(data["portfolio_id"], "portfolio_id"),
        product_id=check_id(data["product_id"], "product_id"),
        period_start=_time(data["period_start"], "period_start"),
        points=_points(data["points"], "points"),
        direction=direction,
        created_at=_time(data["created_at"], "created_at"),
    )


def rt_bid_content_hash(bid: RealTimeBid) -> str:
    """sha256 (hex) of a real-time bid's content: its idempotency key and points (not ``created_at``)."""
    canonical = {
        "key": bid.idempotency_key,
        "points": [[float(p.price_per_mwh), float(p.quantity_mw)] for p in bid.points],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def rt_award_to_json(award: RealTimeAward) -> dict[str, Any]:
    """One settlement interval of a real-time award; ``price_per_mwh`` null until published."""
    return {
        "interval_start": award.interval_start.isoformat(),
        "quantity_mw": award.quantity_mw,
        "price_per_mwh": award.price_per_mwh,
    }


def rt_award_from_json(data: Any, bid: RealTimeBid) -> RealTimeAward:
    """A real-time award of ``bid`` (its product and direction) from its JSON form."""
    if not isinstance(data, dict):
        raise WireError("real-time award: expected an object")
    for name in ("interval_start", "quantity_mw", "price_per_mwh"):
        if name not in data:
            raise WireError(f"real-time award: missing field {name!r}")
    price = data["price_per_mwh"]
    return RealTimeAward(
        bid.product_id,
        bid.direction,
        _time(data["interval_start"], "interval_start"),
        _number(data["quantity_mw"], "quantity_mw", MAX_QUANTITY_MW, " MW"),
        None if price is None else _number(price, "price_per_mwh", MAX_ABS_PRICE_PER_MWH, "/MWh"),
    )


def bid_content_hash(bid: DayAheadBid) -> str:
    """sha256 (hex) of a bid's economic content: market, portfolio, day, products, points.

    ``created_at`` is left out: it says when, not what. Timestamps are
    normalised to UTC and numbers to floats, so a bid and its JSON round
    trip hash the same.
    """
    canonical = {
        "market_id": bid.market_id,
        "portfolio_id": bid.portfolio_id,
        "delivery_day": bid.delivery_day.isoformat(),
        "curves": [
            [
                c.interval_start.astimezone(dt.UTC).isoformat(),
                [[float(p.price_per_mwh), float(p.quantity_mw)] for p in c.points],
            ]
            for c in bid.curves
        ],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def award_issues(
    bid: DayAheadBid, awards: Sequence[Award], tolerance_mw: float = 1e-6
) -> list[str]:
    """Why ``awards`` cannot be the result of ``bid`` (empty if they can).

    The products must be the bid's, each at most once, and each award's
    quantity must lie in its curve's quantity range (a cleared curve never
    leaves it; a non-finite quantity never lies in it).
    """
    curves = {c.interval_start.astimezone(dt.UTC): c for c in bid.curves}
    starts = [a.interval_start.astimezone(dt.UTC) for a in awards]
    seen = set(starts)
    issues = []
    if len(seen) != len(starts):
        repeated = sorted({t for t in starts if starts.count(t) > 1})
        issues.append(
            f"{len(starts) - len(seen)} repeated award(s) for one product, first "
            f"{repeated[0].isoformat()}"
        )
    extra = sorted(seen - set(curves))
    if extra:
        issues.append(f"{len(extra)} award(s) for products not in the bid, first {extra[0].isoformat()}")
    missing = sorted(set(curves) - seen)
    if awards and missing:
        issues.append(f"no award for {len(missing)} product(s) of the bid, first {missing[0].isoformat()}")
    for award in awards:
        curve = curves.get(award.interval_start.astimezone(dt.UTC))
        if curve is None:
            continue
        low = min(p.quantity_mw for p in curve.points)
        high = max(p.quantity_mw for p in curve.points)
        if not (low - tolerance_mw <= award.quantity_mw <= high + tolerance_mw):
            issues.append(
                f"award {award.interval_start.isoformat()} = {award.quantity_mw:g} MW outside "
                f"the bid's [{low:g}, {high:g}] MW"
            )
            break
    return issues


def award_to_json(award: Award) -> dict[str, Any]:
    return {
        "interval_start": award.interval_start.isoformat(),
        "quantity_mw": award.quantity_mw,
        "price_per_mwh": award.price_per_mwh,
    }


def award_from_json(data: Any) -> Award:
    if not isinstance(data, dict):
        raise WireError("award: expected an object")
    try:
        return Award(
            _time(data["interval_start"], "interval_start"),
            _number(data["quantity_mw"], "quantity_mw"),
            _number(data["price_per_mwh"], "price_per_mwh"),
        )
    except KeyError as exc:
        raise WireError(f"award: missing field {exc}") from exc


def is_loopback(host: str) -> bool:
    """Whether a listen address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
