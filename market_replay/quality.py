"""Quality findings, the report, and the policies that act on them.

Checks (``QualityIssue.check``), each reported with a count, the first
examples and the local market days affected:

=================== ===========================================================
``out_of_order``    a row whose time is earlier than rows before it
``duplicate``       two rows for one interval (``identical`` or conflicting values)
``gap``             an interval between the first and last row with no row
``interval_mismatch`` the data's resolution differs from the market's product
                    interval on that day (day-ahead or real-time rule)
``dst_nonexistent`` a row at a local time that does not exist (spring forward)
``dst_ambiguous``   a local time of the fall-back hour that cannot be placed:
                    no DST flag in the format, the repeat is missing, or the flag
                    contradicts the rows
``zero_day``        a column that is exactly 0 for a whole local day (missing
                    data coded as 0)
``nan``             an empty or NaN value
``out_of_range``    a price below the floor or above the cap in force that day
=================== ===========================================================

Notes (``severity == "info"``) are facts worth knowing that need no policy:
``dst_placeholder`` (an empty row at a non-existent local time, removed: it
holds no data), ``dst_repeat`` (a repeated fall-back hour resolved by the
format's DST flag), ``dst_day`` (interval counts on DST days), ``join``.

Policies, chosen by the user; nothing is ever filled with a guessed value:

``error``
    any problem fails the import (:class:`QualityError`); nothing is written.
``drop-day``
    every local market day with a problem is removed whole.
``flag``
    every interval is kept on a complete grid; missing intervals are added
    with NaN values; values that the source did not really give (gap, NaN,
    zero-coded day, ambiguous DST hour, conflicting duplicate) are NaN; the
    others (out of range, out of order, identical duplicate, interval
    mismatch) keep their value. ``quality_flag`` and one ``flag_<check>``
    column mark every affected interval. Rows that cannot be placed on the
    time line at all (a non-existent local time) are left out and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import pandas as pd

Policy = Literal["error", "drop-day", "flag"]
POLICIES: tuple[str, ...] = ("error", "drop-day", "flag")
Severity = Literal["problem", "info"]

#: Report order of the checks.
CHECKS: tuple[str, ...] = (
    "out_of_order",
    "duplicate",
    "gap",
    "interval_mismatch",
    "dst_nonexistent",
    "dst_ambiguous",
    "zero_day",
    "nan",
    "out_of_range",
)
NOTES: tuple[str, ...] = ("dst_placeholder", "dst_repeat", "dst_day", "join")

#: Checks whose affected values are missing in the source: NaN under ``flag``.
BLANKING_CHECKS = frozenset({"gap", "dst_ambiguous", "zero_day", "nan"})

MAX_EXAMPLES = 3


@dataclass(frozen=True)
class QualityIssue:
    """What one check found in one column (``column`` None: whole rows)."""

    check: str
    source: str
    column: str | None
    count: int
    examples: tuple[str, ...]
    days: tuple[date, ...]
    severity: Severity = "problem"
    detail: str = ""
    #: UTC interval starts affected (used by the ``flag`` policy).
    intervals: pd.DatetimeIndex = field(
        default_factory=lambda: pd.DatetimeIndex([], tz="UTC"), repr=False, compare=False
    )
    #: Under ``flag``, the affected values are NaN (missing in the source).
    blank: bool = False

    @property
    def is_problem(self) -> bool:
        return self.severity == "problem"

    def days_text(self, limit: int = 4) -> str:
        if not self.days:
            return "-"
        shown = ", ".join(d.isoformat() for d in self.days[:limit])
        more = len(self.days) - limit
        return f"{len(self.days)}: {shown}" + (f", +{more} more" if more > 0 else "")


@dataclass
class QualityReport:
    """Everything the checks found in one import, and what the policy did."""

    sources: list[str]
    format: str
    market_id: str
    policy: str
    rows_read: int = 0
    issues: list[QualityIssue] = field(default_factory=list)
    intervals_written: int = 0
    days_dropped: tuple[date, ...] = ()
    outcome: str = ""

    @property
    def problems(self) -> list[QualityIssue]:
        return [i for i in self.issues if i.is_problem]

    @property
    def notes(self) -> list[QualityIssue]:
        return [i for i in self.issues if not i.is_problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_days(self) -> set[date]:
        return {d for i in self.problems for d in i.days}

    def counts(self) -> dict[str, int]:
        """Problem counts by check, in report order (e.g. ``{"gap": 24}``)."""
        out: dict[str, int] = {}
        for issue in sorted(self.problems, key=lambda i: CHECKS.index(i.check)):
            out[issue.check] = out.get(issue.check, 0) + issue.count
        return out

    def summary(self) -> str:
        """One line: ``gap=24 duplicate=1`` or ``clean``."""
        counts = self.counts()
        return " ".join(f"{k}={v}" for k, v in counts.items()) if counts else "clean"

    def action(self, issue: QualityIssue) -> str:
        """What the policy did about ``issue``, for the report table."""
        if not issue.is_problem:
            return "noted"
        if self.policy == "error":
            return "fails import"
        if self.policy == "drop-day":
            return f"dropped {len(issue.days)} day(s)"
        if issue.check == "dst_nonexistent":
            return "rows left out"
        return "flagged, set NaN" if issue.blank else "flagged"

    def sorted_issues(self) -> list[QualityIssue]:
        order = {name: i for i, name in enumerate((*CHECKS, *NOTES))}
        return sorted(
            self.issues, key=lambda i: (not i.is_problem, order.get(i.check, 99), i.source)
        )
