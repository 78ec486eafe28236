"""``modbus-sunspec``: batteries over Modbus TCP with SunSpec models 1, 103, 121, 124.

The register map and the power command are documented in
:mod:`adapters._sunspec` and ``docs/adapters.md``. pymodbus's synchronous
client runs on the adapter's worker thread (see :class:`PolledAdapter`);
its own retries are off so that vpp's timeout and backoff are the only ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from adapters import _sunspec as ss
from adapters.base import DeviceFaultError, PolledAdapter, Reading, Reason, ReconnectPolicy
from vpp.config.models import BatterySpec, ModbusSunSpecAdapter
from vpp.types import Clock, Setpoint

# A power reading beyond this multiple of the nameplate is a decoding error, not physics.
PLAUSIBLE_POWER_FACTOR = 1.5
# Re-write the setpoint after this fraction of the device's revert timer.
KEEPALIVE_FRACTION = 1 / 3


class ModbusSunSpecDevice(PolledAdapter):
    """A SunSpec storage inverter (battery) over Modbus TCP."""

    protocol = "modbus-sunspec"

    def __init__(
        self,
        park_id: str,
        asset: BatterySpec,
        spec: ModbusSunSpecAdapter,
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
        self.battery = asset
        self.spec = spec
        self._client: ModbusTcpClient | None = None
        self._map: ss.ModelMap | None = None
        self._wmax_w: float | None = None
        self._wchamax_w: float | None = None
        self._rate_sf = 0

    def _revert_timeout_s(self) -> float | None:
        return self.spec.revert_timeout_s

    def limits_kw(self) -> tuple[float, float]:
        """Nameplate limits, narrowed by the device's own WMax / WChaMax once read."""
        low, high = super().limits_kw()
        if self._wchamax_w is not None:
            low = max(low, -self._wchamax_w / 1000)
        if self._wmax_w is not None:
            high = min(high, self._wmax_w / 1000)
        return low, high

    # ------------------------------------------------------------------ wire

    def _registers(self, address: int, count: int) -> list[int]:
        assert self._client is not None
        try:
            response = self._client.read_holding_registers(
                address, count=count, device_id=self.spec.unit_id
            )
        except ConnectionException as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"read {address}: {exc}") from None
        except ModbusIOException as exc:
            raise DeviceFaultError(Reason.TIMEOUT, f"read {address}: no answer: {exc}") from None
        except (ModbusException, OSError) as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"read {address}: {exc}") from None
        if response.isError():
            raise DeviceFaultError(
                Reason.DEVICE_ERROR, f"read {address}: exception response {response}"
            )
        registers = list(response.registers)
        if len(registers) != count:
            raise DeviceFaultError(
                Reason.MALFORMED, f"read {address}: asked {count} registers, got {len(registers)}"
            )
        return registers

    def _write(self, address: int, values: list[int]) -> None:
        assert self._client is not None
        try:
            response = self._client.write_registers(address, values, device_id=self.spec.unit_id)
        except ConnectionException as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"write {address}: {exc}") from None
        except ModbusIOException as exc:
            raise DeviceFaultError(Reason.TIMEOUT, f"write {address}: no answer: {exc}") from None
        except (ModbusException, OSError) as exc:
            raise DeviceFaultError(Reason.CONNECTION_LOST, f"write {address}: {exc}") from None
        if response.isError():
            raise DeviceFaultError(
                Reason.DEVICE_ERROR, f"write {address}: exception response {response}"
            )

    # ------------------------------------------------------------------ session hooks

    def _open(self) -> None:
        self._client = ModbusTcpClient(
            self.spec.host, port=self.spec.port, timeout=self.spec.timeout_s, retries=0
        )
        if not self._client.connect():
            self._client.close()
            self._client = None
            raise DeviceFaultError(
                Reason.CONNECTION_LOST,
                f"cannot connect to {self.spec.host}:{self.spec.port}",
            )
        try:
            self._discover()
        except DeviceFaultError:
            self._close_transport()
            raise

    def _discover(self) -> None:
        base = self.spec.base_address
        if tuple(self._registers(base, 2)) != ss.SUNS_MARKER:
            raise DeviceFaultError(Reason.MALFORMED, f"no SunSpec marker 'SunS' at {base}")
        models: dict[int, tuple[int, int]] = {}
        address = base + 2
        for _ in range(64):
            model_id, length = self._registers(address, 2)
            if model_id == ss.END_ID:
                break
            models[model_id] = (address + 2, length)
            address += 2 + length
            if address > 0xFFFF:
                break
        else:
            raise DeviceFaultError(Reason.MALFORMED, "SunSpec model chain has no end marker")
        required = {
            ss.COMMON: 65,
            ss.BASIC_SETTINGS: ss.SET_LENGTH,
            ss.STORAGE: ss.STOR_LENGTH,
        }
        for model_id, min_length in required.items():
            if model_id not in models or models[model_id][1] < min_length:
                raise DeviceFaultError(
                    Reason.MALFORMED,
                    f"SunSpec model {model_id} missing or too short; found {sorted(models)}",
                )
        self._map = ss.ModelMap(models)
        if self._map.inverter() is None:
            raise DeviceFaultError(
                Reason.MALFORMED, f"no inverter model (101/102/103); found {sorted(models)}"
            )
        common = self._registers(self._map.address(ss.COMMON), 64)
        settings = self._registers(self._map.address(ss.BASIC_SETTINGS), ss.SET_LENGTH)
        storage = self._registers(self._map.address(ss.STORAGE), ss.STOR_LENGTH)
        try:
            wmax = ss.scaled_uint16(settings[ss.SET_WMAX], settings[ss.SET_WMAX_SF], "WMax")
            wchamax = ss.scaled_uint16(
                storage[ss.STOR_WCHAMAX], storage[ss.STOR_WCHAMAX_SF], "WChaMax"
            )
            self._rate_sf = ss.scale_factor(storage[ss.STOR_INOUTWRTE_SF], "InOutWRte_SF")
        except ss.RegisterError as exc:
            raise DeviceFaultError(Reason.MALFORMED, str(exc)) from None
        if not (wmax > 0 and wchamax > 0):
            raise DeviceFaultError(Reason.OUT_OF_RANGE, f"WMax = {wmax} W, WChaMax = {wchamax} W")
        self._wmax_w, self._wchamax_w = wmax, wchamax
        self.log.info(
            "sunspec_device",
            manufacturer=ss.string(common[slice(*ss.COMMON_MN)]),
            model=ss.string(common[slice(*ss.COMMON_MD)]),
            serial=ss.string(common[slice(*ss.COMMON_SN)]),
            wmax_kw=wmax / 1000,
            wchamax_kw=wchamax / 1000,
            models=sorted(models),
        )

    def _close_transport(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _poll(self) -> Reading:
        assert self._map is not None
        inverter = self._map.inverter()
        assert inverter is not None
        inv = self._registers(self._map.address(inverter), ss.INV_LENGTH)
        storage = self._registers(self._map.address(ss.STORAGE), ss.STOR_LENGTH)
        try:
            power_w = ss.scaled_int16(inv[ss.INV_W], inv[ss.INV_W_SF], "W")
            soc_pct = ss.scaled_uint16(
                storage[ss.STOR_CHASTATE], storage[ss.STOR_CHASTATE_SF], "ChaState"
            )
        except ss.RegisterError as exc:
            raise DeviceFaultError(Reason.MALFORMED, str(exc)) from None
        if not 0.0 <= soc_pct <= 100.0:
            raise DeviceFaultError(Reason.OUT_OF_RANGE, f"ChaState = {soc_pct} % outside 0..100")
        nameplate_kw = max(self.battery.charge_limit_kw, self.battery.discharge_limit_kw)
        power_kw = power_w / 1000  # SunSpec W > 0 is AC output: the vpp sign already
        if not math.isfinite(power_kw) or abs(power_kw) > PLAUSIBLE_POWER_FACTOR * nameplate_kw:
            raise DeviceFaultError(
                Reason.OUT_OF_RANGE,
                f"W = {power_kw:g} kW beyond {PLAUSIBLE_POWER_FACTOR} x nameplate "
                f"{nameplate_kw:g} kW",
            )
        extra = {
            "charge_state": float(storage[ss.STOR_CHAST]),
            "control_mode": float(storage[ss.STOR_CTL_MOD]),
        }
        return Reading(self.clock.now(), power_kw, soc_pct / 100.0, extra)

    def _deliver(self, setpoint: Setpoint) -> None:
        assert self._map is not None
        assert self._wmax_w is not None
        assert self._wchamax_w is not None
        out_raw, in_raw = ss.rate_registers(
            setpoint.power_kw * 1000, self._wmax_w, self._wchamax_w, self._rate_sf
        )
        revert_s = max(1, math.ceil(self.spec.revert_timeout_s))
        storage = self._map.address(ss.STORAGE)
        # Rates and revert timer first, then activate both limits.
        self._write(storage + ss.STOR_OUTWRTE, [out_raw, in_raw, 0, min(revert_s, 0xFFFE), 0])
        self._write(storage + ss.STOR_CTL_MOD, [ss.CTL_CHARGE | ss.CTL_DISCHARGE])
