"""Career JSON -> canonical panel, validation messages naming career and field, and top-k answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laborlm import schema
from laborlm.cli import main
from laborlm.models.registry import load_model, saved_model_kind
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.serving.careers import (
    CareerInputError,
    careers_to_panel,
    parse_careers,
    predict_careers,
    read_careers,
    top_k,
)
from unit.llm.llm_world import tiny_taxonomy

TAX = tiny_taxonomy()
A, B, C = TAX.codes[0], TAX.codes[1], TAX.codes[2]


def career(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "person_id": "w1",
        "covariates": {
            "gender": "Female",
            "race": "black_or_african_american",
            "region": "CA",
            "birth_year": 1975,
        },
        "history": [
            {"year": 2001, "occupation": A, "education": "bachelors"},
            {"year": 2003, "occupation": B},
        ],
    }
    base.update(over)
    return base


def problems(careers: list[Any], taxonomy: Taxonomy = TAX) -> list[tuple[int, str]]:
    with pytest.raises(CareerInputError) as info:
        parse_careers(careers, taxonomy)
    return [(p.index, p.field) for p in info.value.problems]


def test_career_becomes_history_rows_plus_one_target_row() -> None:
    parsed = parse_careers([career(), {"history": [], "next_year": 1999, "source": "nlsy79"}], TAX)
    panel, targets = careers_to_panel(parsed, TAX)
    assert panel.schema == schema.PANEL_SCHEMA
    rows = panel.to_pylist()
    assert targets.tolist() == [2, 3]
    assert [r["year"] for r in rows] == [2001, 2003, 2004, 1999]  # default next_year = last + 1
    assert [r["person_id"] for r in rows] == ["00000000"] * 3 + ["00000001"]  # request order = panel order
    # Covariates are canonicalised and repeated on every row, the target row included.
    assert {(r["gender"], r["race"], r["region"], r["birth_year"]) for r in rows[:3]} == {
        ("female", "black", "CA", 1975)
    }
    # Education carries forward (to a history entry without it, and to the predicted year unless given);
    # the target's code is a placeholder.
    assert [r["education"] for r in rows[:3]] == ["bachelors", "bachelors", "bachelors"]
    assert rows[2]["occupation"] == B and rows[3]["occupation"] == TAX.codes[0]
    assert rows[3]["source"] == "nlsy79" and rows[0]["source"] == "psid"
    assert parsed[0].person_id == "w1" and parsed[1].person_id == "1"


def test_explicit_next_year_education_and_integer_codes() -> None:
    numeric = next(c for c in TAX.codes if c.isdigit())
    (c,) = parse_careers(
        [career(next_year=2005, education="masters", history=[{"year": 2001, "occupation": int(numeric)}])],
        TAX,
    )
    assert (c.next_year, c.next_education, c.occupations) == (2005, "masters", (numeric,))


def test_pandas_gaps_count_as_missing() -> None:
    """A DataFrame of careers where only some give next_year holds NaN (and floats) in that column."""
    (c,) = parse_careers([career(next_year=float("nan"), education=float("nan"))], TAX)
    assert c.next_year == 2004 and c.next_education == "bachelors"
    (c,) = parse_careers([career(next_year=2006.0)], TAX)
    assert c.next_year == 2006


@pytest.mark.parametrize(
    ("bad", "field", "text"),
    [
        (
            {"history": [{"year": 2001, "occupation": "9999"}]},
            "history[0].occupation",
            "'9999' is not in the occupation taxonomy",
        ),
        (
            {"history": [{"year": "2001", "occupation": A}]},
            "history[0].year",
            "must be an integer year, got str",
        ),
        ({"history": [{"occupation": A}]}, "history[0].year", "is required"),
        ({"history": [{"year": 2001}]}, "history[0].occupation", "is required"),
        (
            {"history": [{"year": 2001, "occupation": A, "wage": 3}]},
            "history[0].wage",
            "is not a history field",
        ),
        (
            {"history": [{"year": 2003, "occupation": A}, {"year": 2003, "occupation": B}]},
            "history[1].year",
            "after the previous",
        ),
        ({"history": "x"}, "history", "must be a list"),
        ({"history": None}, "history", "is required"),
        ({"history": []}, "history", "is empty"),
        ({"next_year": 2002}, "next_year", "after the last history year 2003"),
        ({"next_year": True}, "next_year", "must be an integer year"),
        ({"covariates": {"gender": "x"}}, "covariates.gender", "not a known gender"),
        ({"covariates": {"birth_year": 1800}}, "covariates.birth_year", "between 1900 and 2100"),
        ({"covariates": {"age": 3}}, "covariates.age", "is not a covariate"),
        ({"covariates": [1]}, "covariates", "must be a JSON object"),
        ({"education": "phd student"}, "education", "not a known education"),
        ({"source": "PSID!"}, "source", "must match"),
        ({"salary": 1}, "salary", "is not a career field"),
    ],
)
def test_validation_names_career_and_field(bad: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(CareerInputError) as info:
        parse_careers([career(), career(**bad)], TAX)
    message = str(info.value)
    assert f"career 1: field '{field}'" in message and text in message, message
    assert all(p.index == 1 for p in info.value.problems)


def test_every_problem_is_reported_once_and_nothing_is_scored() -> None:
    found = problems(
        [
            career(history=[{"year": "x", "occupation": "nope"}]),
            "not a career",
            career(covariates={"race": 5}),
        ]
    )
    assert found == [
        (0, "history[0].year"),
        (0, "history[0].occupation"),
        (1, "(career)"),
        (2, "covariates.race"),
    ]
    assert problems([]) == [(0, "(request)")]


def test_error_pickles_and_locates_in_a_file() -> None:
    import pickle

    with pytest.raises(CareerInputError) as info:
        parse_careers([career(), career(history=[{"year": 2001, "occupation": "9999"}])], TAX)
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)
    located = info.value.located("careers.jsonl", [1, 3])
    assert str(located).startswith("careers.jsonl:3: field 'history[0].occupation': '9999' is not in")


def test_top_k_is_sorted_and_deterministic_on_ties() -> None:
    logp = np.log(np.array([[0.1, 0.3, 0.3, 0.3], [0.7, 0.1, 0.1, 0.1]]))
    tax = Taxonomy(tiny_taxonomy().occupations[:1], name="one")  # K = 4 with the special states
    best = top_k(logp, tax, 3)
    assert [[b["code"] for b in row] for row in best] == [
        [tax.codes[1], tax.codes[2], tax.codes[3]],
        [tax.codes[0], tax.codes[1], tax.codes[2]],
    ]
    assert best[1][0] == {
        "code": tax.codes[0],
        "title": tax.occupations[0].title,
        "probability": pytest.approx(0.7),
    }
    assert len(top_k(logp, tax, 10)[0]) == 4


def check_answer(answer: list[dict[str, Any]], taxonomy: Taxonomy, k: int) -> None:
    for a in answer:
        probs = [b["probability"] for b in a["top_k"]]
        assert len(probs) == k and len({b["code"] for b in a["top_k"]}) == k
        assert all(b["code"] in taxonomy and b["title"] == taxonomy.title(b["code"]) for b in a["top_k"])
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert sum(probs) <= 1 + 1e-9


def test_predict_with_markov_matches_its_log_probs(markov: Any) -> None:
    answer = predict_careers(
        markov, [career(), career(person_id="w2", history=[{"year": 2001, "occupation": C}])], 4
    )
    assert [(a["person_id"], a["next_year"]) for a in answer] == [("w1", 2004), ("w2", 2002)]
    check_answer(answer, markov.taxonomy, 4)
    panel, targets = careers_to_panel(parse_careers([career()], markov.taxonomy), markov.taxonomy)
    expected = np.exp(markov.log_probs(panel)[targets[0]])
    assert answer[0]["top_k"][0]["probability"] == pytest.approx(expected.max())
    # All of the taxonomy sums to one.
    full = predict_careers(markov, [career()], len(markov.taxonomy))
    assert sum(b["probability"] for b in full[0]["top_k"]) == pytest.approx(1.0)


def test_predict_with_llm_from_the_shared_loader(saved_llm: Path) -> None:
    assert saved_model_kind(saved_llm) == "llm"
    model = load_model(saved_llm)
    assert type(model).__name__ == "LlmOccupationModel"
    answer = predict_careers(model, [career(), {"history": [], "next_year": 2000}], 3)
    check_answer(answer, model.taxonomy, 3)
    with pytest.raises(CareerInputError, match=r"params.top_k"):
        predict_careers(model, [career()], 0)


def test_saved_model_kind_rejects_other_folders(tmp_path: Path) -> None:
    from laborlm.errors import CheckpointError

    with pytest.raises(CheckpointError, match="no saved model here"):
        saved_model_kind(tmp_path)


def test_cli_predict_from_a_saved_folder(
    saved_markov: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "careers.jsonl"
    src.write_text(json.dumps(career()) + "\n\n" + json.dumps(career(person_id="w2")) + "\n")
    out = tmp_path / "preds.jsonl"
    assert (
        main(
            [
                "-q",
                "predict",
                "--model",
                str(saved_markov),
                "--input",
                str(src),
                "--top-k",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["person_id"] for p in preds] == ["w1", "w2"] and all(len(p["top_k"]) == 2 for p in preds)
    # A bad career is reported with its line in the file (line 3: the blank line 2 is skipped).
    src.write_text(
        json.dumps(career())
        + "\n\n"
        + json.dumps(career(history=[{"year": 2001, "occupation": "9999"}]))
        + "\n"
    )
    capsys.readouterr()
    assert main(["-q", "predict", "--model", str(saved_markov), "--input", str(src)]) == 2
    assert f"{src}:3: field 'history[0].occupation': '9999' is not in" in capsys.readouterr().err
    src.write_text("{not json\n")
    assert main(["-q", "predict", "--model", str(saved_markov), "--input", str(src)]) == 2
    assert f"{src}:1: not valid JSON" in capsys.readouterr().err


def test_read_careers_skips_blank_lines(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text('\n{"history": []}\n\n{"history": []}\n')
    assert read_careers(str(src)) == ([{"history": []}, {"history": []}], [2, 4])
