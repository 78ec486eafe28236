"""Errors raised while reading price data.

Both derive from :class:`vpp.DataQualityError` so callers that only care
"the data was not usable" catch one class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vpp.errors import DataQualityError

if TYPE_CHECKING:
    from market_replay.quality import QualityReport


class InputFormatError(DataQualityError):
    """A file is malformed: it cannot be read as the format it claims to be.

    The message is one line naming the file, the row (1-based line number in
    the file, the header being row 1) and the column, e.g.
    ``prices.csv: row 17, column 'Datetime': cannot parse '2020-13-01' as ...``.
    """

    def __init__(
        self, file: str, message: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        where = [f"row {row}"] if row is not None else []
        if column is not None:
            where.append(f"column {column!r}")
        prefix = f"{file}: {', '.join(where)}: " if where else f"{file}: "
        super().__init__(prefix + message)


class QualityError(DataQualityError):
    """Quality checks found problems and the policy is ``error``.

    ``report`` holds every finding, so a caller can show all of them.
    """

    def __init__(self, message: str, report: QualityReport) -> None:
        self.report = report
        super().__init__(message)
