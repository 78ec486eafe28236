"""The SunSpec register map vpp reads and writes, and its codec.

A SunSpec device starts at ``base_address`` with the marker ``"SunS"``
(``0x5375 0x6E53``), then a chain of models, each ``[ID, L, L data
registers]``, ended by ``[0xFFFF, 0]``. vpp uses four models (offsets are
from the first data register, after ID and L):

==========  ============================  ======  ========  =======================
model       point                         offset  type      use
==========  ============================  ======  ========  =======================
1 common    Mn, Md, SN                    0/16/48 string    identity (logged)
103 (101,   W, W_SF                       12, 13  int16     AC power [W], > 0 out
102) inv.
121 basic   WMax, WMax_SF                 0, 20   uint16    discharge base [W]
settings
124 basic   WChaMax, WChaMax_SF           0, 16   uint16    charge base [W]
storage     StorCtl_Mod                   3       bitfield  1 charge, 2 discharge
            ChaState, ChaState_SF         6, 20   uint16    SoC [% of capacity]
            ChaSt                         9       enum16    1 off ... 6 holding
            OutWRte, InWRte               10, 11  int16     [% WMax], [% WChaMax]
            InOutWRte_RvrtTms             13      uint16    revert timer [s]
            InOutWRte_SF                  23      sunssf    of OutWRte/InWRte
==========  ============================  ======  ========  =======================

Scale factors: ``value = raw * 10**sf``. Not-implemented sentinels
(``0x8000`` int16/sunssf, ``0xFFFF`` uint16) in a point vpp needs make the
block malformed.

**Power command.** Model 124 expresses charge and discharge as rate limits.
With both limits active (``StorCtl_Mod = 3``), the battery's power is held
in the window ``[-InWRte * WChaMax, OutWRte * WMax]`` (discharge positive);
a negative ``InWRte`` forces discharge and a negative ``OutWRte`` forces
charge. vpp collapses the window onto the setpoint ``p`` [W]:
``OutWRte = 100 p / WMax`` and ``InWRte = -100 p / WChaMax``. The device
returns to its own control (``StorCtl_Mod = 0``) when no write arrives for
``InOutWRte_RvrtTms`` seconds, so vpp re-writes the block well before that.
"""

from __future__ import annotations

from dataclasses import dataclass

SUNS_MARKER = (0x5375, 0x6E53)
END_ID = 0xFFFF
NOT_IMPLEMENTED_INT16 = 0x8000
NOT_IMPLEMENTED_UINT16 = 0xFFFF

COMMON = 1
INVERTER_MODELS = (101, 102, 103)
BASIC_SETTINGS = 121
STORAGE = 124

# Model 1
COMMON_MN, COMMON_MD, COMMON_SN = (0, 16), (16, 32), (48, 64)
# Models 101-103
INV_W, INV_W_SF = 12, 13
INV_LENGTH = 50
# Model 121
SET_WMAX, SET_WMAX_SF = 0, 20
SET_LENGTH = 30
# Model 124
STOR_WCHAMAX = 0
STOR_CTL_MOD = 3
STOR_CHASTATE = 6
STOR_CHAST = 9
STOR_OUTWRTE = 10
STOR_INWRTE = 11
STOR_WINTMS = 12
STOR_RVRTTMS = 13
STOR_RMPTMS = 14
STOR_WCHAMAX_SF = 16
STOR_CHASTATE_SF = 20
STOR_INOUTWRTE_SF = 23
STOR_LENGTH = 24

CTL_CHARGE = 0x1
CTL_DISCHARGE = 0x2

CHARGE_STATES = {1: "off", 2: "empty", 3: "discharging", 4: "charging", 5: "full", 6: "holding",
                 7: "testing"}  # fmt: skip


class RegisterError(ValueError):
    """A register value that cannot be decoded (sentinel, bad scale factor, bad marker)."""


def int16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def to_uint16(value: int) -> int:
    """Encode a signed value in [-32767, 32767] into a register."""
    if not -32767 <= value <= 32767:
        raise RegisterError(f"{value} does not fit an int16 register")
    return value & 0xFFFF


def scale_factor(raw: int, name: str) -> int:
    sf = int16(raw)
    if raw == NOT_IMPLEMENTED_INT16 or not -10 <= sf <= 10:
        raise RegisterError(f"{name} = {raw:#06x} is not a valid scale factor (-10..10)")
    return sf


def scaled_int16(raw: int, sf_raw: int, name: str) -> float:
    if raw == NOT_IMPLEMENTED_INT16:
        raise RegisterError(f"{name} is not implemented (0x8000)")
    return int16(raw) * 10.0 ** scale_factor(sf_raw, f"{name}_SF")


def scaled_uint16(raw: int, sf_raw: int, name: str) -> float:
    if raw == NOT_IMPLEMENTED_UINT16:
        raise RegisterError(f"{name} is not implemented (0xFFFF)")
    return raw * 10.0 ** scale_factor(sf_raw, f"{name}_SF")


def string(registers: list[int]) -> str:
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").strip()


def encode_string(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii")[: 2 * registers].ljust(2 * registers, b"\x00")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


@dataclass(frozen=True)
class ModelMap:
    """Start address of the first data register of each model found, and its length."""

    models: dict[int, tuple[int, int]]

    def address(self, model_id: int) -> int:
        return self.models[model_id][0]

    def inverter(self) -> int | None:
        for model_id in INVERTER_MODELS:
            if model_id in self.models:
                return model_id
        return None


def rate_registers(power_w: float, wmax_w: float, wchamax_w: float, sf: int) -> tuple[int, int]:
    """(OutWRte, InWRte) raw values that hold the battery at ``power_w`` (> 0 discharge)."""
    out_pct = 100.0 * power_w / wmax_w
    in_pct = -100.0 * power_w / wchamax_w
    scale = 10.0**-sf
    return to_uint16(round(out_pct * scale)), to_uint16(round(in_pct * scale))
