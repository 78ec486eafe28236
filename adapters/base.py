"""The adapter contract: what every device adapter does, whatever its protocol.

An :class:`Adapter` is a :class:`vpp.types.Device`: dispatch calls
``read() -> Telemetry`` and ``write(Setpoint) -> Setpoint`` and never knows
whether a battery speaks SunSpec or is simulated. On top of that an adapter
has ``connect()``/``close()``, ``capabilities`` and ``health()``.

**Sync API, I/O off the caller's thread.** The API is synchronous because
its consumers (APScheduler jobs in the daemon, the backtest loop) are.
``read()`` never waits on a device: protocol adapters keep a session in the
background (a poller thread for Modbus and HTTP, an asyncio event loop
thread for the OCPP central system) and ``read()`` returns the latest
reading, marked unavailable when it is stale or the device is faulted.
``write()`` does block, for at most the protocol's configured timeout, so
the caller learns whether the setpoint reached the device.

**Faults never escape as anything but** :class:`DeviceFaultError` (an
:class:`vpp.AdapterError`) from ``write()``; ``read()``, ``connect()`` and
``close()`` do not raise for device faults at all: they mark the asset
unavailable with a reason (logged once per change as ``asset_unavailable``)
and the session reconnects with a bounded exponential backoff.

Power follows :mod:`vpp.units`: ``power_kw > 0`` into the grid, ``< 0``
drawn from it. Protocols with another convention flip the sign inside their
adapter, nowhere else.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Literal, Self

import structlog

from vpp.config.models import AssetSpec
from vpp.errors import AdapterError, InputError
from vpp.logging import redact_text
from vpp.types import Clock, Health, Setpoint, Telemetry

__all__ = [
    "Adapter",
    "Capabilities",
    "DeviceFaultError",
    "HealthStatus",
    "PolledAdapter",
    "ReadOnlyError",
    "Reading",
    "Reason",
    "ReconnectPolicy",
    "SetpointKind",
]

log = structlog.get_logger("adapters")


class Reason(enum.StrEnum):
    """Why an asset is unavailable: the ``reason`` field of ``asset_unavailable``."""

    NOT_CONNECTED = "not_connected"  # never connected yet, or closed
    CONNECTION_LOST = "connection_lost"  # refused, reset or closed by the peer
    TIMEOUT = "timeout"  # the peer did not answer within the configured timeout
    MALFORMED = "malformed"  # a register block or payload could not be decoded
    OUT_OF_RANGE = "out_of_range"  # decoded, but physically implausible
    STALE = "stale"  # the latest reading is older than stale_after_s
    UNAUTHORIZED = "unauthorized"  # the peer rejected our credentials
    CREDENTIALS_MISSING = "credentials_missing"  # the env var named in the park file is unset
    DEVICE_ERROR = "device_error"  # the peer answered with an error or rejected a command
    NO_DATA = "no_data"  # a simulated device has no exogenous data for this time


class DeviceFaultError(AdapterError):
    """A device fault with a machine-readable :class:`Reason`. Never carries secrets.

    ``detail`` often quotes what a device sent; registered secret values in
    it are replaced by ``***`` (:func:`vpp.logging.redact_text`) before it
    reaches a log line, a health status or an error message.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        detail = redact_text(detail)
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class ReadOnlyError(AdapterError):
    """A setpoint was sent to a device that accepts none (e.g. non-curtailable PV)."""


SetpointKind = Literal["power", "export_cap", "import_cap", "none"]


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do, in the sign convention of :mod:`vpp.units`.

    ``min_kw`` / ``max_kw`` bound every setpoint sent (``min_kw <= 0 <= max_kw``
    for a battery). ``setpoint_kind`` says what a setpoint means:

    * ``power``: hold this power (battery, flexible process);
    * ``export_cap``: produce at most this much (curtailable PV);
    * ``import_cap``: draw at most ``-power_kw`` (EV charging hub);
    * ``none``: read-only, ``write()`` raises :class:`ReadOnlyError`.
    """

    protocol: str
    setpoint_kind: SetpointKind
    min_kw: float
    max_kw: float
    reports_soc: bool
    revert_timeout_s: float | None = None

    @property
    def writable(self) -> bool:
        return self.setpoint_kind != "none"


@dataclass(frozen=True)
class HealthStatus:
    """An asset's health since ``since`` (UTC), with the reason when unavailable."""

    health: Health
    reason: Reason | None
    since: dt.datetime
    detail: str | None = None

    @property
    def available(self) -> bool:
        return self.health is Health.OK


_CLAMP_LOG_TOLERANCE_KW = 1e-3


@dataclass(frozen=True)
class Reading:
    """One decoded reading, before health is attached. Power in vpp sign [kW]."""

    measured_at: dt.datetime
    power_kw: float
    soc: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ReconnectPolicy:
    """Bounded exponential backoff between reconnection attempts [s].

    After the n-th consecutive failure the next attempt waits
    ``min(initial_s * factor**(n-1), max_s)``.
    """

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s and self.factor >= 1):
            raise InputError(f"need 0 < initial_s <= max_s and factor >= 1, got {self}")

    def delay_s(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.initial_s * self.factor ** (failures - 1), self.max_s)


def _limits(asset: AssetSpec) -> tuple[float, float]:
    """Nameplate setpoint bounds of an asset in vpp sign [kW]."""
    return asset.setpoint_limits_kw


class Adapter(abc.ABC):
    """Base class of every adapter; a :class:`vpp.types.Device`.

    Subclasses implement :meth:`connect`, :meth:`close`, :meth:`read` and
    :meth:`_send`; this class owns clamping, the read-only rule and the
    health state machine with its log events.
    """

    protocol: ClassVar[str]

    def __init__(self, park_id: str, asset: AssetSpec, *, clock: Clock) -> None:
        self.park_id = park_id
        self.asset_id = asset.id
        self.asset = asset
        self.clock = clock
        self.log = log.bind(park=park_id, asset=asset.id, protocol=self.protocol)
        self._state_lock = threading.Lock()
        self._health = HealthStatus(
            Health.UNAVAILABLE, Reason.NOT_CONNECTED, clock.now(), "not connected yet"
        )

    # ------------------------------------------------------------------ contract

    @property
    def capabilities(self) -> Capabilities:
        low, high = self.limits_kw()
        kind = self._setpoint_kind()
        return Capabilities(
            protocol=self.protocol,
            setpoint_kind=kind,
            min_kw=low if kind != "none" else 0.0,
            max_kw=high if kind != "none" else 0.0,
            reports_soc=(
                self.asset.soc_capacity_kwh is not None or self.asset.soc_capacity_kg is not None
            ),
            revert_timeout_s=self._revert_timeout_s(),
        )

    @abc.abstractmethod
    def connect(self) -> None:
        """Start the session. Never raises for device faults: see :meth:`health`."""

    @abc.abstractmethod
    def close(self) -> None:
        """End the session and release sockets and threads. Idempotent."""

    @abc.abstractmethod
    def read(self) -> Telemetry:
        """The latest telemetry, unavailable (with a reason) if faulted or stale."""

    def write(self, setpoint: Setpoint) -> Setpoint:
        """Clamp ``setpoint`` to the asset's limits, send it, return what was sent.

        Raises :class:`ReadOnlyError` for a read-only device (nothing is
        sent) and :class:`DeviceFaultError` when the device did not accept it.
        """
        if (setpoint.park_id, setpoint.asset_id) != (self.park_id, self.asset_id):
            raise InputError(
                f"setpoint for {setpoint.park_id}/{setpoint.asset_id} sent to adapter of "
                f"{self.park_id}/{self.asset_id}"
            )
        if self._setpoint_kind() == "none":
            raise ReadOnlyError(f"{self.park_id}/{self.asset_id} is read-only; nothing was sent")
        low, high = self.limits_kw()
        power_kw = min(max(setpoint.power_kw, low), high)
        # Solver round-off (1e-9 kW) is clamped silently; a real excess is a warning.
        if abs(power_kw - setpoint.power_kw) > _CLAMP_LOG_TOLERANCE_KW:
            self.log.warning(
                "setpoint_clamped",
                requested_kw=setpoint.power_kw,
                sent_kw=power_kw,
                min_kw=low,
                max_kw=high,
            )
        sent = dataclasses.replace(setpoint, power_kw=power_kw)
        try:
            self._send(sent)
        except DeviceFaultError as fault:
            self._mark_unavailable(fault.reason, fault.detail)
            raise
        self.log.debug("setpoint_sent", power_kw=power_kw, interval_start=str(sent.interval_start))
        return sent

    def health(self) -> HealthStatus:
        with self._state_lock:
            return self._health

    def limits_kw(self) -> tuple[float, float]:
        """Bounds ``(min_kw, max_kw)`` of a setpoint now, in vpp sign [kW]."""
        return _limits(self.asset)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ for subclasses

    @abc.abstractmethod
    def _send(self, setpoint: Setpoint) -> None:
        """Deliver an already clamped setpoint; raise :class:`DeviceFaultError` on failure."""

    def _setpoint_kind(self) -> SetpointKind:
        return self.asset.setpoint_kind

    def _revert_timeout_s(self) -> float | None:
        return None

    def _mark_unavailable(self, reason: Reason, detail: str) -> None:
        with self._state_lock:
            previous = self._health
            if previous.health is Health.UNAVAILABLE and previous.reason is reason:
                return
            self._health = HealthStatus(Health.UNAVAILABLE, reason, self.clock.now(), detail)
        self.log.warning("asset_unavailable", reason=str(reason), detail=detail)

    def _mark_available(self) -> None:
        with self._state_lock:
            previous = self._health
            if previous.health is Health.OK:
                return
            self._health = HealthStatus(Health.OK, None, self.clock.now())
        self.log.info("asset_available", after=str(previous.reason))

    def _telemetry(self, reading: Reading | None) -> Telemetry:
        """Telemetry from the latest reading with the current health attached."""
        status = self.health()
        if reading is None:
            return Telemetry(
                self.park_id,
                self.asset_id,
                self.clock.now(),
                None,
                health=Health.UNAVAILABLE,
                reason=str(status.reason or Reason.NOT_CONNECTED),
            )
        return Telemetry(
            self.park_id,
            self.asset_id,
            reading.measured_at,
            reading.power_kw,
            soc=reading.soc,
            health=status.health,
            reason=None if status.reason is None else str(status.reason),
            extra=dict(reading.extra),
        )


def check_finite(name: str, value: float) -> float:
    """Return ``value`` or raise a MALFORMED :class:`DeviceFaultError` if it is NaN/inf."""
    if not math.isfinite(value):
        raise DeviceFaultError(Reason.MALFORMED, f"{name} = {value} is not finite")
    return value


# Faults after which the transport cannot be trusted: drop it and reconnect with backoff.
_RECONNECT_REASONS = frozenset(
    {Reason.CONNECTION_LOST, Reason.TIMEOUT, Reason.NOT_CONNECTED, Reason.UNAUTHORIZED}
)


class PolledAdapter(Adapter):
    """An adapter whose device is polled by a background thread.

    One worker thread per asset: it connects (with :class:`ReconnectPolicy`
    backoff), polls every ``poll_interval_s``, re-sends the active setpoint
    every ``keepalive_s`` (before the device's revert timer runs out), and
    records health. ``read()`` only looks at the latest reading, so a slow
    device never blocks dispatch; the reading goes stale after
    ``stale_after_s`` by the injected clock.

    All device I/O is serialised by one lock, so ``write()`` from the
    caller's thread and the worker never interleave on the wire.
    """

    def __init__(
        self,
        park_id: str,
        asset: AssetSpec,
        *,
        clock: Clock,
        poll_interval_s: float,
        stale_after_s: float,
        reconnect: ReconnectPolicy,
        keepalive_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(park_id, asset, clock=clock)
        self.poll_interval_s = poll_interval_s
        self.stale_after_s = stale_after_s
        self.reconnect = reconnect
        self.keepalive_s = keepalive_s
        self._monotonic = monotonic
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._connected = False
        self._failures = 0
        self._next_attempt = 0.0
        self._reading: Reading | None = None
        self._desired: Setpoint | None = None
        self._delivered_at: float | None = None

    # ------------------------------------------------------------------ protocol hooks

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the transport (and discover the device); raise DeviceFaultError."""

    @abc.abstractmethod
    def _close_transport(self) -> None:
        """Close the transport; must not raise."""

    @abc.abstractmethod
    def _poll(self) -> Reading:
        """Read and decode one reading; raise DeviceFaultError."""

    @abc.abstractmethod
    def _deliver(self, setpoint: Setpoint) -> None:
        """Put a clamped setpoint on the wire; raise DeviceFaultError."""

    # ------------------------------------------------------------------ contract

    def connect(self) -> None:
        if self._worker is not None:
            return
        self._stop.clear()
        self.cycle()  # first attempt in the caller's thread: `adapters check` sees the result
        self._worker = threading.Thread(
            target=self._run, name=f"adapter-{self.park_id}-{self.asset_id}", daemon=True
        )
        self._worker.start()

    def close(self) -> None:
        self._stop.set()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout=30)
        with self._io_lock:
            if self._connected:
                self._close_transport()
                self._connected = False
        self._mark_unavailable(Reason.NOT_CONNECTED, "closed")

    def read(self) -> Telemetry:
        with self._state_lock:
            reading = self._reading
        if reading is not None and self.health().available:
            age_s = (self.clock.now() - reading.measured_at).total_seconds()
            if age_s > self.stale_after_s:
                self._mark_unavailable(
                    Reason.STALE,
                    f"latest reading is {age_s:.1f} s old (stale_after_s = {self.stale_after_s})",
                )
        return self._telemetry(reading)

    def _send(self, setpoint: Setpoint) -> None:
        with self._io_lock:
            self._desired = setpoint
            if not self._connected:
                status = self.health()
                raise DeviceFaultError(
                    status.reason or Reason.NOT_CONNECTED,
                    "device not connected; the setpoint is sent when it reconnects",
                )
            try:
                self._deliver(setpoint)
            except DeviceFaultError as fault:
                self._after_fault(fault)
                raise
            self._delivered_at = self._monotonic()

    # ------------------------------------------------------------------ the session

    def cycle(self) -> None:
        """One round of the session: (re)connect, poll, keep the setpoint alive.

        Called by the worker thread; public so that tests and a single-threaded
        caller can drive the session deterministically.
        """
        with self._io_lock:
            if not self._connected:
                if self._monotonic() < self._next_attempt:
                    return
                try:
                    self._open()
                except DeviceFaultError as fault:
                    self._after_fault(fault)
                    return
                self._connected = True
                self.log.info("device_connected", attempt=self._failures + 1)
                if self._desired is not None:
                    self._delivered_at = None  # the device reverted meanwhile: send at once
            try:
                reading = self._poll()
                self._keepalive()
            except DeviceFaultError as fault:
                self._after_fault(fault)
                return
            self._failures = 0
        with self._state_lock:
            self._reading = reading
        self._mark_available()

    def _keepalive(self) -> None:
        if self._desired is None:
            return
        due = self._delivered_at is None or (
            self.keepalive_s is not None
            and self._monotonic() - self._delivered_at >= self.keepalive_s
        )
        if due:
            self._deliver(self._desired)
            self._delivered_at = self._monotonic()
            self.log.debug("setpoint_resent", power_kw=self._desired.power_kw)

    def _after_fault(self, fault: DeviceFaultError) -> None:
        """Record a fault; drop the transport if it cannot be trusted any more."""
        self._mark_unavailable(fault.reason, fault.detail)
        if fault.reason in _RECONNECT_REASONS or (not self._connected):
            if self._connected:
                self._close_transport()
                self._connected = False
            self._failures += 1
            delay = self.reconnect.delay_s(self._failures)
            self._next_attempt = self._monotonic() + delay
            self.log.info("reconnect_scheduled", in_s=round(delay, 3), failures=self._failures)

    def _wait_s(self) -> float:
        wait = self.poll_interval_s
        if self.keepalive_s is not None and self._desired is not None:
            wait = min(wait, self.keepalive_s)
        if not self._connected:
            wait = min(wait, max(self._next_attempt - self._monotonic(), 0.01))
        return wait

    def _run(self) -> None:
        while not self._stop.wait(self._wait_s()):
            self.cycle()

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on close(); return False if closed meanwhile."""
        return not self._stop.wait(seconds)
