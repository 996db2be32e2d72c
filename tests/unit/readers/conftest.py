"""Fixtures of the reader tests: our tiny fixture files, and one checker for every kind of bad input."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from laborlm.errors import InputDataError
from laborlm.readers import PanelRead, RejectWriter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class ExpectProblem(Protocol):
    def __call__(
        self,
        read: Callable[[RejectWriter | None], PanelRead],
        *,
        file: str,
        row: int | None,
        field: str | None,
        reason: str,
        whole_file: bool = False,
    ) -> PanelRead | None: ...


@pytest.fixture
def small_panel_csv() -> Path:
    return FIXTURES / "panels" / "small_panel.csv"


@pytest.fixture
def career_small(tmp_path: Path) -> Path:
    """A writable copy of tests/fixtures/career_small (4 persons, occ1990dd codes, CAREER special tokens)."""
    return Path(shutil.copytree(FIXTURES / "career_small", tmp_path / "career_small"))


@pytest.fixture
def expect_problem(tmp_path: Path) -> ExpectProblem:
    """Check one bad input both ways a reader can meet it.

    Strict (no rejects): an InputDataError naming the file, row and field, with the row in its message.
    With a RejectWriter: the counts add up and rejects.jsonl holds a record with the same place and reason.
    A whole-file problem must raise in both modes and leave the rejects file empty.
    """
    counter = itertools.count()

    def check(
        read: Callable[[RejectWriter | None], PanelRead],
        *,
        file: str,
        row: int | None,
        field: str | None,
        reason: str,
        whole_file: bool = False,
    ) -> PanelRead | None:
        with pytest.raises(InputDataError) as info:
            read(None)
        err = info.value
        assert Path(err.path).name == file, str(err)
        assert (err.row, err.field) == (row, field), str(err)
        assert reason in err.reason, str(err)
        assert (f"{file}:{row}:" if row is not None else f"{file}:") in str(err)

        rejects_path = tmp_path / f"rejects-{next(counter)}" / "rejects.jsonl"
        with RejectWriter(rejects_path) as rejects:
            if whole_file:
                with pytest.raises(InputDataError):
                    read(rejects)
                assert rejects.rows_written == 0
                return None
            result = read(rejects)
        counts = result.counts
        assert counts.rows_in == counts.rows_kept + counts.rows_rejected
        assert counts.rows_rejected >= 1
        assert result.table.num_rows == counts.rows_kept
        records = [json.loads(line) for line in rejects_path.read_text(encoding="utf-8").splitlines()]
        assert set(records[0]) == {"file", "row", "field", "value", "reason"}
        assert any(
            Path(r["file"]).name == file and r["row"] == row and r["field"] == field and reason in r["reason"]
            for r in records
        ), records
        return result

    return check
