"""The exception tree of vpp, documented in one place.

::

    VppError
    ├── InputError           a value given to a function or command is out of its domain
    │                        (also a ValueError, so ``except ValueError`` keeps working)
    ├── ConfigError          a config file is missing, malformed or inconsistent
    ├── DataQualityError     a price/profile file failed a quality check under policy "error"
    │   ├── InputFormatError a file is malformed; names the file, row and column
    │   └── QualityError     quality checks failed under policy "error"; carries the report
    ├── LookAheadError       a strategy asked for data not yet published at decision time
    ├── MarketRuleError      a bid breaks a market rule (names the rule)
    ├── AdapterError         a device could not be reached or answered nonsense
    ├── ExchangeError        the market gateway could not be reached or answered nonsense
    │   └── BidConflictError the exchange holds a bid/awards for us that we did not send
    ├── SolverError          an optimisation failed or was infeasible
    │   └── InfeasibleError  the model has no solution; names the binding constraint
    │       └── UnmetDemandError a heat/hydrogen demand cannot be met; names balance and interval
    ├── StoreError           the database could not be read or written
    │   ├── StoreLockedError another daemon holds the store's single-writer lock
    │   └── StoreSchemaError the store's schema is not this vpp's (says which command upgrades it)
    └── OutputError          an output file or folder cannot be written where asked

Catch the specific class; never ``except Exception`` in library code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


def _rebuild(cls: type[VppError], args: tuple[Any, ...], state: dict[str, Any]) -> VppError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class VppError(Exception):
    """Base class of every error raised on purpose by vpp."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole, fields included (parks are solved in worker processes, sweeps'
        # cells on Dask workers): the default would call __init__ with the message only.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class InputError(VppError, ValueError):
    """A value passed in is out of its domain: the message says what was given and what is allowed.

    It subclasses :class:`ValueError` too, so callers (and tests) that catch
    ``ValueError`` from the standard library's conventions keep working.
    """


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one config file.

    Rendered as ``file: field = value: message`` so a park owner can fix it
    without reading code.
    """

    file: str
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        if self.field:
            return f"{self.file}: {self.field} = {self.value!r}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(VppError):
    """One or more config files are invalid. ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DataQualityError(VppError):
    """A data file failed a quality check whose policy is ``error``."""


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

    ``report`` (a :class:`market_replay.QualityReport`, which this foundation
    module cannot name) holds every finding, so a caller can show all of them.
    """

    def __init__(self, message: str, report: Any) -> None:
        self.report = report
        super().__init__(message)


class LookAheadError(VppError):
    """Data was requested before it was published at the current decision time."""


class MarketRuleError(VppError):
    """A bid breaks a market rule. ``rule`` names it (e.g. ``price_cap``)."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"{rule}: {message}")


class AdapterError(VppError):
    """A device adapter failed: connection, timeout, malformed or stale data."""


class ExchangeError(VppError):
    """The exchange could not be reached, timed out, or sent an invalid answer."""


class SolverError(VppError):
    """An optimisation did not reach an optimal solution."""


class InfeasibleError(SolverError):
    """The optimisation problem is infeasible. ``constraint`` names the culprit if known."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        self.constraint = constraint
        super().__init__(message if constraint is None else f"{message} (constraint {constraint})")


class UnmetDemandError(InfeasibleError):
    """A heat or hydrogen demand cannot be met: ``balance`` names the node, ``interval`` when."""

    def __init__(self, message: str, *, balance: str, interval: dt.datetime) -> None:
        self.balance = balance
        self.interval = interval
        super().__init__(message, constraint=f"{balance}-balance")


class StoreError(VppError):
    """The store could not complete a transaction; nothing was written."""


class OutputError(VppError):
    """An output file or folder cannot be written where asked; what was there is unchanged."""


class BidConflictError(ExchangeError):
    """The exchange holds a bid or awards for our portfolio that are not what we sent."""


class StoreLockedError(StoreError):
    """Another daemon holds the store's single-writer lock; the message names it."""


class StoreSchemaError(StoreError):
    """The store's schema is older (or newer) than this vpp's; the message says what to run."""
