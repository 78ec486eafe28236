"""vpp: a virtual power plant aggregator for zero-carbon industrial parks."""

from vpp._exceptions import (
    AdapterError,
    ConfigError,
    ConfigIssue,
    DataQualityError,
    ExchangeError,
    InfeasibleError,
    LookAheadError,
    MarketRuleError,
    SolverError,
    StoreError,
    StoreLockedError,
    VppError,
)
from vpp.units import SIGN_CONVENTION

__version__ = "0.1.0"

__all__ = [
    "SIGN_CONVENTION",
    "AdapterError",
    "ConfigError",
    "ConfigIssue",
    "DataQualityError",
    "ExchangeError",
    "InfeasibleError",
    "LookAheadError",
    "MarketRuleError",
    "SolverError",
    "StoreError",
    "StoreLockedError",
    "VppError",
    "__version__",
]
