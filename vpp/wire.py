"""JSON wire format of bids, awards and prices for the exchange HTTP API.

Timestamps are ISO 8601 with offset (UTC); a naive timestamp in a payload is
rejected. Quantities keep the sign convention of :mod:`vpp.units`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vpp.types import Award, BidCurve, BidPoint, DayAheadBid


class WireError(ValueError):
    """A payload does not have the documented shape."""


def _time(value: Any, field: str) -> dt.datetime:
    if not isinstance(value, str):
        raise WireError(f"{field}: expected an ISO 8601 string, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"{field}: {value!r} is not ISO 8601") from exc
    if parsed.tzinfo is None:
        raise WireError(f"{field}: {value!r} has no UTC offset")
    return parsed.astimezone(dt.UTC)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{field}: expected a number, got {value!r}")
    return float(value)


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
    if not isinstance(data, dict):
        raise WireError("bid: expected an object")
    try:
        curves = []
        for i, curve in enumerate(data["curves"]):
            points = tuple(
                BidPoint(
                    _number(p[0], f"curves[{i}].points[{j}][0]"),
                    _number(p[1], f"curves[{i}].points[{j}][1]"),
                )
                for j, p in enumerate(curve["points"])
            )
            curves.append(
                BidCurve(_time(curve["interval_start"], f"curves[{i}].interval_start"), points)
            )
        return DayAheadBid(
            market_id=str(data["market_id"]),
            portfolio_id=str(data["portfolio_id"]),
            delivery_day=dt.date.fromisoformat(data["delivery_day"]),
            curves=tuple(curves),
            created_at=_time(data["created_at"], "created_at"),
        )
    except (KeyError, TypeError, IndexError) as exc:
        raise WireError(f"bid: missing or malformed field ({exc})") from exc
    except ValueError as exc:
        raise WireError(f"bid: {exc}") from exc


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
