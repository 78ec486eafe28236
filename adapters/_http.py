"""``http``: controllers with a small JSON REST interface.

For flexible processes, heat pumps, electric boilers, electrolysers (setpoint
and telemetry) and thermal / hydrogen storage (telemetry only). The contract
(``docs/adapters.md``), relative to ``base_url``:

* ``GET /telemetry`` -> ``200`` with a JSON object::

    {"measured_at": "2025-06-02T10:00:00+00:00",  # ISO 8601 with offset
     "consumption_kw": 420.0,    # what it draws, >= 0; optional for a store
     "setpoint_kw": 450.0,       # the controller's active setpoint, or null
     "soc": 0.62,                # fraction 0..1; required for a store
     "consumed_kwh": 10234.5,    # the type's cumulative registers, each >= 0:
     "heat_kwh": 30120.0}        # meter, heat, hydrogen and storage registers

  The registers are the asset type's ``telemetry_registers``
  (``meter_registers`` + ``heat_registers`` + ``hydrogen_registers`` +
  ``storage_registers``): ``consumed_kwh`` (process, heat pump, boiler,
  electrolyser), ``heat_kwh`` (heat pump, boiler, electrolyser),
  ``hydrogen_kg`` (electrolyser), ``charged_kwh`` / ``discharged_kwh``
  (thermal storage), ``charged_kg`` / ``discharged_kg`` (hydrogen
  storage). Each is read when present (into ``Telemetry.extra``) and must
  be a finite number >= 0; a missing one is left out (controllers that
  predate this contract keep working; metering then has no register).
* ``PUT /setpoint`` with ``{"consumption_kw": number >= 0, "interval_start":
  ISO 8601}`` -> ``200`` or ``204`` (not for stores: they take no setpoint).

Controllers report what the asset *draws* (``consumption_kw >= 0``); the
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
from vpp.config.models import AssetSpec, HttpAdapter
from vpp.logging import register_secret
from vpp.types import Clock, Setpoint

PLAUSIBLE_POWER_FACTOR = 1.5
# A controller clock this far ahead of ours is wrong, not fast.
MAX_CLOCK_SKEW_S = 5.0


class HttpController(PolledAdapter):
    """An asset behind a JSON REST controller (see the module for the contract)."""

    protocol = "http"

    def __init__(
        self,
        park_id: str,
        asset: AssetSpec,
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
        if consumption is None and self.asset.max_import_kw == 0:
            consumption = 0.0  # a store draws nothing at the grid
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
        limit = PLAUSIBLE_POWER_FACTOR * self.asset.max_import_kw
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
        for name in self.asset.telemetry_registers:
            if name in payload:
                extra[name] = _counter(name, payload[name])
        soc = None
        if self.asset.has_soc:
            soc = _number("soc", payload.get("soc"))
            if not 0.0 <= soc <= 1.0:
                raise DeviceFaultError(Reason.OUT_OF_RANGE, f"soc = {soc} outside 0..1")
        return Reading(measured_at.astimezone(dt.UTC), -float(consumption), soc, extra)

    def _deliver(self, setpoint: Setpoint) -> None:
        """PUT the consumption to hold; stores never get here (``write`` refuses them)."""
        self._request(
            "PUT",
            "setpoint",
            {
                "consumption_kw": max(0.0, -setpoint.power_kw),  # vpp sign -> consumption
                "interval_start": setpoint.interval_start.isoformat(),
            },
        )


HttpProcessController = HttpController
"""The name from when the adapter served flexible processes only."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeviceFaultError(Reason.MALFORMED, f"{name} = {value!r}: must be a number")
    if not math.isfinite(value):
        raise DeviceFaultError(Reason.MALFORMED, f"{name} = {value!r}: not finite")
    return float(value)


def _counter(name: str, value: Any) -> float:
    """A cumulative register: a finite number >= 0."""
    number = _number(name, value)
    if number < 0:
        raise DeviceFaultError(Reason.OUT_OF_RANGE, f"{name} = {number}: a counter is >= 0")
    return number
