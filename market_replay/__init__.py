"""Market data for replay: vendor importers, quality checks, canonical price files.

Public API::

    from market_replay import PriceFrame, read_prices, write_prices, import_prices

``PriceFrame`` (:mod:`market_replay.prices`) is the one in-memory price type:
its columns, their units and its errors are documented there. See
``docs/market-data.md``.
"""

from market_replay.canonical import read_header, read_prices, write_prices
from market_replay.formats import FormatSpec, builtin_formats, get_format
from market_replay.importers import ImportResult, import_prices
from market_replay.prices import (
    PRICE_COLUMNS,
    PriceFrame,
    PriceFrameError,
    PriceFrameTypeError,
    is_flag_column,
    is_price_column,
)
from market_replay.quality import CHECKS, POLICIES, Policy, QualityIssue, QualityReport
from vpp.errors import InputFormatError, QualityError

__all__ = [
    "CHECKS",
    "POLICIES",
    "PRICE_COLUMNS",
    "FormatSpec",
    "ImportResult",
    "InputFormatError",
    "Policy",
    "PriceFrame",
    "PriceFrameError",
    "PriceFrameTypeError",
    "QualityError",
    "QualityIssue",
    "QualityReport",
    "builtin_formats",
    "get_format",
    "import_prices",
    "is_flag_column",
    "is_price_column",
    "read_header",
    "read_prices",
    "write_prices",
]
