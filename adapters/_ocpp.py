"""``ocpp``: an EV charging hub whose charge points speak OCPP 1.6J; vpp is the central system.

The central system is a ``websockets`` server on an asyncio loop in its own
thread (:class:`adapters._loop.LoopThread`), with the ``ocpp`` package's
``ChargePoint`` handling each connection. It

* accepts ``BootNotification``, ``Heartbeat``, ``StatusNotification``,
  ``Authorize``, ``StartTransaction``, ``StopTransaction`` and
  ``MeterValues``;
* tracks each transaction as a session: meter start/stop, the latest
  ``Energy.Active.Import.Register`` and ``Power.Active.Import``;
* caps the hub with ``SetChargingProfile`` (``ChargePointMaxProfile`` on
  connector 0, in W): the hub cap is split evenly over the connected charge
  points, at most ``charger_power_kw`` each, and re-sent when one connects;
* enforces HTTP Basic auth (OCPP security profile 1) when
  ``username_env``/``password_env`` are set: the password must match, and
  the user name must match ``username_env``'s value, or the charge point id
  when only ``password_env`` is given (the OCPP 1.6 security whitepaper's
  rule). Credentials are read from the environment at connect time and
  never logged. Unknown charge point ids get HTTP 404.

Sign: OCPP reports power *imported* by the car (>= 0); the hub's
``power_kw`` is its negative (:mod:`vpp.units`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import http
import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import websockets
from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, unpack, validate_payload
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargingProfileStatus,
    RegistrationStatus,
)
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.headers import parse_authorization_basic
from websockets.http11 import Request, Response

from adapters._loop import LoopThread
from adapters.base import Adapter, DeviceFaultError, Reading, Reason, ReconnectPolicy
from vpp.config.models import EvChargingSpec, OcppAdapter
from vpp.errors import InputError
from vpp.logging import register_secret
from vpp.types import Clock, Health, Setpoint, Telemetry

SUBPROTOCOL = "ocpp1.6"
HEARTBEAT_INTERVAL_S = 60
PLAUSIBLE_POWER_FACTOR = 1.5
_PROFILE_ID = 1
# Faults from a command the charge point failed; a later accepted command clears them.
_COMMAND_FAULTS = frozenset(
    {Reason.TIMEOUT, Reason.DEVICE_ERROR}
)  # one ChargePointMaxProfile per charge point, replaced on every cap


@dataclass
class Session:
    """One OCPP transaction. Energies [kWh] from the meter register, power [kW] imported."""

    transaction_id: int
    charge_point_id: str
    connector_id: int
    started_at: dt.datetime
    meter_start_kwh: float
    meter_kwh: float
    power_kw: float = 0.0
    updated_at: dt.datetime | None = None  # when the latest meter value arrived (our clock)
    stopped_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    @property
    def energy_kwh(self) -> float:
        return self.meter_kwh - self.meter_start_kwh


@dataclass
class ChargePointState:
    id: str
    connected: bool = False
    last_seen: dt.datetime | None = None
    vendor: str | None = None
    model: str | None = None
    connectors: dict[int, str] = field(default_factory=dict)
    fault: tuple[Reason, str] | None = None
    limit_kw: float | None = None
    handler: _CentralSystemSide | None = None


def _energy_kwh(value: float, unit: str | None) -> float:
    return value if unit == "kWh" else value / 1000.0


def _power_kw(value: float, unit: str | None) -> float:
    return value if unit == "kW" else value / 1000.0


class _CentralSystemSide(OcppChargePoint):
    """The central system's end of one charge point's connection."""

    def __init__(self, cp_id: str, connection: ServerConnection, hub: OcppHub) -> None:
        super().__init__(cp_id, connection, response_timeout=hub.response_timeout_s)
        self.hub = hub
        self.connection = connection  # our own handle: the ocpp package keeps its copy private

    async def route_message(self, raw_msg: str) -> None:
        """Record malformed frames as a fault, then let the ocpp package answer them."""
        self.hub._seen(self.id)
        try:
            msg = unpack(raw_msg)
            if msg.message_type_id == MessageType.Call:
                await validate_payload(msg, self._ocpp_version)
        except OCPPError as exc:
            self.hub._fault(self.id, Reason.MALFORMED, f"{type(exc).__name__}: {exc.description}")
        await super().route_message(raw_msg)

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **_: Any
    ) -> call_result.BootNotification:
        self.hub._booted(self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(
            current_time=self.hub._now_iso(),
            interval=HEARTBEAT_INTERVAL_S,
            status=RegistrationStatus.accepted,
        )

    @after(Action.boot_notification)
    async def after_boot_notification(self, **_: Any) -> None:
        await self.hub._redistribute()

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self.hub._now_iso())

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **_: Any
    ) -> call_result.StatusNotification:
        self.hub._status(self.id, connector_id, status, error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_: Any
    ) -> call_result.StartTransaction:
        transaction_id = self.hub._start(self.id, connector_id, meter_start)
        return call_result.StartTransaction(
            transaction_id=transaction_id,
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **_: Any
    ) -> call_result.StopTransaction:
        self.hub._stop(self.id, transaction_id, meter_stop)
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
    ) -> call_result.MeterValues:
        self.hub._meter(self.id, transaction_id, meter_value)
        return call_result.MeterValues()


class OcppHub(Adapter):
    """An EV charging hub managed as an OCPP 1.6J central system."""

    protocol = "ocpp"

    def __init__(
        self,
        park_id: str,
        asset: EvChargingSpec,
        spec: OcppAdapter,
        *,
        clock: Clock,
        reconnect: ReconnectPolicy,
        response_timeout_s: float = 10.0,
        listen_port: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(park_id, asset, clock=clock)
        if spec.version != "1.6":
            raise DeviceFaultError(
                Reason.DEVICE_ERROR,
                f'OCPP {spec.version} is not supported yet; use version = "1.6"',
            )
        self.hub = asset
        self.spec = spec
        self.reconnect = reconnect
        self.response_timeout_s = response_timeout_s
        self.port = spec.listen_port if listen_port is None else listen_port
        self._environ = os.environ if environ is None else environ
        self._credentials: tuple[str | None, str] | None = None
        self.charge_points = {cp: ChargePointState(cp) for cp in spec.charge_point_ids}
        self.sessions: dict[int, Session] = {}
        self._next_transaction = 1
        self._cap_kw: float | None = None
        self._loop: LoopThread | None = None
        self._server: Server | None = None
        self._listen_fault: tuple[Reason, str] | None = (Reason.NOT_CONNECTED, "not started")
        self._retry: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ contract

    def connect(self) -> None:
        if self._loop is not None:
            return
        try:
            self._credentials = self._read_credentials()
        except DeviceFaultError as fault:
            self._listen_fault = (fault.reason, fault.detail)
            self._evaluate()
            return
        self._loop = LoopThread(f"ocpp-{self.park_id}-{self.asset_id}")
        self._loop.run(self._listen(), timeout_s=10)
        self._evaluate()

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            try:
                loop.run(self._shutdown(), timeout_s=10)
            except TimeoutError:
                self.log.warning("ocpp_shutdown_timeout")
            loop.stop()
        self._listen_fault = (Reason.NOT_CONNECTED, "closed")
        self._mark_unavailable(Reason.NOT_CONNECTED, "closed")

    def read(self) -> Telemetry:
        self._evaluate()
        with self._state_lock:
            active = [s for s in self.sessions.values() if s.active]
            connected = sum(1 for cp in self.charge_points.values() if cp.connected)
            delivered = sum(s.energy_kwh for s in self.sessions.values())
            power_kw = -sum(s.power_kw for s in active)
        reading = Reading(
            self.clock.now(),
            power_kw,
            None,
            {
                "connected_charge_points": float(connected),
                "active_sessions": float(len(active)),
                "delivered_kwh": delivered,
                "cap_kw": math.nan if self._cap_kw is None else self._cap_kw,
            },
        )
        telemetry = self._telemetry(reading)
        if telemetry.health is Health.UNAVAILABLE:
            return Telemetry(
                self.park_id,
                self.asset_id,
                telemetry.measured_at,
                None,
                health=Health.UNAVAILABLE,
                reason=telemetry.reason,
                extra=telemetry.extra,
            )
        return telemetry

    def _send(self, setpoint: Setpoint) -> None:
        if self._loop is None:
            raise DeviceFaultError(Reason.NOT_CONNECTED, "central system not started")
        self._cap_kw = -setpoint.power_kw
        try:
            failures = self._loop.run(self._redistribute(), timeout_s=self.response_timeout_s + 5)
        except TimeoutError:
            raise DeviceFaultError(Reason.TIMEOUT, "SetChargingProfile did not finish") from None
        if failures is None:
            raise DeviceFaultError(Reason.NOT_CONNECTED, "no charge point connected")
        if failures:
            reason, detail = failures[0]
            raise DeviceFaultError(reason, detail)

    # ------------------------------------------------------------------ credentials

    def _read_credentials(self) -> tuple[str | None, str] | None:
        if self.spec.password_env is None:
            if self.spec.username_env is not None:
                raise DeviceFaultError(
                    Reason.CREDENTIALS_MISSING, "username_env is set but password_env is not"
                )
            return None
        names = [self.spec.password_env] + (
            [self.spec.username_env] if self.spec.username_env else []
        )
        missing = [n for n in names if not self._environ.get(n)]
        if missing:
            raise DeviceFaultError(
                Reason.CREDENTIALS_MISSING,
                f"environment variable(s) {', '.join(missing)} not set; refusing to run the "
                "central system without authentication",
            )
        user = self._environ[self.spec.username_env] if self.spec.username_env else None
        password = self._environ[self.spec.password_env]
        register_secret(password)  # masked in every log line, whatever a charge point echoes
        return user, password

    # ------------------------------------------------------------------ server (loop thread)

    async def _listen(self) -> None:
        if not await self._bind():
            self._retry = asyncio.ensure_future(self._retry_listen())

    async def _bind(self) -> bool:
        try:
            self._server = await serve(
                self._handle,
                self.spec.listen_host,
                self.port,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                process_request=self._process_request,
            )
        except OSError as exc:
            self._listen_fault = (
                Reason.CONNECTION_LOST,
                f"cannot listen on {self.spec.listen_host}:{self.port}: {exc.strerror}",
            )
            return False
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        self._listen_fault = None
        self.log.info("ocpp_listening", host=self.spec.listen_host, port=self.port)
        return True

    async def _retry_listen(self) -> None:
        failures = 0
        while True:
            failures += 1
            self._evaluate()
            delay = self.reconnect.delay_s(failures)
            self.log.info("reconnect_scheduled", in_s=round(delay, 3), failures=failures)
            await asyncio.sleep(delay)
            if await self._bind():
                break
        self._evaluate()

    async def _shutdown(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @staticmethod
    def _charge_point_id(path: str) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1])

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        cp_id = self._charge_point_id(request.path)
        if cp_id not in self.charge_points:
            self.log.warning("ocpp_rejected", charge_point=cp_id, why="unknown charge point id")
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown charge point\n")
        if self._credentials is None:
            return None
        expected_user, expected_password = self._credentials
        try:
            user, password = parse_authorization_basic(request.headers["Authorization"])
        except (KeyError, websockets.InvalidHeader):
            return self._unauthorized(connection, cp_id, "missing or malformed credentials")
        user_ok = hmac.compare_digest(user.encode(), (expected_user or cp_id).encode())
        password_ok = hmac.compare_digest(password.encode(), expected_password.encode())
        if not (user_ok and password_ok):
            return self._unauthorized(connection, cp_id, "wrong user name or password")
        return None

    def _unauthorized(self, connection: ServerConnection, cp_id: str, why: str) -> Response:
        self.log.warning("ocpp_rejected", charge_point=cp_id, why=why)
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "authentication required\n")
        response.headers = Headers(response.headers)
        response.headers["WWW-Authenticate"] = 'Basic realm="vpp", charset="UTF-8"'
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        cp_id = self._charge_point_id(connection.request.path if connection.request else "/")
        if connection.subprotocol != SUBPROTOCOL:
            self.log.warning("ocpp_rejected", charge_point=cp_id, why="no ocpp1.6 subprotocol")
            await connection.close(1002, "ocpp1.6 subprotocol required")
            return
        side = _CentralSystemSide(cp_id, connection, self)
        state = self.charge_points[cp_id]
        previous = state.handler
        with self._state_lock:
            state.handler, state.connected, state.fault = side, True, None
            state.last_seen = self.clock.now()
        if previous is not None:
            await previous.connection.close(1000, "replaced by a new connection")
        self.log.info("charge_point_connected", charge_point=cp_id)
        self._evaluate()
        try:
            await side.start()
        except websockets.ConnectionClosed:
            pass
        finally:
            with self._state_lock:
                if state.handler is side:
                    state.handler, state.connected, state.limit_kw = None, False, None
            self.log.info("charge_point_disconnected", charge_point=cp_id)
            self._evaluate()

    async def _set_limit(self, cp_id: str, side: _CentralSystemSide, limit_kw: float) -> None:
        profile = {
            "chargingProfileId": _PROFILE_ID,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargePointMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "W",
                "startSchedule": self._now_iso(),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(limit_kw * 1000, 1)}],
            },
        }
        response = await side.call(
            call.SetChargingProfile(connector_id=0, cs_charging_profiles=profile), suppress=False
        )
        if response.status != ChargingProfileStatus.accepted:
            raise DeviceFaultError(Reason.DEVICE_ERROR, f"SetChargingProfile {response.status}")

    async def _redistribute(self) -> list[tuple[Reason, str]] | None:
        """Send each connected charge point its share of the cap; None if none is connected."""
        if self._cap_kw is None:
            return []
        with self._state_lock:
            targets = [(cp.id, cp.handler) for cp in self.charge_points.values() if cp.handler]
        if not targets:
            return None
        share_kw = min(self.hub.charger_power_kw, max(self._cap_kw, 0.0) / len(targets))
        results = await asyncio.gather(
            *(self._set_limit(cp_id, side, share_kw) for cp_id, side in targets if side),
            return_exceptions=True,
        )
        failures: list[tuple[Reason, str]] = []
        for (cp_id, _side), result in zip(targets, results, strict=True):
            if result is None:
                with self._state_lock:
                    state = self.charge_points[cp_id]
                    state.limit_kw = share_kw
                    if state.fault is not None and state.fault[0] in _COMMAND_FAULTS:
                        state.fault = None  # it answers commands again
                continue
            if isinstance(result, DeviceFaultError):
                failure = (result.reason, result.detail)
            elif isinstance(result, TimeoutError):
                failure = (Reason.TIMEOUT, "no SetChargingProfile answer in time")
            elif isinstance(result, websockets.ConnectionClosed):
                failure = (Reason.CONNECTION_LOST, "connection closed")
            elif isinstance(result, OCPPError):
                failure = (Reason.DEVICE_ERROR, f"CallError {type(result).__name__}")
            else:
                raise result
            self._fault(cp_id, *failure)
            failures.append((failure[0], f"{cp_id}: {failure[1]}"))
        self.log.info("ocpp_cap_sent", cap_kw=self._cap_kw, share_kw=share_kw, to=len(targets))
        self._evaluate()
        return failures

    # ------------------------------------------------------------------ events (loop thread)

    def _now_iso(self) -> str:
        return self.clock.now().astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    def _seen(self, cp_id: str) -> None:
        with self._state_lock:
            self.charge_points[cp_id].last_seen = self.clock.now()

    def _fault(self, cp_id: str, reason: Reason, detail: str) -> None:
        with self._state_lock:
            self.charge_points[cp_id].fault = (reason, f"{cp_id}: {detail}")
        self._evaluate()

    def _clear_fault(self, cp_id: str) -> None:
        with self._state_lock:
            self.charge_points[cp_id].fault = None

    def _booted(self, cp_id: str, vendor: str, model: str) -> None:
        with self._state_lock:
            state = self.charge_points[cp_id]
            state.vendor, state.model = vendor, model
        self.log.info("charge_point_booted", charge_point=cp_id, vendor=vendor, model=model)

    def _status(self, cp_id: str, connector_id: int, status: str, error_code: str) -> None:
        ended = []
        with self._state_lock:
            self.charge_points[cp_id].connectors[connector_id] = status
            if status == "Available":  # the car is gone: a transaction left open is over
                for session in self.sessions.values():
                    if (session.charge_point_id, session.connector_id) == (
                        cp_id,
                        connector_id,
                    ) and (session.active):
                        session.stopped_at, session.power_kw = self.clock.now(), 0.0
                        ended.append(session.transaction_id)
        for transaction_id in ended:
            self.log.warning(
                "ev_session_closed_by_status", charge_point=cp_id, transaction=transaction_id
            )
        if error_code != "NoError":
            self.log.warning(
                "charge_point_error", charge_point=cp_id, connector=connector_id, error=error_code
            )

    def _start(self, cp_id: str, connector_id: int, meter_start_wh: int) -> int:
        now = self.clock.now()
        with self._state_lock:
            transaction_id = self._next_transaction
            self._next_transaction += 1
            start = meter_start_wh / 1000.0
            self.sessions[transaction_id] = Session(
                transaction_id, cp_id, connector_id, now, start, start, updated_at=now
            )
        self.log.info("ev_session_started", charge_point=cp_id, transaction=transaction_id)
        return transaction_id

    def _stop(self, cp_id: str, transaction_id: int, meter_stop_wh: int) -> None:
        with self._state_lock:
            session = self.sessions.get(transaction_id)
            if session is None or session.charge_point_id != cp_id:
                unknown = True
            else:
                unknown = False
                session.meter_kwh = meter_stop_wh / 1000.0
                session.power_kw = 0.0
                session.stopped_at = self.clock.now()
        if unknown:
            self.log.warning("ev_session_unknown", charge_point=cp_id, transaction=transaction_id)
            return
        self.log.info(
            "ev_session_stopped",
            charge_point=cp_id,
            transaction=transaction_id,
            energy_kwh=round(session.energy_kwh, 3),  # type: ignore[union-attr]
        )

    def _meter(
        self, cp_id: str, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None:
        """Take the latest energy register and active power import of a transaction."""
        energy: float | None = None
        power: float | None = None
        try:
            for sample in meter_value:
                for value in sample.get("sampled_value", []):
                    measurand = value.get("measurand", "Energy.Active.Import.Register")
                    number = float(value["value"])
                    if not math.isfinite(number):
                        raise InputError(f"{measurand} = {value['value']!r}")
                    if measurand == "Energy.Active.Import.Register":
                        energy = _energy_kwh(number, value.get("unit"))
                    elif measurand == "Power.Active.Import":
                        power = _power_kw(number, value.get("unit"))
        except (KeyError, TypeError, ValueError) as exc:
            self._fault(cp_id, Reason.MALFORMED, f"MeterValues not numeric: {exc}")
            return
        limit = PLAUSIBLE_POWER_FACTOR * self.hub.charger_power_kw
        if power is not None and not 0 <= power <= limit:
            self._fault(
                cp_id, Reason.OUT_OF_RANGE, f"Power.Active.Import {power:g} kW, not 0..{limit:g}"
            )
            return
        now = self.clock.now()
        with self._state_lock:
            session = self.sessions.get(transaction_id) if transaction_id is not None else None
            if session is None or not session.active or session.charge_point_id != cp_id:
                return  # outside a tracked transaction (e.g. the main meter): nothing to update
            backwards = energy is not None and energy < session.meter_kwh - 1e-9
            if not backwards:
                if power is None and energy is not None and session.updated_at is not None:
                    hours = (now - session.updated_at).total_seconds() / 3600
                    power = (energy - session.meter_kwh) / hours if hours > 0 else None
                if energy is not None:
                    session.meter_kwh = energy
                if power is not None:
                    session.power_kw = power
                session.updated_at = now
        if backwards:
            self._fault(cp_id, Reason.OUT_OF_RANGE, "energy register went backwards")
            return
        self._clear_fault(cp_id)
        self._evaluate()

    # ------------------------------------------------------------------ health

    def _evaluate(self) -> None:
        """Recompute the hub's health from the listener, charge points and sessions."""
        now = self.clock.now()
        problem: tuple[Reason, str] | None = self._listen_fault
        with self._state_lock:
            cps = list(self.charge_points.values())
            active = [s for s in self.sessions.values() if s.active]
            problems: list[tuple[Reason, str]] = [] if problem is None else [problem]
            for session in active:
                cp = self.charge_points[session.charge_point_id]
                if not cp.connected:
                    problems.append(
                        (
                            Reason.CONNECTION_LOST,
                            f"{cp.id}: disconnected during transaction {session.transaction_id}",
                        )
                    )
            if not any(cp.connected for cp in cps):
                problems.append((Reason.NOT_CONNECTED, "no charge point connected"))
            for cp in cps:
                if cp.connected and cp.fault is not None:
                    problems.append(cp.fault)
                elif cp.connected and cp.last_seen is not None:
                    silent_s = (now - cp.last_seen).total_seconds()
                    if silent_s > self.spec.stale_after_s:
                        problems.append((Reason.STALE, f"{cp.id}: silent for {silent_s:.0f} s"))
            for session in active:
                if session.updated_at is not None:
                    age_s = (now - session.updated_at).total_seconds()
                    if age_s > self.spec.stale_after_s:
                        problems.append(
                            (
                                Reason.STALE,
                                f"{session.charge_point_id}: no meter values for {age_s:.0f} s "
                                f"(stale_after_s = {self.spec.stale_after_s})",
                            )
                        )
        problem = problems[0] if problems else None
        if problem is None:
            self._mark_available()
        else:
            self._mark_unavailable(*problem)
