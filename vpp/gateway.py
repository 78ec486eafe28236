"""The market gateway over HTTP: an :class:`~vpp.types.Exchange` for the daemon.

Talks to an exchange API with the JSON shapes of :mod:`vpp.wire` (the
replay server in ``market_replay.server`` speaks it). The ``httpx.Client``
is injected with an explicit timeout; transport failures and 5xx answers
are retried a bounded number of times with exponential backoff, then raise
:class:`~vpp.ExchangeError`. Rule violations raise
:class:`~vpp.MarketRuleError` (never retried) and unpublished data
:class:`~vpp.LookAheadError`.

``token`` is sent as ``Authorization: Bearer <token>`` on every request (the
daemon reads it from the env variable named in ``[daemon]
exchange_token_env``); it is never logged. 401 and 403 answers raise
:class:`~vpp.ExchangeError` at once (never retried).
:meth:`HttpExchange.day_ahead_bid` returns the bid the exchange holds, so
the daemon can compare its :func:`~vpp.wire.bid_content_hash` with its own.

Real-time bids (:meth:`HttpExchange.submit_real_time`,
:meth:`HttpExchange.real_time_awards`, :meth:`HttpExchange.real_time_bid`)
map their answers the same way; a replacement before the gate answers the
same ``bid_id``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pandas as pd
import structlog

from vpp.errors import ExchangeError, InputError, LookAheadError, MarketRuleError
from vpp.timeutil import require_aware
from vpp.types import Award, DayAheadBid, RealTimeAward, RealTimeBid
from vpp.wire import (
    WireError,
    award_from_json,
    bid_content_hash,
    bid_from_json,
    bid_to_json,
    rt_award_from_json,
    rt_bid_content_hash,
    rt_bid_from_json,
    rt_bid_to_json,
)

log = structlog.get_logger(__name__)


class HttpExchange:
    def __init__(
        self,
        client: httpx.Client,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        token: str | None = None,
    ) -> None:
        if client.timeout.read is None or client.timeout.connect is None:
            raise InputError("the httpx client needs an explicit timeout (never timeout=None)")
        self.client = client
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep

    def close(self) -> None:
        """Close the injected client's connections."""
        self.client.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = self.backoff_s
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = self.client.request(method, path, headers=self._headers, **kwargs)
            except httpx.TransportError as exc:
                last = exc
                log.warning(
                    "exchange_unreachable", path=path, attempt=attempt + 1, error=type(exc).__name__
                )
            else:
                if response.status_code < 500:
                    return response
                last = ExchangeError(f"exchange answered {response.status_code} for {path}")
                log.warning(
                    "exchange_server_error",
                    path=path,
                    attempt=attempt + 1,
                    status=response.status_code,
                )
            if attempt < self.retries:
                self._sleep(delay)
                delay *= 2
        raise ExchangeError(
            f"exchange unreachable after {self.retries + 1} attempts: {last}"
        ) from last

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ExchangeError(f"exchange sent invalid JSON ({response.status_code})") from exc
        if not isinstance(body, dict):
            raise ExchangeError("exchange sent a JSON value that is not an object")
        return body

    def _raise_for(self, response: httpx.Response) -> dict[str, Any]:
        body = self._json(response)
        if response.status_code in (409, 422):
            rule = str(body.get("rule") or "unknown")
            # The server's message is ``str(MarketRuleError)``, already ``"rule: ..."``.
            message = str(body.get("message")).removeprefix(f"{rule}: ")
            raise MarketRuleError(rule, message)
        if response.status_code == 425:
            raise LookAheadError(str(body.get("message")))
        if response.status_code in (401, 403):
            raise ExchangeError(
                f"exchange refused the token ({response.status_code}): {body.get('message')}; "
                "check the env variable named in [daemon] exchange_token_env"
            )
        if response.status_code >= 400:
            raise ExchangeError(
                f"exchange refused the request ({response.status_code}): {body.get('message')}"
            )
        return body

    def now(self) -> dt.datetime:
        """The exchange's clock (the simulated time in replay mode)."""
        body = self._raise_for(self._request("GET", "/v1/time"))
        try:
            now = dt.datetime.fromisoformat(body["now"])
            require_aware(now, "now")
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeError(f"malformed time from exchange: now = {body.get('now')!r:.60}") from exc
        return now

    def submit_day_ahead(self, bid: DayAheadBid) -> str:
        body = self._raise_for(self._request("POST", "/v1/day-ahead/bids", json=bid_to_json(bid)))
        if not isinstance(body.get("bid_id"), str | int) or isinstance(body["bid_id"], bool):
            raise ExchangeError(
                f"malformed answer from exchange to a bid: bid_id = {body.get('bid_id')!r:.60}"
            )
        return str(body["bid_id"])

    def day_ahead_awards(
        self, market_id: str, portfolio_id: str, delivery_day: dt.date
    ) -> list[Award]:
        params = {"portfolio_id": portfolio_id, "delivery_day": delivery_day.isoformat()}
        body = self._raise_for(self._request("GET", "/v1/day-ahead/awards", params=params))
        try:
            return [award_from_json(a) for a in body["awards"]]
        except (KeyError, TypeError, WireError) as exc:
            raise ExchangeError(f"malformed awards from exchange: {exc}") from exc

    def day_ahead_bid(
        self, market_id: str, portfolio_id: str, delivery_day: dt.date
    ) -> DayAheadBid | None:
        """The bid the exchange holds for the portfolio's day, or None if it holds none."""
        params = {"portfolio_id": portfolio_id, "delivery_day": delivery_day.isoformat()}
        response = self._request("GET", "/v1/day-ahead/bids", params=params)
        if response.status_code == 404:
            return None
        body = self._raise_for(response)
        try:
            bid = bid_from_json(body["bid"])
        except (KeyError, WireError) as exc:
            raise ExchangeError(f"malformed bid from exchange: {exc}") from exc
        if bid.market_id != market_id or bid.portfolio_id != portfolio_id:
            raise ExchangeError(
                f"exchange answered a bid for {bid.market_id}/{bid.portfolio_id}, "
                f"asked for {market_id}/{portfolio_id}"
            )
        if body.get("content_hash") not in (None, bid_content_hash(bid)):
            raise ExchangeError("exchange sent a bid whose content_hash does not match its content")
        return bid

    @staticmethod
    def _bid_id(body: dict[str, Any]) -> str:
        if not isinstance(body.get("bid_id"), str | int) or isinstance(body["bid_id"], bool):
            raise ExchangeError(
                f"malformed answer from exchange to a bid: bid_id = {body.get('bid_id')!r:.60}"
            )
        return str(body["bid_id"])

    def submit_real_time(self, bid: RealTimeBid) -> str:
        """Send a real-time bid (or its replacement before the gate); the exchange's bid id."""
        body = self._raise_for(
            self._request("POST", "/v1/real-time/bids", json=rt_bid_to_json(bid))
        )
        return self._bid_id(body)

    def real_time_bid(self, idempotency_key: str) -> RealTimeBid | None:
        """The real-time bid the exchange holds under ``idempotency_key``, or None."""
        response = self._request("GET", "/v1/real-time/bids", params={"key": idempotency_key})
        if response.status_code == 404:
            return None
        body = self._raise_for(response)
        try:
            bid = rt_bid_from_json(body["bid"])
        except (KeyError, WireError) as exc:
            raise ExchangeError(f"malformed real-time bid from exchange: {exc}") from exc
        if bid.idempotency_key != idempotency_key:
            raise ExchangeError(
                f"exchange answered the real-time bid {bid.idempotency_key}, asked for {idempotency_key}"
            )
        if body.get("content_hash") not in (None, rt_bid_content_hash(bid)):
            raise ExchangeError("exchange sent a bid whose content_hash does not match its content")
        return bid

    def real_time_awards(self, bid: RealTimeBid) -> list[RealTimeAward]:
        """What ``bid`` is awarded per settlement interval so far (price None until published).

        Before the period starts: :class:`~vpp.LookAheadError` (425). An exchange holding
        no such bid (404) awards nothing, like the replay exchange.
        """
        response = self._request(
            "GET", "/v1/real-time/awards", params={"key": bid.idempotency_key}
        )
        if response.status_code == 404:
            return []
        body = self._raise_for(response)
        try:
            awards = body["awards"]
            if not isinstance(awards, list):
                raise WireError(f"awards: expected a list, got {type(awards).__name__}")
            return [rt_award_from_json(a, bid) for a in awards]
        except (KeyError, TypeError, WireError) as exc:
            raise ExchangeError(f"malformed real-time awards from exchange: {exc}") from exc

    def health(self) -> dict[str, Any]:
        """The exchange's ``/v1/health`` answer (status, clock, speed in replay mode)."""
        return self._raise_for(self._request("GET", "/v1/health"))

    def history(
        self, columns: Sequence[str] | None = None, start: dt.datetime | None = None
    ) -> pd.DataFrame:
        """Everything published by now (the operator's ``MarketData``); unpublished is NaN.

        ``start`` (tz-aware) drops rows before it.
        """
        params: dict[str, str] = {}
        if columns:
            params["columns"] = ",".join(columns)
        if start is not None:
            require_aware(start, "start")
            params["start"] = start.isoformat()
        body = self._raise_for(self._request("GET", "/v1/history", params=params))
        try:
            index = pd.DatetimeIndex(
                pd.to_datetime(body["index"], utc=True, format="ISO8601"), name="interval_start"
            ).as_unit("ns")
            frame = pd.DataFrame(body["values"], index=index, columns=list(body["columns"]))
            return frame.astype(float)
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeError(f"malformed history from exchange: {exc}") from exc

    def get(self, column: str, start: dt.datetime, end: dt.datetime) -> pd.Series:
        params = {"column": column, "start": start.isoformat(), "end": end.isoformat()}
        body = self._raise_for(self._request("GET", "/v1/prices", params=params))
        try:
            values = body["values"]
            index = pd.DatetimeIndex([v[0] for v in values], name="interval_start").tz_convert(
                "UTC"
            )
            return pd.Series([float(v[1]) for v in values], index=index, name=column)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ExchangeError(f"malformed prices from exchange: {exc}") from exc
