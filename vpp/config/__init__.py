"""Config files: typed specs and the validating loader."""

from vpp.config.loader import (
    ConfigSet,
    load_carbon_region,
    load_config,
    load_market,
    load_park,
    load_park_text,
    load_settings,
    load_sweep,
    resolve_path,
    validate_paths,
)
from vpp.config.models import (
    AssetSpec,
    BatterySpec,
    EvChargingSpec,
    FlexibleProcessSpec,
    MarketConfig,
    MarketRules,
    ParkConfig,
    PvSpec,
    Settings,
    SweepSpec,
)

__all__ = [
    "AssetSpec",
    "BatterySpec",
    "ConfigSet",
    "EvChargingSpec",
    "FlexibleProcessSpec",
    "MarketConfig",
    "MarketRules",
    "ParkConfig",
    "PvSpec",
    "Settings",
    "SweepSpec",
    "load_carbon_region",
    "load_config",
    "load_market",
    "load_park",
    "load_park_text",
    "load_settings",
    "load_sweep",
    "resolve_path",
    "validate_paths",
]
