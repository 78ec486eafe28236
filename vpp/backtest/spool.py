"""A table kept on disk, one chunk per backtest day, so a long run's memory stays flat.

:class:`SpooledFrame` appends each settled day's rows (a DataFrame) to an
anonymous temporary file (:func:`tempfile.TemporaryFile`: it has no name, so
nothing is left behind by a crash, and the operating system reclaims it when
the process ends). The report reads it back a chunk at a time
(:meth:`SpooledFrame.chunks`) or only the columns it needs
(:meth:`SpooledFrame.columns`); :meth:`SpooledFrame.frame` loads the whole
table (tests, short runs).

Chunks are pickled DataFrames written and read by this process only (never a
file from elsewhere), so values come back bit for bit: the outputs are the
same as from a table held in memory. Pickling a SpooledFrame (a result sent
back from a worker process) carries its rows by value.
"""

from __future__ import annotations

import pickle
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from typing import IO, Any

import pandas as pd


class SpooledFrame:
    """Rows of one table with fixed ``columns``, appended a chunk at a time to a temporary file."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.column_names = list(columns)
        self._file: IO[bytes] | None = None
        self._rows = 0
        self._chunks = 0

    def __len__(self) -> int:
        return self._rows

    def append(self, chunk: pd.DataFrame) -> None:
        """Write ``chunk`` (the table's columns, in order) at the end of the spool."""
        if list(chunk.columns) != self.column_names:
            raise ValueError(f"spool chunk columns {list(chunk.columns)} != {self.column_names}")
        if not len(chunk):
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="vpp-spool-")  # noqa: SIM115 - lives with self
            # closed (and so deleted) with the spool, without a ResourceWarning
            self._closer = weakref.finalize(self, self._file.close)
        self._file.seek(0, 2)
        pickle.dump(chunk, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._rows += len(chunk)
        self._chunks += 1

    def chunks(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """The chunks in the order appended (only ``columns`` of each, if given)."""
        if self._file is None:
            return
        self._file.seek(0)
        for _ in range(self._chunks):
            chunk: pd.DataFrame = pickle.load(self._file)
            yield chunk if columns is None else chunk[list(columns)]

    def columns(self, columns: Sequence[str]) -> pd.DataFrame:
        """The whole table's ``columns`` (the others are never held together)."""
        return self._concat(list(self.chunks(columns)), columns)

    def frame(self) -> pd.DataFrame:
        """The whole table in memory, with a fresh 0..n-1 index."""
        return self._concat(list(self.chunks()), self.column_names)

    @staticmethod
    def _concat(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
        if not parts:
            return pd.DataFrame(columns=list(columns))
        return pd.concat(parts, ignore_index=True)

    def close(self) -> None:
        """Drop the rows (the temporary file goes with them)."""
        if self._file is not None:
            self._closer()
        self._file, self._rows, self._chunks = None, 0, 0

    def __getstate__(self) -> dict[str, Any]:
        return {"columns": self.column_names, "chunks": list(self.chunks())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["columns"])  # type: ignore[misc]
        for chunk in state["chunks"]:
            self.append(chunk)
