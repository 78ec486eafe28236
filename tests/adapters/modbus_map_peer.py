"""A heat pump behind a plain Modbus register map on a real pymodbus TCP server (loopback).

Written from the register table, independently of the adapter's codec:
``consumption_kw`` int32 x 0.1 at input 0, ``consumed_kwh`` uint32 x 0.1 at
2, ``heat_kwh`` float32 at 4 (big-endian words), the setpoint uint32 x 0.1
at holding 100. A watchdog drops the draw to 0 when no setpoint write
arrives within ``revert_s``. Faults: a response delay, pinned registers,
stop/restart on the same port.
"""

from __future__ import annotations

import asyncio
import struct
import threading
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters._loop import LoopThread

SETPOINT_AT = 100
SIZE = 110


def words(fmt: str, value: float | int) -> list[int]:
    data = struct.pack(fmt, value)
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


class ModbusHeatPump:
    def __init__(self, *, cop: float = 3.0, revert_s: float = 1.0, unit_id: int = 1) -> None:
        self.cop = cop
        self.revert_s = revert_s
        self.unit_id = unit_id
        self.consumption_kw = 0.0
        self.consumed_kwh = 0.0
        self.heat_kwh = 0.0
        self.delay_s = 0.0
        self.reverts = 0
        self.setpoint_writes = 0
        self.overrides: dict[int, int] = {}
        self._lock = threading.Lock()
        self._last_update = time.monotonic()
        self._last_write: float | None = None
        self.registers = [0] * SIZE
        self.port = 0
        self._loop = LoopThread("modbus-map-peer")
        self._server: ModbusTcpServer | None = None

    def _step(self, regs: list[int]) -> None:
        now = time.monotonic()
        if (
            self.consumption_kw
            and self._last_write is not None
            and now - self._last_write > self.revert_s
        ):
            self.consumption_kw = 0.0
            self.reverts += 1
        dt_h = (now - self._last_update) / 3600
        self._last_update = now
        self.consumed_kwh += self.consumption_kw * dt_h
        self.heat_kwh += self.consumption_kw * self.cop * dt_h
        regs[0:2] = words(">i", round(self.consumption_kw * 10))
        regs[2:4] = words(">I", round(self.consumed_kwh * 10))
        regs[4:6] = words(">f", self.heat_kwh)
        for address, raw in self.overrides.items():
            regs[address] = raw

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        with self._lock:
            self.registers = registers
            self._step(registers)
            if set_values is not None and address == SETPOINT_AT and len(set_values) == 2:
                raw = (int(set_values[0]) << 16) | int(set_values[1])
                self.consumption_kw = raw / 10
                self._last_write = time.monotonic()
                self.setpoint_writes += 1

    def pin(self, address: int, raw: int) -> None:
        with self._lock:
            self.overrides[address] = raw

    def heal(self) -> None:
        with self._lock:
            self.overrides.clear()

    @property
    def draw_kw(self) -> float:
        with self._lock:
            self._step(self.registers)
            return self.consumption_kw

    async def _serve(self) -> int:
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(0, values=list(self.registers), datatype=DataType.REGISTERS)],
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)
        return int(self._server.transport.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _shutdown(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def start(self) -> int:
        self.port = self._loop.run(self._serve(), 10)
        return self.port

    def stop(self) -> None:
        self._loop.run(self._shutdown(), 10)

    def close(self) -> None:
        if self._server is not None:
            self.stop()
        self._loop.stop()
