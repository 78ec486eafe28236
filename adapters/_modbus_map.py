"""``modbus``: a plain Modbus TCP register map -- setpoint and telemetry, no SunSpec.

For heat pumps, electric boilers, electrolysers and flexible processes
(setpoint and telemetry) and thermal / hydrogen storage (telemetry only).
The park file names each register (:class:`vpp.config.models.ModbusAdapter`):
its address, kind (holding: function 3, input: function 4), encoding
(int16, uint16, int32, uint32, float32; 32-bit values in two registers,
``word_order`` big or little) and scale (value = raw x scale):

* ``consumption_kw``: what the device draws [kW] (>= 0; the adapter turns it
  into the vpp sign, ``power_kw = -consumption_kw``, here and nowhere else);
* ``soc``: state of charge [fraction 0..1] of a store;
* the type's cumulative registers (``consumed_kwh``, ``heat_kwh``,
  ``hydrogen_kg``, ``charged_kwh``, ...), each >= 0, into ``Telemetry.extra``.

A setpoint is written to ``setpoint_register`` as ``consumption_kw /
scale`` (rounded for integer types). The config loader checks the map fits
the asset type (``AssetBase.adapter_issues``). Like the SunSpec adapter:
pymodbus's synchronous client runs on the adapter's worker thread with its
own retries off, the setpoint is remembered before it is written and
re-written every third of ``revert_timeout_s`` and at once after a
reconnection (the device's watchdog reverts it otherwise).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from adapters.base import DeviceFaultError, PolledAdapter, Reading, Reason, ReconnectPolicy
from vpp.config.models import AssetSpec, ModbusAdapter, ModbusRegister
from vpp.types import Clock, Setpoint

# A power reading beyond this multiple of the nameplate is a decoding error, not physics.
PLAUSIBLE_POWER_FACTOR = 1.5
# Re-write the setpoint after this fraction of the device's revert timer.
KEEPALIVE_FRACTION = 1 / 3

_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}


def decode(raw: list[int], register: ModbusRegister, word_order: str) -> float:
    """The value of ``register`` from its raw 16-bit words, scaled."""
    words = raw if word_order == "big" or len(raw) == 1 else raw[::-1]
    data = b"".join(int(w).to_bytes(2, "big") for w in words)
    (value,) = struct.unpack(_FORMATS[register.type], data)
    return float(value) * register.scale


def encode(value: float, register: ModbusRegister, word_order: str) -> list[int]:
    """The raw 16-bit words that hold ``value`` (in the register's unit) in ``register``."""
    raw = value / register.scale
    fmt = _FORMATS[register.type]
    if register.type == "float32":
        data = struct.pack(fmt, raw)
    else:
        bits = 16 if register.count == 1 else 32
        signed = register.type.startswith("int")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        number = round(raw)
        if not low <= number <= high:
            raise DeviceFaultError(
                Reason.OUT_OF_RANGE, f"{value} does not fit a {register.type} at scale {register.scale}"
            )
        data = struct.pack(fmt, number)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if word_order == "big" else words[::-1]


class ModbusDevice(PolledAdapter):
    """An asset behind a plain Modbus TCP register map (see the module for the map)."""

    protocol = "modbus"

    def __init__(
        self,
        park_id: str,
        asset: AssetSpec,
        spec: ModbusAdapter,
        *,
        clock: Clock,
        reconnect: ReconnectPolicy,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            park_id,
            asset,
            clock=clock,
            poll_interval_s=spec.poll_interval_s,
            stale_after_s=spec.stale_after_s,
            reconnect=reconnect,
            keepalive_s=spec.revert_timeout_s * KEEPALIVE_FRACTION,
            monotonic=monotonic,
        )
        self.spec = spec
        self._client: ModbusTcpClient | None = None

    def _revert_timeout_s(self) -> float | None:
        return self.spec.revert_timeout_s if self.asset.setpoint_kind != "none" else None

    # ------------------------------------------------------------------ wire

    def _read(self, name: str, register: ModbusRegister) -> float:
        assert self._client is not None
        reader = (
            self._client.read_holding_registers
            if register.kind == "holding"
            else self._client.read_input_registers
        )
        where = f"read {name} at {register.address}"
        try:
            response = reader(register.address, count=register.count, device_id=self.spec.unit_id)
        except ConnectionException as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"{where}: {exc}") from None
        except ModbusIOException as exc:
            raise DeviceFaultError(Reason.TIMEOUT, f"{where}: no answer: {exc}") from None
        except (ModbusException, OSError) as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"{where}: {exc}") from None
        if response.isError():
            raise DeviceFaultError(Reason.DEVICE_ERROR, f"{where}: exception response {response}")
        raw = list(response.registers)
        if len(raw) != register.count:
            raise DeviceFaultError(
                Reason.MALFORMED, f"{where}: asked {register.count} registers, got {len(raw)}"
            )
        value = decode(raw, register, self.spec.word_order)
        if not math.isfinite(value):
            raise DeviceFaultError(Reason.MALFORMED, f"{name} = {value} is not finite")
        return value

    def _write(self, register: ModbusRegister, values: list[int]) -> None:
        assert self._client is not None
        where = f"write setpoint at {register.address}"
        try:
            response = self._client.write_registers(
                register.address, values, device_id=self.spec.unit_id
            )
        except ConnectionException as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"{where}: {exc}") from None
        except ModbusIOException as exc:
            raise DeviceFaultError(Reason.TIMEOUT, f"{where}: no answer: {exc}") from None
        except (ModbusException, OSError) as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"{where}: {exc}") from None
        if response.isError():
            raise DeviceFaultError(Reason.DEVICE_ERROR, f"{where}: exception response {response}")

    # ------------------------------------------------------------------ session hooks

    def _open(self) -> None:
        self._client = ModbusTcpClient(
            self.spec.host, port=self.spec.port, timeout=self.spec.timeout_s, retries=0
        )
        if not self._client.connect():
            self._client.close()
            self._client = None
            raise DeviceFaultError(
                Reason.CONNECTION_LOST, f"cannot connect to {self.spec.host}:{self.spec.port}"
            )

    def _close_transport(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _poll(self) -> Reading:
        registers = self.spec.registers
        consumption = 0.0
        if "consumption_kw" in registers:
            consumption = self._read("consumption_kw", registers["consumption_kw"])
        limit = PLAUSIBLE_POWER_FACTOR * self.asset.max_import_kw
        if not 0.0 <= consumption <= limit:
            raise DeviceFaultError(
                Reason.OUT_OF_RANGE, f"consumption_kw = {consumption:g} outside 0..{limit:g}"
            )
        soc = None
        if self.asset.has_soc and "soc" in registers:
            soc = self._read("soc", registers["soc"])
            if not 0.0 <= soc <= 1.0:
                raise DeviceFaultError(Reason.OUT_OF_RANGE, f"soc = {soc:g} outside 0..1")
        extra = {}
        for name in self.asset.telemetry_registers:
            if name in registers:
                value = self._read(name, registers[name])
                if value < 0:
                    raise DeviceFaultError(
                        Reason.OUT_OF_RANGE, f"{name} = {value:g}: a counter is >= 0"
                    )
                extra[name] = value
        return Reading(self.clock.now(), -consumption, soc, extra)

    def _deliver(self, setpoint: Setpoint) -> None:
        register = self.spec.setpoint_register
        if register is None:
            raise DeviceFaultError(Reason.DEVICE_ERROR, "no setpoint_register in the park file")
        consumption_kw = max(0.0, -setpoint.power_kw)  # vpp sign -> consumption
        self._write(register, encode(consumption_kw, register, self.spec.word_order))
