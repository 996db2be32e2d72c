"""No NaN in any answer (issue 16, defect 2): strict JSON everywhere, and an empty split is an error, not `nan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laborlm.cli import main
from laborlm.errors import LaborLMError
from laborlm.occupations import Taxonomy
from laborlm.serving.careers import predict_careers


def _strict(text: str) -> Any:
    """json.loads that refuses NaN / Infinity (which Python's json accepts and writes by default)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _csv(path: Path, people: int) -> Path:
    rows = ["person_id,year,occupation,source"]
    rows += [
        f"p{i:03d},{2000 + t},{('4', '7', '889')[(i + t) % 3]},psid" for i in range(people) for t in range(2)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_stats_json_of_an_empty_panel_has_nulls_not_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("person_id,year,occupation,source\n")
    assert main(["-q", "data", "stats", str(empty), "--json"]) == 0
    stats = _strict(capsys.readouterr().out)
    assert stats["people"] == 0 and stats["median_year"] is None


def test_evaluate_on_an_empty_split_is_an_error_and_logs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "unigram"
    assert (
        main(
            [
                "-q",
                "fit",
                "unigram",
                "--panel",
                str(_csv(tmp_path / "big.csv", 60)),
                "--out",
                str(model),
                "--no-mlflow",
            ]
        )
        == 0
    )
    capsys.readouterr()
    one = _csv(tmp_path / "one.csv", 1)  # one person: the train split only (split seed 0)
    report = tmp_path / "eval" / "metrics.json"
    report.parent.mkdir()
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(model),
                "--panel",
                str(one),
                "--split",
                "valid",
                "--out",
                str(report),
            ]
        )
        == 2
    )
    assert (
        "the valid split (split seed 0) holds none of the panel's 2 person-years" in capsys.readouterr().err
    )
    assert (
        not report.exists() and not (report.parent / "mlflow.db").exists()
    )  # nothing written, nothing logged
    # A split with rows but without any stay: its stay AUC is undefined, written as null (strict JSON).
    out = tmp_path / "metrics.json"
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(model),
                "--panel",
                str(one),
                "--split",
                "all",
                "--out",
                str(out),
                "--no-mlflow",
            ]
        )
        == 0
    )
    metrics = _strict(out.read_text())
    assert metrics["person_years"] == 2 and metrics["stay_auc"] is None


class _NanModel:
    name = "broken"

    def __init__(self) -> None:
        self.taxonomy = Taxonomy.infer(["a", "b"])

    def log_probs(self, panel: Any) -> np.ndarray:
        return np.full((panel.num_rows, len(self.taxonomy)), np.nan)


def test_predict_refuses_to_answer_nan() -> None:
    with pytest.raises(LaborLMError, match="broken gave NaN probabilities for career"):
        predict_careers(_NanModel(), [{"history": [{"year": 2001, "occupation": "a"}]}], 2)
