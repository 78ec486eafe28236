"""vpp: a virtual power plant aggregator for zero-carbon industrial parks."""

from vpp.errors import (
    AdapterError,
    BidConflictError,
    ConfigError,
    ConfigIssue,
    DataQualityError,
    ExchangeError,
    InfeasibleError,
    InputError,
    InputFormatError,
    LookAheadError,
    MarketRuleError,
    OutputError,
    QualityError,
    SolverError,
    StoreError,
    StoreLockedError,
    StoreSchemaError,
    VppError,
)
from vpp.units import SIGN_CONVENTION

__version__ = "0.1.0"

__all__ = [
    "SIGN_CONVENTION",
    "AdapterError",
    "BidConflictError",
    "ConfigError",
    "ConfigIssue",
    "DataQualityError",
    "ExchangeError",
    "InfeasibleError",
    "InputError",
    "InputFormatError",
    "LookAheadError",
    "MarketRuleError",
    "OutputError",
    "QualityError",
    "SolverError",
    "StoreError",
    "StoreLockedError",
    "StoreSchemaError",
    "VppError",
    "__version__",
]
