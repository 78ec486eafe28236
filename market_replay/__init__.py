"""Market data for replay: vendor importers, quality checks, canonical price files.

Public API::

    from market_replay import PriceFrame, read_prices, write_prices, import_prices

See ``docs/market-data.md``.
"""

from market_replay.canonical import PriceFrame, read_header, read_prices, write_prices
from market_replay.formats import FormatSpec, builtin_formats, get_format
from market_replay.importers import ImportResult, import_prices
from market_replay.quality import CHECKS, POLICIES, Policy, QualityIssue, QualityReport
from vpp.errors import InputFormatError, QualityError

__all__ = [
    "CHECKS",
    "POLICIES",
    "FormatSpec",
    "ImportResult",
    "InputFormatError",
    "Policy",
    "PriceFrame",
    "QualityError",
    "QualityIssue",
    "QualityReport",
    "builtin_formats",
    "get_format",
    "import_prices",
    "read_header",
    "read_prices",
    "write_prices",
]
