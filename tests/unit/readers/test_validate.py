"""validate_table on in-memory tables: each rule, strict and rejecting, and the canonical form it returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from laborlm import schema
from laborlm.errors import InputDataError
from laborlm.occupations import Taxonomy
from laborlm.readers import ReadCounts, RejectWriter, validate_table


def run(
    columns: dict[str, list[Any]],
    rejects: RejectWriter | None = None,
    source: str | None = "test",
    taxonomy: Taxonomy | None = None,
) -> tuple[pa.Table, ReadCounts]:
    raw = pa.table(columns)
    return validate_table(
        raw,
        path="mem.csv",
        row_numbers=np.arange(2, raw.num_rows + 2),
        taxonomy=taxonomy or Taxonomy.default(),
        rejects=rejects,
        source=source,
    )


def strict_error(columns: dict[str, list[Any]], **kwargs: Any) -> InputDataError:
    with pytest.raises(InputDataError) as info:
        run(columns, **kwargs)
    return info.value


def rejected(
    columns: dict[str, list[Any]], tmp_path: Path
) -> tuple[pa.Table, ReadCounts, list[dict[str, Any]]]:
    path = tmp_path / "rejects.jsonl"
    with RejectWriter(path) as rejects:
        table, counts = run(columns, rejects)
    assert counts.rows_in == counts.rows_kept + counts.rows_rejected == len(next(iter(columns.values())))
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return table, counts, records


def test_returns_the_canonical_table_sorted_with_normalised_values() -> None:
    table, counts = run(
        {
            " Person_ID ": ["b", "a", "a"],
            "YEAR": ["2001", " 1999 ", "1998"],
            "occupation": ["004", "not_in_labor_force", "889"],
            "education": ["High School Diploma", "bachelors", "NA"],
            "wage": ["1.5", "", "-0.25"],
            "gender": ["F", "male", "male"],
            "race": ["black_or_african_american", "asian", "asian"],
            "region": ["ca", "west", "west"],
            "split": ["Train", "", ""],
        }
    )
    assert table.schema == schema.PANEL_SCHEMA
    assert counts == ReadCounts(3, 3, 0)
    rows = table.to_pylist()
    assert [(r["person_id"], r["year"]) for r in rows] == [("a", 1998), ("a", 1999), ("b", 2001)]
    assert [r["occupation"] for r in rows] == ["889", "out_of_labor_force", "4"]
    assert [r["education"] for r in rows] == [None, "bachelors", "high_school"]
    assert [r["wage"] for r in rows] == [-0.25, None, 1.5]
    assert (rows[2]["gender"], rows[2]["race"], rows[2]["region"]) == ("female", "black", "CA")
    assert [r["split"] for r in rows] == [None, None, "train"]
    assert {r["source"] for r in rows} == {"test"}


def test_typed_columns_are_accepted() -> None:
    table, _ = run(
        {
            "person_id": pa.array([7, 7], pa.int64()),
            "year": pa.array([1990, 1991], pa.int64()),
            "occupation": pa.array(["4", "7"]).dictionary_encode(),
            "wage": pa.array([np.nan, 2.0]),
            "birth_year": pa.array([1970.0, 1970.0]),
        }
    )
    assert table.column("person_id").to_pylist() == ["7", "7"]
    assert table.column("wage").to_pylist() == [None, 2.0]
    assert table.column("birth_year").to_pylist() == [1970, 1970]


def test_empty_table_gives_an_empty_canonical_panel() -> None:
    table, counts = run(
        {
            "person_id": pa.array([], pa.string()),
            "year": pa.array([], pa.string()),
            "occupation": pa.array([], pa.string()),
        }
    )
    assert table.num_rows == 0 and table.schema == schema.PANEL_SCHEMA
    assert counts == ReadCounts(0, 0, 0)


def test_missing_required_column_is_a_whole_file_error() -> None:
    err = strict_error({"person_id": ["a"], "occupation": ["4"]})
    assert (err.path, err.row, err.field) == ("mem.csv", None, "year")
    assert (
        "missing required column(s) year" in err.reason
        and "the panel schema has columns person_id" in err.reason
    )


def test_unknown_and_repeated_columns_are_whole_file_errors() -> None:
    err = strict_error({"person_id": ["a"], "year": ["1990"], "occupation": ["4"], "occ_code": ["3"]})
    assert err.row is None and "unknown column(s) 'occ_code'" in err.reason and "oracle_logp" in err.reason
    raw = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array(["a"]), pa.array(["1990"]), pa.array(["4"])],
        names=["person_id", "Person_ID", "year", "occupation"],
    )
    with pytest.raises(InputDataError, match="appear more than once"):
        validate_table(
            raw,
            path="x.csv",
            row_numbers=np.array([2]),
            taxonomy=Taxonomy.default(),
            rejects=None,
            source="s",
        )


def test_a_column_without_a_text_or_number_form_is_a_whole_file_error() -> None:
    err = strict_error({"person_id": ["a"], "year": pa.array([True]), "occupation": ["4"]})
    assert (err.row, err.field) == (None, "year") and "not numeric" in err.reason


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("year", "19x0", "not an integer year"),
        ("year", "1990.5", "not an integer year"),
        ("year", "1850", "year outside 1900..2100"),
        ("year", "", "missing year"),
        ("occupation", "9999", "not a code of the occupation taxonomy 'occ1990dd'"),
        ("occupation", " ", "missing occupation"),
        ("person_id", "", "empty person_id"),
        ("wage", "abc", "not a finite number"),
        ("wage", "inf", "not a finite number"),
        ("weight", "1e999", "not a finite number"),
        ("weight", "-1", "negative weight"),
        ("birth_year", "seventy", "not an integer year"),
        ("birth_year", "1700", "birth_year outside 1800..2100"),
        ("oracle_logp", "x", "not a finite number"),
        ("education", "kindergarten", "not a valid education; allowed: less_than_high_school"),
        ("gender", "unknown", "not a valid gender; allowed: female, male"),
        ("race", "martian", "not a valid race"),
        ("region", "atlantis", "not a region; allowed: northeast"),
        ("source", "PSID", "source does not match"),
        ("split", "training", "not a split; allowed: train, valid, test"),
    ],
)
def test_row_rule(column: str, value: str, reason: str, tmp_path: Path) -> None:
    columns = {"person_id": ["a", "b"], "year": ["1990", "1990"], "occupation": ["4", "7"]}
    columns.setdefault(column, ["" if column != "source" else "ok", ""])
    columns[column] = [columns[column][0], value]
    err = strict_error(columns)
    assert (err.path, err.row, err.field, err.value) == ("mem.csv", 3, column, value)
    assert reason in err.reason and str(err).startswith(f"mem.csv:3: field '{column}': ")
    table, counts, records = rejected(columns, tmp_path)
    assert counts == ReadCounts(2, 1, 1) and table.column("person_id").to_pylist() == ["a"]
    assert records == [{"file": "mem.csv", "row": 3, "field": column, "value": value, "reason": err.reason}]


def test_null_tokens_mean_null_only_in_nullable_columns() -> None:
    table, _ = run(
        {
            "person_id": ["NA", "NA", "NA", "NA"],
            "year": ["1990", "1991", "1992", "1993"],
            "occupation": ["4", "4", "4", "4"],
            "education": ["NA", "", "nan", "N/A"],
            "wage": ["NaN", "null", "NA", "  "],
        }
    )
    assert table.column("person_id").to_pylist() == ["NA"] * 4  # a person may be called NA
    assert table.column("education").null_count == 4 and table.column("wage").null_count == 4


def test_source_column_argument_and_default() -> None:
    cols = {"person_id": ["a", "a"], "year": ["1990", "1991"], "occupation": ["4", "4"]}
    assert run(cols, source="nlsy79")[0].column("source").to_pylist() == ["nlsy79", "nlsy79"]
    assert run(cols | {"source": ["psid", "psid"]}, source="x")[0].column("source").to_pylist() == [
        "psid",
        "psid",
    ]
    assert run(cols | {"source": ["", ""]}, source="x")[0].column("source").to_pylist() == ["x", "x"]
    err = strict_error(cols, source=None)
    assert (err.row, err.field) == (None, "source") and "no source was given" in err.reason
    assert "does not match" in strict_error(cols, source="Bad Name").reason
    assert strict_error(cols | {"source": ["psid", ""]}, source=None).row == 3


def test_duplicate_person_year_rejects_the_whole_person(tmp_path: Path) -> None:
    columns = {
        "person_id": ["a", "b", "a", "a"],
        "year": ["1990", "1990", "1991", "1990"],
        "occupation": ["4", "4", "7", "22"],
    }
    err = strict_error(columns)
    assert (err.row, err.field, err.value, err.more) == (2, "year", "1990", 2)
    assert "person 'a' has year 1990 more than once; all 3 rows of this person are rejected" in err.reason
    table, counts, records = rejected(columns, tmp_path)
    assert counts == ReadCounts(4, 1, 3) and table.column("person_id").to_pylist() == ["b"]
    assert [r["row"] for r in records] == [2, 4, 5] and all("more than once" in r["reason"] for r in records)


def test_static_column_not_constant_rejects_the_whole_person(tmp_path: Path) -> None:
    columns = {
        "person_id": ["a", "a", "b", "b"],
        "year": ["1990", "1991", "1990", "1991"],
        "occupation": ["4", "4", "4", "4"],
        "gender": ["female", "F", "male", ""],
        "region": ["south", "south", "TX", "TX"],
    }
    table, counts, records = rejected(columns, tmp_path)
    assert table.column("person_id").to_pylist() == ["a", "a"]  # 'F' is 'female' after normalisation
    assert counts == ReadCounts(4, 2, 2)
    assert [(r["row"], r["field"]) for r in records] == [(4, "gender"), (5, "gender")]
    assert "static column 'gender' is not constant for person 'b' ('male', None)" in records[0]["reason"]


def test_first_problem_in_input_order_and_count_of_the_rest(tmp_path: Path) -> None:
    columns = {
        "person_id": ["a", "b", "c"],
        "year": ["1990", "x", "1990"],
        "occupation": ["4", "9999", "-1"],
        "wage": ["1", "y", "1"],
    }
    err = strict_error(columns)
    assert (err.row, err.field, err.more) == (3, "year", 3)  # row 3 has 3 problems, row 4 one
    assert "and 3 more problems" in str(err)
    _, counts, records = rejected(columns, tmp_path)
    assert counts == ReadCounts(3, 1, 2)
    assert records[0]["reason"] == "not an integer year (+2 more problems in this row)"


def test_row_numbers_must_match_the_table() -> None:
    with pytest.raises(ValueError, match="row_numbers"):
        validate_table(
            pa.table({"person_id": ["a"], "year": ["1990"], "occupation": ["4"]}),
            path="x",
            row_numbers=np.arange(2),
            taxonomy=Taxonomy.default(),
            rejects=None,
            source="s",
        )
