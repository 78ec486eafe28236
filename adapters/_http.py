"""``http``: process controllers with a small JSON REST interface.

The contract (``docs/adapters.md``), relative to ``base_url``:

* ``GET /telemetry`` -> ``200 {"measured_at": ISO 8601 with offset,
  "consumption_kw": number >= 0, "setpoint_kw": number or null}``
* ``PUT /setpoint`` with ``{"consumption_kw": number >= 0, "interval_start":
  ISO 8601}`` -> ``200`` or ``204``

Controllers report what the process *draws* (``consumption_kw >= 0``); the
adapter turns it into the vpp sign (``power_kw = -consumption_kw``) here
and nowhere else. Every request carries ``Authorization: Bearer <token>``
when ``token_env`` names an environment variable; the token is read at
connect time and never logged.

Requests go through an injected ``httpx.Client`` with an explicit
``httpx.Timeout`` on every call. Transport errors, 429 and 5xx are retried
``retries`` times with exponential backoff (``backoff_s``, doubled each
time); 401/403 and other 4xx are not retried.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapters.base import DeviceFaultError, PolledAdapter, Reading, Reason, ReconnectPolicy
from vpp.config.models import FlexibleProcessSpec, HttpAdapter
from vpp.logging import register_secret
from vpp.types import Clock, Setpoint

PLAUSIBLE_POWER_FACTOR = 1.5
# A controller clock this far ahead of ours is wrong, not fast.
MAX_CLOCK_SKEW_S = 5.0


class HttpProcessController(PolledAdapter):
    """A flexible process behind a JSON REST controller."""

    protocol = "http"

    def __init__(
        self,
        park_id: str,
        asset: FlexibleProcessSpec,
        spec: HttpAdapter,
        *,
        clock: Clock,
        reconnect: ReconnectPolicy,
        client: httpx.Client | None = None,
        poll_interval_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            park_id,
            asset,
            clock=clock,
            poll_interval_s=poll_interval_s,
            stale_after_s=spec.stale_after_s,
            reconnect=reconnect,
            monotonic=monotonic,
        )
        self.process = asset
        self.spec = spec
        self.timeout = httpx.Timeout(spec.timeout_s)
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self.timeout)
        self._headers: dict[str, str] = {}

    def close(self) -> None:
        super().close()
        if self._owns_client:
            self._client.close()

    def _url(self, path: str) -> str:
        return f"{self.spec.base_url.rstrip('/')}/{path}"

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request with bounded retries; raise DeviceFaultError naming the last failure."""
        fault = DeviceFaultError(Reason.CONNECTION_LOST, "no attempt made")
        for attempt in range(self.spec.retries + 1):
            if attempt and not self._sleep(self.spec.backoff_s * 2 ** (attempt - 1)):
                break  # closed while waiting
            try:
                response = self._client.request(
                    method, self._url(path), json=body, headers=self._headers, timeout=self.timeout
                )
            except httpx.TimeoutException as exc:
                fault = DeviceFaultError(Reason.TIMEOUT, f"{method} /{path}: {type(exc).__name__}")
                continue
            except httpx.TransportError as exc:
                fault = DeviceFaultError(
                    Reason.CONNECTION_LOST, f"{method} /{path}: {type(exc).__name__}: {exc}"
                )
                continue
            status = response.status_code
            if status in (401, 403):
                raise DeviceFaultError(
                    Reason.UNAUTHORIZED, f"{method} /{path}: HTTP {status} (check the token)"
                )
            if status == 429 or status >= 500:
                fault = DeviceFaultError(Reason.DEVICE_ERROR, f"{method} /{path}: HTTP {status}")
                continue
            if status >= 400:
                raise DeviceFaultError(Reason.DEVICE_ERROR, f"{method} /{path}: HTTP {status}")
            return response
        raise fault

    # ------------------------------------------------------------------ session hooks

    def _open(self) -> None:
        self._headers = {"Accept": "application/json"}
        if self.spec.token_env is not None:
            token = os.environ.get(self.spec.token_env)
            if not token:
                raise DeviceFaultError(
                    Reason.CREDENTIALS_MISSING,
                    f"environment variable {self.spec.token_env} (token_env) is not set",
                )
            register_secret(token)  # a controller echoing it back is masked everywhere
            self._headers["Authorization"] = f"Bearer {token}"

    def _close_transport(self) -> None:
        self._headers = {}

    def _poll(self) -> Reading:
        response = self._request("GET", "telemetry")
        try:
            payload = response.json()
        except ValueError:
            raise DeviceFaultError(Reason.MALFORMED, "GET /telemetry: body is not JSON") from None
        return self._decode(payload)

    def _decode(self, payload: Any) -> Reading:
        if not isinstance(payload, dict):
            raise DeviceFaultError(Reason.MALFORMED, "GET /telemetry: body is not a JSON object")
        consumption = payload.get("consumption_kw")
        stamp = payload.get("measured_at")
        if isinstance(consumption, bool) or not isinstance(consumption, int | float):
            raise DeviceFaultError(
                Reason.MALFORMED, f"consumption_kw = {consumption!r}: must be a number"
            )
        if not isinstance(stamp, str):
            raise DeviceFaultError(Reason.MALFORMED, f"measured_at = {stamp!r}: must be a string")
        try:
            measured_at = dt.datetime.fromisoformat(stamp)
        except ValueError:
            raise DeviceFaultError(
                Reason.MALFORMED, f"measured_at = {stamp!r}: not ISO 8601"
            ) from None
        if measured_at.tzinfo is None or measured_at.utcoffset() is None:
            raise DeviceFaultError(Reason.MALFORMED, f"measured_at = {stamp!r}: needs a UTC offset")
        limit = PLAUSIBLE_POWER_FACTOR * self.process.max_power_kw
        if not math.isfinite(consumption) or not 0 <= consumption <= limit:
            raise DeviceFaultError(
                Reason.OUT_OF_RANGE, f"consumption_kw = {consumption} outside 0..{limit:g}"
            )
        now = self.clock.now()
        age_s = (now - measured_at).total_seconds()
        if age_s > self.stale_after_s:
            raise DeviceFaultError(
                Reason.STALE,
                f"measured_at {stamp} is {age_s:.1f} s old (stale_after_s = {self.stale_after_s})",
            )
        if age_s < -MAX_CLOCK_SKEW_S:
            raise DeviceFaultError(
                Reason.OUT_OF_RANGE, f"measured_at {stamp} is {-age_s:.1f} s in the future"
            )
        extra = {}
        setpoint = payload.get("setpoint_kw")
        if isinstance(setpoint, int | float) and not isinstance(setpoint, bool):
            extra["controller_setpoint_kw"] = float(setpoint)
        return Reading(measured_at.astimezone(dt.UTC), -float(consumption), None, extra)

    def _deliver(self, setpoint: Setpoint) -> None:
        self._request(
            "PUT",
            "setpoint",
            {
                "consumption_kw": max(0.0, -setpoint.power_kw),  # vpp sign -> consumption
                "interval_start": setpoint.interval_start.isoformat(),
            },
        )
