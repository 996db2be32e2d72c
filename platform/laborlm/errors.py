"""The errors users see. Small on purpose, and every class pickles (Ray carries them between processes).

An exception whose ``__init__`` takes several arguments but hands one formatted string to
``super().__init__`` fails to unpickle. So each class passes its raw arguments to ``super().__init__`` and
formats in ``__str__``.
"""

from __future__ import annotations

from typing import Any


class LaborLMError(Exception):
    """Base class: the CLI turns these into a one-line message and exit code 2."""


class ConfigError(LaborLMError):
    """One or more problems in a config file or its overrides, all reported together."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(problems, source)
        self.problems = problems
        self.source = source

    def __str__(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        if len(self.problems) == 1:
            return prefix + self.problems[0]
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{prefix}{len(self.problems)} config problems:\n{lines}"


class InputDataError(LaborLMError):
    """Bad input data. Names the file, the 1-based row or line (as an editor shows it), the field and the value.

    ``row`` and ``field`` are ``None`` when the problem is with the file as a whole (unreadable, missing column).
    ``more`` counts further problems found in the same input, so a strict reader can report the first and say
    how many follow.
    """

    def __init__(
        self,
        path: str,
        row: int | None,
        field: str | None,
        reason: str,
        value: Any = None,
        more: int = 0,
    ) -> None:
        super().__init__(path, row, field, reason, value, more)
        self.path = str(path)
        self.row = row
        self.field = field
        self.reason = reason
        self.value = value
        self.more = more

    def __str__(self) -> str:
        where = self.path if self.row is None else f"{self.path}:{self.row}"
        what = f"field '{self.field}': " if self.field else ""
        value = f"{self.value!r} " if self.value is not None else ""
        tail = (
            f" (and {self.more} more problem{'s' if self.more != 1 else ''}; `laborlm data import --rejects FILE` keeps the good rows)"
            if self.more
            else ""
        )
        return f"{where}: {what}{value}{self.reason}{tail}"

    def to_record(self) -> dict[str, Any]:
        """The rejects-file form of this problem (one JSON object a line)."""
        return {
            "file": self.path,
            "row": self.row,
            "field": self.field,
            "value": _jsonable(self.value),
            "reason": self.reason,
        }


class SchemaError(LaborLMError):
    """A table does not match the canonical panel schema (wrong or missing columns, wrong types)."""


class CheckpointError(LaborLMError):
    """A checkpoint is missing, corrupt, or does not match the config it is resumed with."""


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
