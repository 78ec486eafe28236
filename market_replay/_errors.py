"""The price-data errors, now in the one error tree :mod:`vpp.errors`.

Import them from ``market_replay`` or ``vpp.errors``; this module only keeps
``market_replay.importers`` importing unchanged while other branches edit it
(drop it once that import names ``vpp.errors``).
"""

from __future__ import annotations

from vpp.errors import InputFormatError, QualityError

__all__ = ["InputFormatError", "QualityError"]
