"""``vpp carbon report``: one park's carbon over a period, from stored interval books.

The rows come from a backtest folder's ``carbon.csv`` or from the daemon's
store (``carbon_intervals``, written with each settled day): per interval the
metered import, export and on-site renewable energy and the grid factors in
force. :func:`park_report` accounts them again with
:func:`vpp.carbon.accounting.account_park`, with the instruments retired for
the park in the period's months (the ledger): the certificates and
green-power contracts are matched (hourly where they carry delivery hours,
else annually), the offsets (CCER) are reported beside the gross emissions,
never inside scope 2 or the indicator (the 910号 indicator is gross).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vpp.carbon.accounting import (
    CLEAN_SHARE_GUIDE,
    GridFactors,
    ParkCarbon,
    ParkFlows,
    account_park,
)
from vpp.carbon.ledger import LedgerEntry
from vpp.config.models import ParkConfig
from vpp.errors import InputError

#: The interval columns a report accounts from.
COLUMNS = (
    "import_mwh",
    "export_mwh",
    "onsite_renewable_mwh",
    "intensity_tco2_per_mwh",
    "intensity_estimated",
    "annual_factor_tco2_per_mwh",
    "residual_factor_tco2_per_mwh",
)

__all__ = ["COLUMNS", "ParkReport", "park_report", "read_backtest_intervals"]


def read_backtest_intervals(folder: Path) -> pd.DataFrame:
    """``carbon.csv`` of a backtest folder, on a UTC ``interval_start`` index with ``park_id``."""
    path = folder / "carbon.csv"
    if not folder.is_dir():
        raise InputError(f"{folder}: no such backtest folder")
    if not path.is_file():
        raise InputError(f"{path}: not found; --backtest takes a folder written by vpp backtest")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc
    missing = [c for c in ("interval_start", "park_id", *COLUMNS) if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: columns {', '.join(missing)} missing; rerun vpp backtest")
    index = pd.to_datetime(frame["interval_start"], utc=True, errors="coerce")
    if index.isna().any():
        row = int(np.flatnonzero(index.isna().to_numpy())[0]) + 2
        raise InputError(f"{path}: row {row}: interval_start is not a timestamp")
    frame.index = pd.DatetimeIndex(index, name="interval_start")
    return frame.drop(columns=["interval_start"])


@dataclass(frozen=True)
class ParkReport:
    """One park's carbon over local days ``first`` .. ``last``."""

    park_id: str
    first: dt.date
    last: dt.date
    source: str
    books: ParkCarbon
    retired: tuple[LedgerEntry, ...]

    @property
    def offsets_tco2(self) -> float:
        return float(sum(e.instrument.quantity for e in self.retired if e.instrument.kind == "ccer"))

    @property
    def certificates_mwh(self) -> float:
        return float(
            sum(e.instrument.quantity for e in self.retired if e.instrument.kind != "ccer")
        )

    @property
    def gross_tco2(self) -> float | None:
        scope2 = self.books.scope2_tco2
        return None if scope2 is None else self.books.scope1_tco2 + scope2

    @property
    def gap_tco2_per_tce(self) -> float | None:
        """Indicator minus threshold (> 0: above it, by that much)."""
        books = self.books
        if books.intensity_tco2_per_tce is None or books.threshold_tco2_per_tce is None:
            return None
        return books.intensity_tco2_per_tce - books.threshold_tco2_per_tce

    @property
    def passes(self) -> bool | None:
        gap = self.gap_tco2_per_tce
        return None if gap is None else gap <= 0

    def as_dict(self) -> dict[str, Any]:
        b = self.books

        def r(value: float | None, digits: int = 4) -> float | None:
            return None if value is None else round(float(value), digits)

        gross = self.gross_tco2
        return {
            "park_id": self.park_id,
            "start": self.first.isoformat(),
            "end": self.last.isoformat(),
            "source": self.source,
            "intervals": len(b.intervals),
            "import_mwh": r(float(b.intervals["import_mwh"].sum())),
            "export_mwh": r(float(b.intervals["export_mwh"].sum())),
            "onsite_renewable_mwh": r(float(b.intervals["onsite_renewable_mwh"].sum())),
            "scope1_tco2": r(b.scope1_tco2),
            "scope2_location_tco2": r(b.location_tco2),
            "scope2_location_annual_tco2": r(b.location_annual_tco2),
            "scope2_market_tco2": r(b.market_tco2),
            "scope2_market_reason": b.market_reason,
            "matching": b.matching,
            "certificates_retired_mwh": r(self.certificates_mwh),
            "certificates_matched_mwh": r(b.matched_mwh),
            "offsets_retired_tco2": r(self.offsets_tco2),
            "gross_tco2": r(gross),
            "net_after_offsets_tco2": None if gross is None else r(gross - self.offsets_tco2),
            "energy_tce": r(b.energy_tce),
            "annual_energy_tce": r(b.annual_energy_tce, 1),
            "carbon_intensity_tco2_per_tce": r(b.intensity_tco2_per_tce),
            "carbon_intensity_basis": b.intensity_basis,
            "threshold_tco2_per_tce": b.threshold_tco2_per_tce,
            "threshold": b.threshold_note,
            "gap_tco2_per_tce": r(self.gap_tco2_per_tce),
            "passes": self.passes,
            "clean_energy_share": r(b.clean_energy_share),
            "clean_energy_share_guide": CLEAN_SHARE_GUIDE,
            "retired": [
                {"id": e.instrument.id, "kind": e.instrument.kind,
                 "quantity": e.instrument.quantity, "unit": e.instrument.unit,
                 "period": e.retirement.period if e.retirement else None}
                for e in self.retired
            ],
        }


def _local_days(index: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    return np.asarray(index.tz_convert(timezone).date)


def park_report(
    park: ParkConfig,
    intervals: pd.DataFrame,
    first: dt.date,
    last: dt.date,
    *,
    source: str,
    retired: Sequence[LedgerEntry] = (),
    matching: str = "hourly",
) -> ParkReport:
    """Account ``park``'s ``intervals`` (columns :data:`COLUMNS`, UTC index) of ``first`` .. ``last``.

    Refuses (one line) a period with no interval of the park in ``source``.
    """
    if first > last:
        raise InputError(f"--start {first} is after --end {last}; give start <= end")
    frame = intervals.sort_index()
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise InputError(f"{source}: interval starts must be tz-aware timestamps")
    days = _local_days(pd.DatetimeIndex(frame.index), park.timezone)
    frame = frame[(days >= first) & (days <= last)]
    if frame.empty:
        raise InputError(
            f"{source}: no carbon intervals of park {park.id} between {first} and {last}"
        )
    index = pd.DatetimeIndex(frame.index)
    flows = ParkFlows(
        park.id, index,
        frame["import_mwh"].to_numpy(float),
        frame["export_mwh"].to_numpy(float),
        frame["onsite_renewable_mwh"].to_numpy(float),
    )

    def factor(column: str) -> np.ndarray:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(float)

    reasons = {}
    if not np.isfinite(factor("residual_factor_tco2_per_mwh")).all():
        reasons["market"] = "no residual factor in force (see the market's carbon region file)"
    if not np.isfinite(factor("annual_factor_tco2_per_mwh")).all():
        reasons["location"] = "no location-based factor in force (see the carbon region file)"
    grid = GridFactors(
        factor("intensity_tco2_per_mwh"),
        frame["intensity_estimated"].astype(bool).to_numpy(),
        factor("annual_factor_tco2_per_mwh"),
        factor("residual_factor_tco2_per_mwh"),
        reasons,
    )
    entries = tuple(retired)
    scope2 = [e.instrument for e in entries if e.instrument.kind != "ccer"]
    books = account_park(
        flows, grid, instruments=scope2, matching=matching, fuels=park.fuels,
        days=float((last - first).days + 1), timezone=park.timezone,
    )
    return ParkReport(park.id, first, last, source, books, entries)
