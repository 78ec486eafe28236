"""A SunSpec storage inverter on a real pymodbus TCP server, for tests on loopback.

Written from the SunSpec model definitions, independently of the adapter's
codec (only the numeric offsets are shared knowledge): models 1, 103, 121
and 124, a battery whose power follows the model-124 rate window, and the
revert timer (``InOutWRte_RvrtTms``) that drops control when no write
arrives in time. Faults can be injected: a response delay, corrupted
registers, and stopping/restarting the server on the same port.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters._loop import LoopThread

BASE = 40000
# Absolute offsets from BASE of each model's first data register.
COMMON_AT = 4  # after "SunS" (2) + ID, L (2)
INV_AT = COMMON_AT + 66 + 2
SET_AT = INV_AT + 50 + 2
STOR_AT = SET_AT + 30 + 2
END_AT = STOR_AT + 24


def _u16(value: int) -> int:
    return value & 0xFFFF


def _text(text: str, registers: int) -> list[int]:
    raw = text.encode().ljust(2 * registers, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * registers, 2)]


class SunSpecBattery:
    """A battery behind a SunSpec storage inverter, served over Modbus TCP.

    ``rate_sf`` is the InOutWRte scale factor (-2: rates in 0.01 %).
    """

    def __init__(
        self,
        *,
        wmax_w: float,
        wchamax_w: float | None = None,
        energy_wh: float,
        soc: float = 0.5,
        unit_id: int = 1,
        rate_sf: int = -2,
    ) -> None:
        self.wmax_w = wmax_w
        self.wchamax_w = wchamax_w or wmax_w
        self.energy_wh = energy_wh
        self.soc = soc
        self.unit_id = unit_id
        self.rate_sf = rate_sf
        self.power_sf = max(0, math.ceil(math.log10(max(self.wmax_w, self.wchamax_w) / 30000)))
        self.limit_sf = max(0, math.ceil(math.log10(max(self.wmax_w, self.wchamax_w) / 60000)))
        self.delay_s = 0.0
        self.reverts = 0
        self.control_writes = 0
        self.overrides: dict[int, int] = {}
        self._saved: dict[int, int] = {}
        self._lock = threading.Lock()
        self._last_update = time.monotonic()
        self._last_control_write: float | None = None
        self._power_w = 0.0
        self.registers = self._initial_registers()
        self.port = 0
        self._loop = LoopThread("sunspec-peer")
        self._server: ModbusTcpServer | None = None

    # ------------------------------------------------------------------ register map

    def _initial_registers(self) -> list[int]:
        regs = [0] * (END_AT + 2)
        regs[0:2] = [0x5375, 0x6E53]
        regs[2:4] = [1, 66]
        regs[COMMON_AT : COMMON_AT + 16] = _text("vpp-test", 16)
        regs[COMMON_AT + 16 : COMMON_AT + 32] = _text("SunSpecBattery", 16)
        regs[COMMON_AT + 48 : COMMON_AT + 64] = _text("SN-0001", 16)
        regs[INV_AT - 2 : INV_AT] = [103, 50]
        regs[INV_AT + 13] = _u16(self.power_sf)
        regs[SET_AT - 2 : SET_AT] = [121, 30]
        regs[SET_AT + 0] = round(self.wmax_w / 10**self.limit_sf)
        regs[SET_AT + 20] = _u16(self.limit_sf)
        regs[STOR_AT - 2 : STOR_AT] = [124, 24]
        regs[STOR_AT + 0] = round(self.wchamax_w / 10**self.limit_sf)
        regs[STOR_AT + 16] = _u16(self.limit_sf)
        regs[STOR_AT + 20] = _u16(-1)  # ChaState in 0.1 %
        regs[STOR_AT + 23] = _u16(self.rate_sf)
        regs[STOR_AT + 10] = regs[STOR_AT + 11] = 100 * 10**-self.rate_sf
        regs[END_AT : END_AT + 2] = [0xFFFF, 0]
        self._refresh(regs)
        return regs

    def _rate_pct(self, raw: int) -> float:
        signed = raw - 0x10000 if raw & 0x8000 else raw
        return signed * 10.0**self.rate_sf

    def _window_w(self, regs: list[int]) -> tuple[float, float]:
        mode = regs[STOR_AT + 3]
        low, high = -self.wchamax_w, self.wmax_w
        if mode & 0x1:
            low = -self._rate_pct(regs[STOR_AT + 11]) / 100 * self.wchamax_w
        if mode & 0x2:
            high = self._rate_pct(regs[STOR_AT + 10]) / 100 * self.wmax_w
        return low, high

    def _step(self, regs: list[int]) -> None:
        """Advance physics to now: revert timer, then energy, then the power register."""
        now = time.monotonic()
        revert_s = regs[STOR_AT + 13]
        if (
            regs[STOR_AT + 3] != 0
            and self._last_control_write is not None
            and revert_s not in (0, 0xFFFF)
            and now - self._last_control_write > revert_s
        ):
            regs[STOR_AT + 3] = 0
            regs[STOR_AT + 10] = regs[STOR_AT + 11] = 100 * 10**-self.rate_sf
            self.reverts += 1
        dt_h = (now - self._last_update) / 3600
        self._last_update = now
        self.soc -= self._power_w * dt_h / self.energy_wh
        self.soc = min(max(self.soc, 0.0), 1.0)
        low, high = self._window_w(regs)
        power = min(max(0.0, low), high)  # left alone the inverter idles at 0
        if (power > 0 and self.soc <= 0) or (power < 0 and self.soc >= 1):
            power = 0.0
        self._power_w = power
        self._refresh(regs)

    def _refresh(self, regs: list[int]) -> None:
        regs[INV_AT + 12] = _u16(round(self._power_w / 10**self.power_sf))
        regs[STOR_AT + 6] = round(self.soc * 1000)
        regs[STOR_AT + 9] = 3 if self._power_w > 0 else 4 if self._power_w < 0 else 6
        for offset, raw in self.overrides.items():
            regs[offset] = raw

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
            if set_values is not None:
                first = address - start_address
                control = {STOR_AT + 3} | set(range(STOR_AT + 10, STOR_AT + 15))
                if control & set(range(first, first + count)):
                    self._last_control_write = time.monotonic()
                    self.control_writes += 1

    # ------------------------------------------------------------------ inspection

    @property
    def power_w(self) -> float:
        with self._lock:
            self._step(self.registers)
            return self._power_w

    def corrupt(self, offset: int, raw: int) -> None:
        """Pin the register at BASE + ``offset`` to ``raw`` (e.g. a 0x8000 sentinel)."""
        with self._lock:
            self._saved.setdefault(offset, self.registers[offset])
            self.overrides[offset] = raw
            self._refresh(self.registers)

    def heal(self) -> None:
        with self._lock:
            self.overrides.clear()
            for offset, raw in self._saved.items():
                self.registers[offset] = raw
            self._saved.clear()
            self._refresh(self.registers)

    # ------------------------------------------------------------------ server

    async def _serve(self) -> int:
        device = SimDevice(
            id=self.unit_id,
            simdata=[SimData(BASE, values=list(self.registers), datatype=DataType.REGISTERS)],
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
        """Serve on 127.0.0.1 (an ephemeral port the first time, then the same port)."""
        self.port = self._loop.run(self._serve(), 10)
        return self.port

    def stop(self) -> None:
        """Kill the server and every open connection (the device drops off the network)."""
        self._loop.run(self._shutdown(), 10)

    def close(self) -> None:
        if self._server is not None:
            self.stop()
        self._loop.stop()
