"""Helpers for the adapter tests: clocks, asset specs, polling with deadlines."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest

from adapters import ReconnectPolicy
from vpp.config.models import BatterySpec, ParkConfig

T0 = dt.datetime(2025, 6, 2, 0, 0, tzinfo=dt.UTC)
FAST_RECONNECT = ReconnectPolicy(initial_s=0.05, factor=2.0, max_s=0.2)


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def advance(self, **kwargs: float) -> dt.datetime:
        self.t += dt.timedelta(**kwargs)
        return self.t


class WallClock:
    """The system clock shifted by an offset the test can move (to age readings)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail after ``timeout_s`` (no fixed sleeps)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")


def park_with(*assets: dict) -> ParkConfig:
    return ParkConfig.model_validate(
        {
            "id": "test-park",
            "name": "Test park",
            "market": "m",
            "timezone": "UTC",
            "grid": {"import_limit_kw": 10000, "export_limit_kw": 10000},
            "assets": list(assets),
        }
    )


def battery(**overrides: object) -> BatterySpec:
    fields = {
        "id": "bess",
        "type": "battery",
        "power_kw": 1000,
        "energy_kwh": 2000,
        "charge_efficiency": 0.9,
        "discharge_efficiency": 0.8,
        "soc_min": 0.1,
        "soc_max": 0.9,
        "soc_initial": 0.5,
    }
    fields.update(overrides)
    return BatterySpec.model_validate(fields)
