"""Units and the single power sign convention of vpp.

**Sign convention (the only one in the code base).** A power value
``power_kw`` is measured at the point where an asset or a park meets the
grid:

* ``power_kw > 0``: power flows **into the grid** -- generation, battery
  discharge, export; in a market this is energy **sold**;
* ``power_kw < 0``: power is **drawn from the grid** -- consumption, battery
  charging, import; in a market this is energy **bought**.

Limits such as ``import_limit_kw`` or ``charge_power_kw`` are positive
magnitudes. Signs are flipped only at the edges: device adapters whose
protocol uses another convention, and exchange formats.

Energy always uses the actual interval length: ``energy_kwh = power_kw * dt_h``.
"""

from __future__ import annotations

KW_PER_MW = 1000.0
KWH_PER_MWH = 1000.0

SIGN_CONVENTION = "power_kw > 0 flows into the grid (sold); power_kw < 0 is drawn from it (bought)"


def kw_to_mw(power_kw: float) -> float:
    """Convert [kW] to [MW]."""
    return power_kw / KW_PER_MW


def energy_kwh(power_kw: float, dt_h: float) -> float:
    """Energy [kWh] of a constant power [kW] held for ``dt_h`` hours."""
    return power_kw * dt_h
