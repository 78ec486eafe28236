"""Carbon: emission factors as versioned data, interval intensity, accounting, the ledger.

Layer: foundation (part of ``vpp`` outside the runtime and drivers): strategies,
the runtime and the drivers may import it; it imports no other layer.
"""
