"""Shared constants and helpers of the market data tests."""

from __future__ import annotations

from pathlib import Path

from vpp.config import MarketConfig, load_market

REPO = Path(__file__).resolve().parents[2]
MARKETS = REPO / "config" / "markets"

CN = "cn_province_a_spot_2025-05_2025-06_15min.csv"
NORDPOOL = "nordpool_dk1_dk2_spot_regulating_2016_hourly.csv"
ERCOT_DAM = "ercot_dam_spp_hubs_zones_2022-2024_hourly.csv"
ERCOT_RTM = "ercot_rtm_spp_hubs_zones_jan2022_jan2023_15min.csv"
ENTSOE = "entsoe_de_lu_day_ahead_2020-2022_hourly.csv"


def market(market_id: str) -> MarketConfig:
    return load_market(MARKETS / f"{market_id}.toml")
