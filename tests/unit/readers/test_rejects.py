from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from laborlm.errors import InputDataError, LaborLMError
from laborlm.readers import ReadCounts, RejectWriter, read_panel


def test_reject_writer_writes_json_lines_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run" / "rejects.jsonl"
    with RejectWriter(path) as rejects:
        assert path.exists()  # an empty rejects file proves nothing was rejected
        rejects.write(InputDataError("a.csv", 3, "year", "not an integer year", "19x0"))
        rejects.write_all([InputDataError("a.csv", None, None, "whole file", None)])
        assert rejects.rows_written == 2
        # a second input of the same run shares the writer
        rejects.write(InputDataError("b.csv", 2, "wage", "not a finite number", float("inf")))
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records[0] == {
        "file": "a.csv",
        "row": 3,
        "field": "year",
        "value": "19x0",
        "reason": "not an integer year",
    }
    assert records[1]["row"] is None
    assert records[2]["file"] == "b.csv" and isinstance(records[2]["value"], float)
    with pytest.raises(ValueError, match="closed"):
        rejects.write(InputDataError("c.csv", 1, None, "late"))


def test_read_counts_invariant() -> None:
    counts = ReadCounts(rows_in=10, rows_kept=7, rows_rejected=3)
    assert counts.rejected_fraction == pytest.approx(0.3)
    assert (counts + ReadCounts(2, 2, 0)).to_dict() == {"rows_in": 12, "rows_kept": 9, "rows_rejected": 3}
    assert ReadCounts(0, 0, 0).rejected_fraction == 0.0
    with pytest.raises(ValueError, match="inconsistent"):
        ReadCounts(rows_in=10, rows_kept=7, rows_rejected=2)


def test_input_data_error_from_a_reader_survives_pickling(tmp_path: Path) -> None:
    """Ray carries exceptions between processes by pickling them; every field must come back."""
    path = tmp_path / "panel.csv"
    path.write_text("person_id,year,occupation\np1,1990,4\np1,19x1,4\np2,1990,99999\n", encoding="utf-8")
    with pytest.raises(InputDataError) as info:
        read_panel(path)
    err = info.value
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, InputDataError)
    fields = ("path", "row", "field", "reason", "value", "more")
    assert [getattr(back, f) for f in fields] == [getattr(err, f) for f in fields]
    assert (back.row, back.field, back.value, back.more) == (3, "year", "19x1", 1)
    assert str(back) == str(err)


def test_each_run_writes_its_rejects_file_afresh(tmp_path: Path) -> None:
    """Issue 16 defect 3: a clean run must not leave an earlier run's rejects in place."""
    path = tmp_path / "rejects.jsonl"
    with RejectWriter(path) as rejects:
        rejects.write(InputDataError("a.csv", 3, "year", "not an integer year", "19x0"))
    with RejectWriter(path):
        pass  # a run that rejected nothing
    assert path.read_text(encoding="utf-8") == ""


def test_reject_writer_refuses_a_folder_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LaborLMError, match="rejects file is a folder"):
        RejectWriter(tmp_path)
