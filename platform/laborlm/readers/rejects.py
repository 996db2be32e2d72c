"""Where dropped rows go: ``rejects.jsonl`` and the row counts that prove none was lost.

STYLE.md: readers never drop rows silently. A reader given a :class:`RejectWriter` writes each bad row there
as one JSON object ``{"file", "row", "field", "value", "reason"}`` (the fields of
:class:`~laborlm.errors.InputDataError`, ``row`` 1-based as an editor shows it) and returns the good rows
with a :class:`ReadCounts`, whose invariant ``rows_in == rows_kept + rows_rejected`` the corpus manifest and
MLflow record. Nor do readers change a value silently: a :class:`RecodeLog` counts every value that an import
map or a built-in spelling changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from laborlm.errors import InputDataError
from laborlm.paths import open_output_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadCounts:
    """Rows read from an input, split into kept and rejected; ``rows_in == rows_kept + rows_rejected``.

    A row is a person-year: a CSV data line, a Parquet row, or one token position of a CAREER line.
    """

    rows_in: int
    rows_kept: int
    rows_rejected: int

    def __post_init__(self) -> None:
        if min(self.rows_in, self.rows_kept, self.rows_rejected) < 0 or (
            self.rows_in != self.rows_kept + self.rows_rejected
        ):
            raise ValueError(f"inconsistent read counts: {self}")

    def __add__(self, other: ReadCounts) -> ReadCounts:
        return ReadCounts(
            self.rows_in + other.rows_in,
            self.rows_kept + other.rows_kept,
            self.rows_rejected + other.rows_rejected,
        )

    @property
    def rejected_fraction(self) -> float:
        """Share of input rows rejected (0 for an empty input); what a fail-fast threshold compares to."""
        return self.rows_rejected / self.rows_in if self.rows_in else 0.0

    def to_dict(self) -> dict[str, int]:
        """The manifest / MLflow form."""
        return asdict(self)


@dataclass(frozen=True)
class Recoding:
    """A value an import changed: ``rows`` input rows of ``column`` held ``value`` and now hold ``to``.

    ``how`` says what changed it: ``map`` (``--map``), ``states`` (``--states``), ``alias`` (a built-in
    spelling such as ``hisp`` or ``college``) or ``two_digit_years`` (``value`` is then the range of two-digit
    years seen and ``to`` the years they became). ``to`` is None where a map made the value missing.
    """

    column: str
    value: str
    to: str | None
    rows: int
    how: str


class RecodeLog:
    """Counts every recoding of one read, so that none is silent; summed across shards."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str | None, str], int] = {}

    def add(self, column: str, value: str, to: str | None, rows: int, how: str) -> None:
        if rows:
            key = (column, value, to, how)
            self._rows[key] = self._rows.get(key, 0) + rows

    def entries(self) -> tuple[Recoding, ...]:
        """The recodings by column, then by how (the user's maps before built-in spellings), most rows first."""
        items = [Recoding(c, v, t, n, h) for (c, v, t, h), n in self._rows.items()]
        return tuple(sorted(items, key=lambda r: (r.column, _HOW_ORDER.get(r.how, 9), -r.rows, r.value)))


_HOW_ORDER = {"map": 0, "states": 1, "two_digit_years": 2, "alias": 3}


class RejectWriter:
    """Writes rejected rows to a JSON-lines file, one object per row; use it as a context manager.

    The file (and its parent folders) is created afresh on construction, truncating what an earlier run left
    there, so an empty rejects file is proof that *this* run rejected nothing. Several inputs of one run
    share a rejects file by sharing one writer.

    Raises:
        LaborLMError: the file cannot be created (a folder by that name, a read-only or missing place).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Held open across writes and closed by close()/__exit__: this class is the context manager.
        self._file: IO[str] | None = open_output_file(self.path, "rejects file")
        self.rows_written = 0

    def write(self, problem: InputDataError) -> None:
        """Record one rejected row (or one rejected line of a CAREER file)."""
        if self._file is None:
            raise ValueError(f"rejects file {self.path} is closed")
        self._file.write(json.dumps(problem.to_record(), ensure_ascii=False) + "\n")
        self.rows_written += 1

    def write_all(self, problems: Iterable[InputDataError]) -> None:
        for problem in problems:
            self.write(problem)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            logger.debug("closed %s after %d reject record(s)", self.path, self.rows_written)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
