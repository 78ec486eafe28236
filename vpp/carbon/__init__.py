"""Carbon: emission factors as versioned data, interval intensity, accounting, the ledger.

Layer: foundation (part of ``vpp`` outside the runtime and drivers): strategies,
the runtime and the drivers may import it; it imports no other layer.
"""

from vpp.carbon.instruments import INSTRUMENT_KINDS, QUANTITY_UNIT, Instrument, InstrumentKind
from vpp.carbon.ledger import LedgerEntry, Retirement, check_period, read_certificates

__all__ = [
    "INSTRUMENT_KINDS",
    "QUANTITY_UNIT",
    "Instrument",
    "InstrumentKind",
    "LedgerEntry",
    "Retirement",
    "check_period",
    "read_certificates",
]
