"""Fixtures for the strategy tests: tiny parks built in code, a pinned slice of real prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import structlog

from vpp.config import load_config
from vpp.config.models import MarketRules, ParkConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CN_SLICE = REPO / "tests" / "data" / "cn_province_a_2025-05-01_2025-05-28.csv"


def cn_prices(path: Path = CN_SLICE) -> pd.DataFrame:
    """The Chinese province-A slice as a frame on UTC interval starts (canonical column names).

    The source labels intervals by their END in Asia/Shanghai (``00:15`` .. ``24:00``).
    """
    raw = pd.read_csv(path, encoding="utf-8")
    hours_minutes = raw["时刻"].str.split(":", expand=True).astype(int)
    end = pd.to_datetime(raw["日期"]) + pd.to_timedelta(
        hours_minutes[0] * 60 + hours_minutes[1], unit="min"
    )
    start = (end - pd.Timedelta(minutes=15)).dt.tz_localize("Asia/Shanghai").dt.tz_convert("UTC")
    return pd.DataFrame(
        {
            "da_price": raw["日前出清电价"].to_numpy(float),
            "rt_price": raw["实时出清电价"].to_numpy(float),
            "bidding_space_mw": raw["预测竞价空间"].to_numpy(float),
            "load_forecast_mw": raw["系统负荷预测数据"].to_numpy(float),
            "renewable_forecast_mw": raw["新能源出力预测数据"].to_numpy(float),
        },
        index=pd.DatetimeIndex(start, name="interval_start"),
    )


@pytest.fixture(scope="session")
def cn_frame() -> pd.DataFrame:
    return cn_prices()


@pytest.fixture(scope="session")
def example_config():  # type: ignore[no-untyped-def]
    return load_config(CONFIG)


@pytest.fixture(scope="session")
def cn_rules(example_config) -> MarketRules:  # type: ignore[no-untyped-def]
    return example_config.markets["cn-province-a"].rules_on(dt.date(2025, 5, 20))


def utc_index(periods: int, minutes: int = 60, start: str = "2025-05-20 00:00") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq=f"{minutes}min", tz="UTC", name="interval_start")


def battery(**overrides: Any) -> dict[str, Any]:
    spec = {
        "id": "bess",
        "type": "battery",
        "power_kw": 1000.0,
        "energy_kwh": 2000.0,
        "charge_efficiency": 1.0,
        "discharge_efficiency": 1.0,
        "soc_min": 0.0,
        "soc_max": 1.0,
        "soc_initial": 0.0,
        "soc_final": "free",
    }
    spec.update(overrides)
    return spec


def pv(**overrides: Any) -> dict[str, Any]:
    spec = {"id": "pv", "type": "pv", "capacity_kwp": 1000.0, "profile": {"path": "unused.csv"}}
    spec.update(overrides)
    return spec


def process(**overrides: Any) -> dict[str, Any]:
    spec = {
        "id": "furnace",
        "type": "flexible_process",
        "max_power_kw": 2000.0,
        "shift_up_kw": 500.0,
        "shift_down_kw": 500.0,
        "recovery_window_h": 2.0,
        "baseline": {"path": "unused.csv"},
    }
    spec.update(overrides)
    return spec


def ev_hub(**overrides: Any) -> dict[str, Any]:
    spec = {
        "id": "hub",
        "type": "ev_charging",
        "chargers": 2,
        "charger_power_kw": 10.0,
        "sessions": {"path": "unused.csv"},
    }
    spec.update(overrides)
    return spec


def make_park(*assets: dict[str, Any], import_kw: float = 1e5, export_kw: float = 1e5,
              park_id: str = "park", timezone: str = "UTC") -> ParkConfig:
    return ParkConfig.model_validate(
        {
            "id": park_id,
            "name": park_id,
            "market": "test-market",
            "timezone": timezone,
            "grid": {"import_limit_kw": import_kw, "export_limit_kw": export_kw},
            "assets": list(assets),
        }
    )


def sessions(*rows: tuple[str, int, str, str, float, float]) -> pd.DataFrame:
    """Known sessions: (id, charger, arrival, stated departure, requested kWh, charged kWh)."""
    frame = pd.DataFrame(
        rows,
        columns=["session_id", "charger", "arrival", "stated_departure",
                 "requested_energy_kwh", "charged_kwh"],
    )
    frame["arrival"] = pd.to_datetime(frame["arrival"], utc=True)
    frame["stated_departure"] = pd.to_datetime(frame["stated_departure"], utc=True)
    return frame


@pytest.fixture(autouse=True)
def _reset_structlog():  # type: ignore[no-untyped-def]
    """CLI runs configure structlog onto the runner's streams; undo it after each test."""
    yield
    structlog.reset_defaults()
