"""Carbon accounting per park and interval, from metered grid flows.

Rules (``docs/carbon.md`` says the same, with sources):

* **Flows.** Per interval, the park's metered grid import and export [MWh]
  (the net of its assets at the connection point in that interval; > 0
  export, the sign convention of :mod:`vpp.units`) and its on-site renewable
  (PV) generation [MWh].
* **On-site PV consumed on site counts zero**: it never passes the grid
  meter, so it is in no import. **Export does not reduce scope 2**: emissions
  are import x factor per interval; exported energy is neither subtracted
  from import nor credited (GHG Protocol Scope 2 Guidance: avoided emissions
  are not scope 2 reductions).
* **Scope 2 location-based** = import x the grid factor, two ways, both
  reported: with the interval intensity (:mod:`vpp.carbon.intensity`; the
  annual factor for intervals without an estimate) and with the annual
  location-based factor in force on each interval's day. Refused (None,
  with the reason) where a needed factor is missing.
* **Scope 2 market-based**: green-power contracts and certificates
  (``gec``, ``green_power``; 1 MWh each unit) cover import first, each MWh
  once, then the residual factor applies to the rest. Two matching rules:

  - ``hourly`` (GHG Protocol Scope 2 revision proposal, EnergyTag): an
    instrument with delivery hours covers import only in the clock hours its
    delivery window overlaps; instruments without delivery hours are not
    used. Within an hour the cover is spread over its intervals in
    proportion to their import; across hours, instruments whose window ends
    first are used first (which covers the most import).
  - ``annual`` (today's rule): every instrument covers import of the year of
    its vintage, in time order, up to its quantity.

  Offsets (``ccer``) are not scope 2 instruments and are ignored here.
  Refused (None, with the reason) where no residual factor exists.
* **Scope 1** from the fuels a park declares (``[[fuels]]``): quantity over
  the period x its emission factor.
* **Energy** (综合能源消费量) [tce] = (import - export + on-site generation)
  x :data:`ELECTRICITY_TCE_PER_MWH` + fuels x their ``tce_per_unit``:
  electricity at its calorific equivalent (当量值) of GB/T 2589-2020,
  0.1229 kgce/kWh.
* **Indicator** (单位能耗碳排放) = (scope 1 + scope 2) / energy [tCO2/tce],
  scope 2 market-based where available (the basis that lets green power
  count), else location-based; compared with the zero-carbon park notice's
  threshold for the park's size (annualised from the period): none below
  200,000 tce a year, 0.20 for 200,000-1,000,000, 0.30 above.
* **Clean-energy share** = (on-site renewable consumed on site + import
  covered by instruments) / energy, both at the calorific equivalent; the
  notice's guiding value is 90 %. On-site renewable consumed on site is the
  period's on-site generation minus the period's export (export is taken
  from on-site generation first, so PV stored in a battery and exported
  later is not counted as consumed), at least 0. The grid average's non-fossil share is
  not claimed (it belongs to whoever holds its certificates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from vpp.carbon.factors import FactorSet
from vpp.carbon.instruments import Instrument
from vpp.carbon.intensity import has_fundamentals, interval_intensity
from vpp.config.models import FuelSpec
from vpp.errors import InputError

#: Electricity to standard coal, calorific equivalent (当量值) [tce/MWh] = 0.1229 kgce/kWh:
#: GB/T 2589-2020 综合能耗计算通则, Appendix A. The 等价值 (about 0.3 kgce/kWh, the coal burnt
#: per kWh generated, revised each year) is not used: it is not a fixed published constant, and
#: the calorific value gives the smaller denominator, so the indicator errs high. (verify which
#: value the 910号 notice's accounting rules prescribe.)
ELECTRICITY_TCE_PER_MWH = 0.1229
ELECTRICITY_TCE_SOURCE = "GB/T 2589-2020 当量值 0.1229 kgce/kWh"
#: The zero-carbon park notice (发改环资〔2025〕910号): (lower, upper) annual energy use [tce]
#: -> the highest allowed tCO2 per tce. Below the first band no threshold is set.
THRESHOLDS: tuple[tuple[float, float, float], ...] = (
    (200_000.0, 1_000_000.0, 0.20),
    (1_000_000.0, math.inf, 0.30),
)
NOTICE = "发改环资〔2025〕910号"
CLEAN_SHARE_GUIDE = 0.90
Matching = Literal["hourly", "annual"]
MATCHING_RULES: tuple[str, ...] = ("hourly", "annual")
SCOPE2_KINDS = ("gec", "green_power")


# --------------------------------------------------------------------------- flows


@dataclass(frozen=True)
class ParkFlows:
    """One park's metered flows per interval [MWh], on a UTC index of interval starts."""

    park_id: str
    index: pd.DatetimeIndex
    import_mwh: np.ndarray
    export_mwh: np.ndarray
    onsite_renewable_mwh: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.index, pd.DatetimeIndex) or self.index.tz is None:
            raise TypeError("index must be a tz-aware DatetimeIndex of interval starts")
        for name in ("import_mwh", "export_mwh", "onsite_renewable_mwh"):
            values = np.asarray(getattr(self, name), dtype=float)
            if values.shape != (len(self.index),):
                raise InputError(
                    f"park {self.park_id}: {name} has {values.size} values for "
                    f"{len(self.index)} intervals"
                )
            if not np.isfinite(values).all() or (values < 0).any():
                raise InputError(
                    f"park {self.park_id}: {name} must be finite and >= 0 [MWh] (import and "
                    "export are magnitudes)"
                )
            object.__setattr__(self, name, values)

    @classmethod
    def from_net(
        cls,
        park_id: str,
        index: pd.DatetimeIndex,
        net_export_kwh: np.ndarray,
        onsite_renewable_kwh: np.ndarray | None = None,
    ) -> ParkFlows:
        """From the net metered energy per interval [kWh] (> 0 exported, :mod:`vpp.units`)."""
        net = np.asarray(net_export_kwh, dtype=float) / 1000.0
        pv = (
            np.zeros(len(index))
            if onsite_renewable_kwh is None
            else np.maximum(np.asarray(onsite_renewable_kwh, dtype=float), 0.0) / 1000.0
        )
        return cls(park_id, index, np.maximum(-net, 0.0), np.maximum(net, 0.0), pv)


# --------------------------------------------------------------------------- factors


@dataclass(frozen=True)
class GridFactors:
    """The factors of each interval [tCO2/MWh]; NaN where none is in force.

    ``intensity``: the interval estimate where the fundamentals allow one, the
    annual factor otherwise (``estimated`` says which); ``annual``: the
    location-based annual factor; ``residual``: the market-based residual factor.
    ``reasons`` says why a scope is missing (``"location"``, ``"market"``).
    """

    intensity: np.ndarray
    estimated: np.ndarray
    annual: np.ndarray
    residual: np.ndarray
    reasons: dict[str, str] = field(default_factory=dict)
    used: tuple[str, ...] = ()


def grid_factors(
    index: pd.DatetimeIndex,
    timezone: str,
    factors: FactorSet | None,
    *,
    area: str | None = None,
    fundamentals: pd.DataFrame | None = None,
    region_hint: str = "the market file",
) -> GridFactors:
    """The factors in force on each interval's local day, and the interval intensity.

    ``fundamentals``: the price frame's published columns (any index; the
    intervals of ``index`` are looked up); without them, or without a
    fossil-only factor, the intensity is the annual factor.
    """
    n = len(index)
    nan = np.full(n, np.nan)
    if factors is None:
        why = f"no carbon region: set carbon_region in {region_hint} (config/carbon/<region>.toml)"
        return GridFactors(nan, np.zeros(n, bool), nan, nan, {"location": why, "market": why})
    days = index.tz_convert(timezone).date
    annual, residual, fossil = nan.copy(), nan.copy(), nan.copy()
    reasons: dict[str, str] = {}
    used: set[str] = set()
    location_scope = "national_average" if area is None else _area_scope(factors, area)
    wanted = (
        (location_scope, annual, "location", area),
        ("residual", residual, "market", None),
        ("fossil_only", fossil, "interval", None),
    )
    for day in sorted(set(days)):
        at = days == day
        for scope, target, key, scope_area in wanted:
            found = factors.factor(scope, day, scope_area)
            if found is None:
                reasons.setdefault(key, factors.why_missing(scope, day, scope_area))
                continue
            target[at] = found.tco2_per_mwh
            used.add(found.label())
    intensity = annual.copy()
    estimated = np.zeros(n, bool)
    if fundamentals is not None and has_fundamentals(fundamentals):
        rows = fundamentals.reindex(index)
        for value in np.unique(fossil[np.isfinite(fossil)]):
            at = fossil == value
            estimate = interval_intensity(rows[at], float(value))["intensity_tco2_per_mwh"]
            good = estimate.notna().to_numpy()
            where = np.flatnonzero(at)[good]
            intensity[where] = estimate.to_numpy()[good]
            estimated[where] = True
    return GridFactors(intensity, estimated, annual, residual, reasons, tuple(sorted(used)))


def _area_scope(factors: FactorSet, area: str) -> str:
    """The scope of ``area``'s factors in the set (regional or provincial)."""
    scopes = {f.scope for f in factors.factors if f.area == area}
    if not scopes:
        raise InputError(f"{factors.where()}: no factor for area {area!r}")
    return sorted(scopes)[0]


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class MatchResult:
    """Import covered by instruments per interval [MWh] and each instrument's use [MWh]."""

    rule: str
    matched_mwh: np.ndarray
    used_mwh: dict[str, float]
    unused_mwh: dict[str, float]


def match_instruments(
    index: pd.DatetimeIndex,
    import_mwh: np.ndarray,
    instruments: Sequence[Instrument],
    rule: str = "hourly",
    *,
    timezone: str = "UTC",
    park_id: str | None = None,
) -> MatchResult:
    """Cover ``import_mwh`` with the scope-2 instruments under ``rule`` (module doc).

    Clock hours are UTC hours (the local hours of every market whose offset is
    whole hours); vintage years are local years. An instrument of another park
    is refused; offsets are left out.
    """
    if rule not in MATCHING_RULES:
        raise InputError(f"matching = {rule!r}: allowed {', '.join(MATCHING_RULES)}")
    imports = np.asarray(import_mwh, dtype=float)
    usable = []
    seen: set[str] = set()
    for item in instruments:
        if item.id in seen:
            raise InputError(f"instrument {item.id!r}: given twice; each MWh counts once")
        seen.add(item.id)
        if park_id is not None and item.park_id is not None and item.park_id != park_id:
            raise InputError(
                f"instrument {item.id!r}: belongs to park {item.park_id!r}, not {park_id!r}"
            )
        if item.kind in SCOPE2_KINDS:
            usable.append(item)
    left = {i.id: float(i.quantity) for i in usable}
    if rule == "hourly":
        matched = _match_hourly(index, imports, [i for i in usable if i.hourly], left)
    else:
        matched = _match_annual(index, imports, usable, left, timezone)
    used = {i.id: float(i.quantity) - left[i.id] for i in usable}
    return MatchResult(rule, matched, used, {k: v for k, v in left.items() if v > 1e-12})


def _match_hourly(
    index: pd.DatetimeIndex,
    imports: np.ndarray,
    instruments: list[Instrument],
    left: dict[str, float],
) -> np.ndarray:
    matched = np.zeros(len(imports))
    if not instruments or not len(imports):
        return matched
    hours = index.tz_convert("UTC").floor("h")
    per_hour = pd.Series(imports, index=hours).groupby(level=0).sum()
    hour = pd.Timedelta(hours=1)
    by_end = sorted(instruments, key=lambda i: (i.delivery_end, i.id))
    cover: dict[pd.Timestamp, float] = {}
    for start, need in per_hour.items():
        stamp = pd.Timestamp(start)
        need = float(need)
        for item in by_end:
            if need <= 0:
                break
            if left[item.id] <= 0:
                continue
            begins = pd.Timestamp(item.delivery_start).tz_convert("UTC")
            ends = pd.Timestamp(item.delivery_end).tz_convert("UTC")
            if begins < stamp + hour and ends > stamp:
                take = min(need, left[item.id])
                left[item.id] -= take
                need -= take
                cover[stamp] = cover.get(stamp, 0.0) + take
    for stamp, covered in cover.items():
        at = np.asarray(hours == stamp)
        total = imports[at].sum()
        matched[at] = imports[at] * (covered / total)
    return np.minimum(matched, imports)


def _match_annual(
    index: pd.DatetimeIndex,
    imports: np.ndarray,
    instruments: list[Instrument],
    left: dict[str, float],
    timezone: str,
) -> np.ndarray:
    matched = np.zeros(len(imports))
    years = np.asarray(index.tz_convert(timezone).year)
    for year in sorted(set(years.tolist())):
        pool = sorted((i for i in instruments if i.vintage == year), key=lambda i: i.id)
        for position in np.flatnonzero(years == year):
            need = imports[position]
            for item in pool:
                if need <= 0:
                    break
                take = min(need, left[item.id])
                if take > 0:
                    left[item.id] -= take
                    need -= take
                    matched[position] += take
    return matched


# --------------------------------------------------------------------------- indicator


def indicator_threshold(annual_tce: float) -> tuple[float | None, str]:
    """The notice's threshold [tCO2/tce] for a park using ``annual_tce`` a year, and a note."""
    for lower, upper, limit in THRESHOLDS:
        if lower <= annual_tce < upper:
            return (
                limit,
                f"{NOTICE}: <= {limit} tCO2/tce for parks using {lower:,.0f}-{upper:,.0f} tce/yr",
            )
    return None, (
        f"{NOTICE} sets no threshold below {THRESHOLDS[0][0]:,.0f} tce/yr "
        f"(this park: about {annual_tce:,.0f} tce/yr annualised)"
    )


# --------------------------------------------------------------------------- one park


@dataclass(frozen=True)
class ParkCarbon:
    """The carbon books of one park over a period (see the module doc).

    ``intervals`` holds one row per interval: ``import_mwh``, ``export_mwh``,
    ``onsite_renewable_mwh``, ``intensity_tco2_per_mwh``, ``intensity_estimated``,
    ``annual_factor_tco2_per_mwh``, ``residual_factor_tco2_per_mwh``,
    ``location_interval_tco2``, ``location_annual_tco2``, ``matched_mwh``,
    ``market_tco2``. Totals are None where refused, with the reason.
    """

    park_id: str
    intervals: pd.DataFrame
    days: float
    location_tco2: float | None
    location_annual_tco2: float | None
    location_reason: str | None
    market_tco2: float | None
    market_reason: str | None
    matching: str
    matched_mwh: float
    scope1_tco2: float
    energy_tce: float
    annual_energy_tce: float
    clean_energy_share: float | None
    intensity_tco2_per_tce: float | None
    intensity_basis: str | None
    threshold_tco2_per_tce: float | None
    threshold_note: str
    estimated_intervals: int
    factors_used: tuple[str, ...] = ()

    @property
    def scope2_tco2(self) -> float | None:
        """Scope 2 on the indicator's basis (market-based where available)."""
        return self.market_tco2 if self.market_tco2 is not None else self.location_tco2


def account_park(
    flows: ParkFlows,
    grid: GridFactors,
    *,
    instruments: Sequence[Instrument] = (),
    matching: str = "hourly",
    fuels: Sequence[FuelSpec] = (),
    days: float | None = None,
    timezone: str = "UTC",
) -> ParkCarbon:
    """The books of one park: scope 2 both ways, scope 1, energy, indicator, clean share.

    ``days``: the period's length for the fuels and the annualised size (by
    default the intervals' span).
    """
    index = flows.index
    imports = flows.import_mwh
    n = len(index)
    for name in ("intensity", "annual", "residual"):
        if getattr(grid, name).shape != (n,):
            raise InputError(f"grid factors: {name} has the wrong length for park {flows.park_id}")
    if days is None:
        step = (index[1] - index[0]) if n > 1 else pd.Timedelta(hours=1)
        days = n * (step / pd.Timedelta(days=1))
    match = match_instruments(
        index, imports, instruments, matching, timezone=timezone, park_id=flows.park_id
    )
    location_interval = imports * grid.intensity
    location_annual = imports * grid.annual
    market = (imports - match.matched_mwh) * grid.residual
    location_reason = grid.reasons.get("location")
    location_total = _total(location_interval)
    annual_total = _total(location_annual)
    market_total = _total(market)
    if market_total is None:
        market_reason = grid.reasons.get("market") or "no residual factor in force"
    else:
        market_reason = None
    if location_total is None and location_reason is None:
        location_reason = "no location-based factor in force on some interval"
    scope1 = float(sum(f.quantity(days) * f.emission_factor_tco2_per_unit for f in fuels))
    fuel_tce = float(sum(f.quantity(days) * f.tce_per_unit for f in fuels))
    consumed_mwh = float(imports.sum() - flows.export_mwh.sum() + flows.onsite_renewable_mwh.sum())
    energy_tce = max(consumed_mwh, 0.0) * ELECTRICITY_TCE_PER_MWH + fuel_tce
    annual_tce = energy_tce * 365.0 / days if days > 0 else 0.0
    # Over the period, export is taken from on-site generation first (a battery's evening
    # export of stored PV is PV); what stays on site is consumed on site.
    onsite_used = max(float(flows.onsite_renewable_mwh.sum() - flows.export_mwh.sum()), 0.0)
    clean_tce = (onsite_used + float(match.matched_mwh.sum())) * ELECTRICITY_TCE_PER_MWH
    clean_share = min(max(clean_tce / energy_tce, 0.0), 1.0) if energy_tce > 0 else None
    scope2 = market_total if market_total is not None else location_total
    basis = "market" if market_total is not None else "location" if scope2 is not None else None
    indicator = (scope1 + scope2) / energy_tce if scope2 is not None and energy_tce > 0 else None
    threshold, note = indicator_threshold(annual_tce)
    frame = pd.DataFrame(
        {
            "park_id": flows.park_id,
            "import_mwh": imports,
            "export_mwh": flows.export_mwh,
            "onsite_renewable_mwh": flows.onsite_renewable_mwh,
            "intensity_tco2_per_mwh": grid.intensity,
            "intensity_estimated": grid.estimated,
            "annual_factor_tco2_per_mwh": grid.annual,
            "residual_factor_tco2_per_mwh": grid.residual,
            "location_interval_tco2": location_interval,
            "location_annual_tco2": location_annual,
            "matched_mwh": match.matched_mwh,
            "market_tco2": market,
        },
        index=index,
    )
    frame.index.name = "interval_start"
    return ParkCarbon(
        park_id=flows.park_id,
        intervals=frame,
        days=float(days),
        location_tco2=location_total,
        location_annual_tco2=annual_total,
        location_reason=location_reason if location_total is None else None,
        market_tco2=market_total,
        market_reason=market_reason,
        matching=matching,
        matched_mwh=float(match.matched_mwh.sum()),
        scope1_tco2=scope1,
        energy_tce=energy_tce,
        annual_energy_tce=annual_tce,
        clean_energy_share=clean_share,
        intensity_tco2_per_tce=indicator,
        intensity_basis=basis,
        threshold_tco2_per_tce=threshold,
        threshold_note=note,
        estimated_intervals=int(grid.estimated.sum()),
        factors_used=grid.used,
    )


def _total(values: np.ndarray) -> float | None:
    """The sum, or None if any interval has no factor (NaN): never a partial total."""
    if len(values) and not np.isfinite(values).all():
        return None
    return float(values.sum())


# --------------------------------------------------------------------------- portfolio


@dataclass(frozen=True)
class CarbonBooks:
    """The carbon books of every park of a portfolio over one period."""

    parks: tuple[ParkCarbon, ...]
    carbon_price_per_t: float = 0.0

    def intervals(self) -> pd.DataFrame:
        """Every park's interval rows (long), sorted by interval and park."""
        if not self.parks:
            return pd.DataFrame()
        frame = pd.concat([p.intervals for p in self.parks]).reset_index()
        return frame.sort_values(["interval_start", "park_id"], kind="stable").reset_index(
            drop=True
        )

    def summary(self) -> dict[str, object]:
        """The portfolio's totals (the backtest's ``summary.json`` keys)."""
        parks = self.parks

        def total(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else round(float(sum(values)), 4)  # type: ignore[arg-type]

        location = total([p.location_tco2 for p in parks])
        annual = total([p.location_annual_tco2 for p in parks])
        market = total([p.market_tco2 for p in parks])
        scope1 = round(sum(p.scope1_tco2 for p in parks), 4)
        energy = sum(p.energy_tce for p in parks)
        scope2 = market if market is not None else location
        out: dict[str, object] = {
            "emissions_location_tco2": location,
            "emissions_location_annual_tco2": annual,
            "emissions_market_tco2": market,
            "emissions_scope1_tco2": scope1,
            "carbon_matching": parks[0].matching if parks else None,
            "carbon_energy_tce": round(energy, 4),
            "carbon_intensity_tco2_per_tce": round((scope1 + scope2) / energy, 4)
            if scope2 is not None and energy > 0
            else None,
            "carbon_intensity_basis": "market"
            if market is not None
            else "location"
            if location is not None
            else None,
            "clean_energy_share": _clean_share(parks, energy),
            "carbon_price_per_t": self.carbon_price_per_t,
        }
        reasons = {
            "emissions_location_reason": next(
                (p.location_reason for p in parks if p.location_reason), None
            ),
            "emissions_market_reason": next(
                (p.market_reason for p in parks if p.market_reason), None
            ),
        }
        out.update({k: v for k, v in reasons.items() if v})
        if out["carbon_intensity_tco2_per_tce"] is None:
            out["carbon_intensity_reason"] = (
                "no scope 2 factor" if scope2 is None else "no energy use in the period"
            )
        per_park = {
            p.park_id: {
                "annual_energy_tce": round(p.annual_energy_tce, 1),
                "intensity_tco2_per_tce": _round(p.intensity_tco2_per_tce),
                "threshold_tco2_per_tce": p.threshold_tco2_per_tce,
                "threshold": p.threshold_note,
                "clean_energy_share": _round(p.clean_energy_share),
            }
            for p in parks
        }
        out["carbon_parks"] = per_park
        return out


def _clean_share(parks: Sequence[ParkCarbon], energy_tce: float) -> float | None:
    if energy_tce <= 0:
        return None
    clean = sum((p.clean_energy_share or 0.0) * p.energy_tce for p in parks)
    return round(float(clean / energy_tce), 4)


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


__all__ = [
    "CLEAN_SHARE_GUIDE",
    "ELECTRICITY_TCE_PER_MWH",
    "ELECTRICITY_TCE_SOURCE",
    "MATCHING_RULES",
    "THRESHOLDS",
    "CarbonBooks",
    "GridFactors",
    "MatchResult",
    "ParkCarbon",
    "ParkFlows",
    "account_park",
    "grid_factors",
    "indicator_threshold",
    "match_instruments",
]
