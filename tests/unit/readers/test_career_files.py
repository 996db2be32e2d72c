"""CAREER split files: our fixture and CAREER's sample, exact round trips, and every structural error."""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import ExpectProblem
from laborlm import schema
from laborlm.errors import InputDataError, LaborLMError
from laborlm.occupations import Taxonomy
from laborlm.readers import read_career_files, read_panel, write_career_files
from laborlm.readers.validate import sort_panel
from laborlm.splits import assign_splits


def persons(table: pa.Table) -> list[str]:
    return list(dict.fromkeys(table.column("person_id").to_pylist()))


def hand_made_panel() -> pa.Table:
    """Nulls, special states, every covariate CAREER files can carry, states and regions, two sources."""
    rows = [
        # person_id, year, occupation, education, region, gender, race, birth_year, source, split
        ("ann", 1990, "4", "high_school", "south", "female", "white", 1965, "psid", "train"),
        ("ann", 1991, "unemployed", None, "south", "female", "white", 1965, "psid", "train"),
        ("ann", 1993, "7", "bachelors", "south", "female", "white", 1965, "psid", "train"),
        ("bob", 2001, "in_school", "some_college", "CA", "male", None, None, "nlsy79", "valid"),
        ("bob", 2002, "out_of_labor_force", "some_college", "CA", "male", None, None, "nlsy79", "valid"),
        ("cy", 1999, "905", None, None, None, "hispanic", 1980, "psid", "test"),
        ("dee", 2010, "889", "doctorate", "west", "female", "asian", 1950, "resumes", "train"),
    ]
    names = [
        "person_id",
        "year",
        "occupation",
        "education",
        "region",
        "gender",
        "race",
        "birth_year",
        "source",
        "split",
    ]
    table = pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
    return sort_panel(schema.conform(table))


def test_reads_the_fixture_folder(career_small: Path) -> None:
    read = read_panel(career_small)  # read_panel dispatches to read_career_files
    assert read.taxonomy == Taxonomy.default()  # every code is occ1990dd: no inference
    assert read.counts.to_dict() == {"rows_in": 11, "rows_kept": 11, "rows_rejected": 0}
    t = read.table
    assert persons(t) == ["test-000001", "train-000001", "train-000002", "valid-000001"]
    train2 = t.filter(pc.equal(t.column("person_id"), "train-000002")).to_pydict()
    assert train2["occupation"] == ["889", "out_of_labor_force", "in_school", "905"]
    assert train2["education"] == [None, "high_school", "high_school", "high_school"]
    assert (train2["race"][0], train2["region"][0], train2["gender"][0]) == ("black", "CA", None)
    assert set(t.column("source").to_pylist()) == {"career_small"}  # the folder's name
    assert t.column("split").to_pylist() == ["test"] + ["train"] * 8 + ["valid"] * 2
    assert read_career_files(career_small, source="nlsy97").table.column("source").unique().to_pylist() == [
        "nlsy97"
    ]


def test_career_sample_data_imports_with_an_inferred_taxonomy(shared_data: Path) -> None:
    read = read_panel(shared_data / "career_sample_data")
    assert read.taxonomy.name == "inferred" and "15-2051" in read.taxonomy.codes
    t = read.table
    assert persons(t) == ["test-000001", "train-000001", "train-000002", "train-000003", "valid-000001"]
    split_of = dict(zip(t.column("person_id").to_pylist(), t.column("split").to_pylist(), strict=True))
    assert sorted(split_of.values()) == ["test", "train", "train", "train", "valid"]
    first = t.filter(pc.equal(t.column("person_id"), "train-000002")).to_pylist()
    assert [r["year"] for r in first] == [2005, 2006, 2010, 2011, 2012]
    assert (first[0]["race"], first[0]["region"], first[-1]["education"]) == ("black", "AL", "doctorate")
    assert read.counts.rows_in == read.counts.rows_kept == 43


def test_panel_to_career_files_to_panel_is_identical(tmp_path: Path) -> None:
    table = hand_made_panel()
    write_career_files(table, tmp_path / "career", Taxonomy.default())
    files = sorted(p.name for p in (tmp_path / "career").iterdir())
    kinds = [
        "birth_year",
        "education",
        "ethnicity",
        "gender",
        "job",
        "id",
        "location",
        "source",
        "year",
    ]
    assert files == sorted([f"{s}.{k}" for s in schema.SPLITS for k in kinds] + ["taxonomy.csv"])
    assert (tmp_path / "career" / "train.job").read_text() == "4 unemployed 7\n889\n"
    assert (tmp_path / "career" / "valid.job").read_text() == "education not_in_labor_force\n"
    assert (tmp_path / "career" / "train.education").read_text() == "high_school NA bachelors\ndoctorate\n"
    assert (tmp_path / "career" / "valid.ethnicity").read_text() == "NA\n"
    back = read_career_files(tmp_path / "career")
    assert back.table.equals(table)
    assert back.taxonomy == Taxonomy.default()


def test_covariate_files_are_written_only_when_they_hold_a_value(tmp_path: Path) -> None:
    table = hand_made_panel().drop_columns(["birth_year", "gender"])
    write_career_files(table, tmp_path / "career", Taxonomy.default())
    assert not list((tmp_path / "career").glob("*.birth_year")) and not list(
        (tmp_path / "career").glob("*.gender")
    )
    assert read_career_files(tmp_path / "career").table.equals(schema.conform(table))


def test_a_panel_without_splits_comes_back_with_the_derived_splits(tmp_path: Path) -> None:
    table = hand_made_panel().drop_columns(["split"])
    write_career_files(table, tmp_path / "career", Taxonomy.default())
    expected = assign_splits(schema.conform(table))
    assert read_career_files(tmp_path / "career").table.equals(expected)


def test_career_sample_round_trips_with_its_inferred_taxonomy(shared_data: Path, tmp_path: Path) -> None:
    first = read_panel(shared_data / "career_sample_data")
    write_career_files(first.table, tmp_path / "copy", first.taxonomy)
    second = read_panel(tmp_path / "copy")
    assert second.table.equals(first.table) and second.taxonomy == first.taxonomy
    write_career_files(second.table, tmp_path / "copy", second.taxonomy)  # replacing its own folder is fine


def test_wage_and_weight_are_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = hand_made_panel()
    table = table.set_column(
        table.schema.get_field_index("wage"), "wage", pa.array([1.0] + [None] * 6, pa.float64())
    )
    with caplog.at_level(logging.WARNING, logger="laborlm.readers.career_files"):
        write_career_files(table, tmp_path / "career", Taxonomy.default())
    assert "CAREER files carry no wage/weight/oracle_logp: 1 wage values not written" in caplog.text
    assert read_career_files(tmp_path / "career").table.column("wage").null_count == 7


def test_writer_refuses_tokens_with_spaces_and_foreign_folders(tmp_path: Path) -> None:
    table = hand_made_panel()
    spaced = table.set_column(0, "person_id", pc.replace_substring(table.column("person_id"), "ann", "an n"))
    with pytest.raises(LaborLMError, match="'an n' is empty or contains whitespace"):
        write_career_files(spaced, tmp_path / "a", Taxonomy.default())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "train.job.bak").write_text("x\n")
    with pytest.raises(LaborLMError, match="refusing to overwrite"):
        write_career_files(table, tmp_path / "b", Taxonomy.default())


def read_with(folder: Path) -> object:
    return lambda rejects: read_career_files(folder, rejects=rejects)


def test_line_count_mismatch(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "train.education").write_text("high_school high_school some_college bachelors\n")
    expect_problem(
        read_with(career_small),
        file="train.education",
        row=2,
        field="education",
        reason="has 1 lines but train.job has 2",
        whole_file=True,
    )


def test_per_line_token_count_mismatch(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "train.year").write_text("2000 2001 2002 2004\n1990 1991 1992\n")
    result = expect_problem(
        read_with(career_small),
        file="train.year",
        row=2,
        field="year",
        reason="has 3 tokens but line 2 of train.job has 4",
    )
    assert result is not None and "train-000002" not in persons(result.table)
    assert result.counts.to_dict() == {"rows_in": 11, "rows_kept": 7, "rows_rejected": 4}


def test_static_file_with_two_tokens(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "train.gender").write_text("female\nfemale male\n")
    expect_problem(
        read_with(career_small),
        file="train.gender",
        row=2,
        field="gender",
        reason="a .gender file holds one token per line, found 2",
    )


def test_missing_trailing_newline(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "valid.year").write_text("2010 2011")
    expect_problem(
        read_with(career_small),
        file="valid.year",
        row=1,
        field=None,
        reason="no newline at the end of the last line",
        whole_file=True,
    )


def test_years_out_of_order(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "train.year").write_text("2000 2001 2002 2004\n1990 1992 1991 1993\n")
    expect_problem(
        read_with(career_small), file="train.year", row=2, field="year", reason="years out of order"
    )
    (career_small / "train.year").write_text(
        "2000 2001 2002 2004\n1990 1990 1991 1993\n"
    )  # a repeat is no increase
    expect_problem(
        read_with(career_small), file="train.year", row=2, field="year", reason="years out of order"
    )


def test_empty_line(career_small: Path, expect_problem: ExpectProblem) -> None:
    for kind in ("job", "year", "education"):
        (career_small / f"valid.{kind}").write_text("\n")
    result = expect_problem(
        read_with(career_small), file="valid.job", row=1, field="occupation", reason="empty line"
    )
    assert result is not None and result.counts.rows_rejected == 1


def test_unknown_code_and_bad_values_are_named_in_their_own_file(
    career_small: Path, expect_problem: ExpectProblem
) -> None:
    (career_small / "train.job").write_text("4 7 unemployed 7\n889 not_in_labor_force education 9999\n")
    result = expect_problem(
        lambda r: read_career_files(career_small, rejects=r, taxonomy="occ1990dd"),
        file="train.job",
        row=2,
        field="occupation",
        reason="not a code of the occupation taxonomy",
    )
    assert result is not None and result.counts.rows_rejected == 1  # only that person-year
    (career_small / "train.job").write_text("4 7 unemployed 7\n889 not_in_labor_force education 905\n")
    (career_small / "test.gender").write_text("robot\n")
    expect_problem(
        read_with(career_small), file="test.gender", row=1, field="gender", reason="not a valid gender"
    )
    (career_small / "test.gender").write_text("female\n")
    (career_small / "valid.year").write_text("2010 20x1\n")
    expect_problem(
        read_with(career_small), file="valid.year", row=1, field="year", reason="not an integer year"
    )


def test_repeated_person_id_rejects_every_line_that_has_it(
    career_small: Path, expect_problem: ExpectProblem
) -> None:
    (career_small / "train.person_id").write_text("x1\nx2\n")
    (career_small / "valid.person_id").write_text("x1\n")
    (career_small / "test.person_id").write_text("x3\n")
    result = expect_problem(
        read_with(career_small),
        file="train.person_id",
        row=1,
        field="person_id",
        reason="person_id is on more than one line (also valid.person_id:1)",
    )
    assert result is not None and persons(result.table) == ["x2", "x3"]


def test_missing_files(career_small: Path) -> None:
    (career_small / "test.year").unlink()
    with pytest.raises(InputDataError, match="missing file \\(years are required\\)") as info:
        read_panel(career_small)
    assert Path(info.value.path).name == "test.year"
    (career_small / "test.year").write_text("1999\n")
    (career_small / "test.gender").unlink()
    with pytest.raises(InputDataError, match="other splits have gender files"):
        read_panel(career_small)


def test_id_files_keep_person_ids_and_are_checked_like_the_others(
    career_small: Path, expect_problem: ExpectProblem
) -> None:
    """Issue 15 item 5: ``{split}.id`` carries the survey's person ids through CAREER files."""
    for split, ids in (("train", "w17\nw42\n"), ("valid", "w3\n"), ("test", "w8\n")):
        (career_small / f"{split}.id").write_text(ids)
    read = read_panel(career_small)
    assert persons(read.table) == ["w17", "w3", "w42", "w8"]
    assert read.table.filter(pc.equal(read.table.column("person_id"), "w42")).num_rows == 4
    assert str(career_small / "train.id") in map(str, read.files)

    (career_small / "train.id").write_text("w17\n")  # one line short: alignment is lost
    expect_problem(
        read_with(career_small),
        file="train.id",
        row=2,
        field="person_id",
        reason="has 1 lines but train.job has 2",
        whole_file=True,
    )
    (career_small / "train.id").write_text("w17\nw 42\n")  # two tokens: that person is rejected
    expect_problem(
        read_with(career_small),
        file="train.id",
        row=2,
        field="person_id",
        reason="a .id file holds one token per line, found 2",
    )
    (career_small / "valid.id").unlink()
    with pytest.raises(InputDataError, match="missing file \\(other splits have id files\\)"):
        read_panel(career_small)
    (career_small / "valid.person_id").write_text("w3\n")  # the legacy name is read too ...
    (career_small / "train.id").write_text("w17\nw42\n")
    assert persons(read_panel(career_small).table) == ["w17", "w3", "w42", "w8"]
    (career_small / "valid.id").write_text("w3\n")  # ... but never beside an .id file
    with pytest.raises(InputDataError, match="both valid.id and valid.person_id"):
        read_panel(career_small)


def test_export_writes_id_files_that_carry_the_ids_back(tmp_path: Path) -> None:
    table = hand_made_panel()
    write_career_files(table, tmp_path / "career", Taxonomy.default())
    assert (tmp_path / "career" / "train.id").read_text() == "ann\ndee\n"
    assert not list((tmp_path / "career").glob("*.person_id"))
    assert persons(read_panel(tmp_path / "career").table) == ["ann", "bob", "cy", "dee"]


def test_split_files_without_their_job_file_are_an_error(career_small: Path, tmp_path: Path) -> None:
    """Issue 16 defect 4: test.year etc. without test.job used to drop the test persons silently."""
    (career_small / "test.job").unlink()
    with pytest.raises(InputDataError, match="missing file: test.year, .* but not test.job") as info:
        read_panel(career_small, rejects=None)
    assert Path(info.value.path).name == "test.job"
    # ... also when no split has a .job file at all (the folder is still recognised as CAREER files).
    only = tmp_path / "only_years"
    only.mkdir()
    (only / "train.year").write_text("1990\n")
    with pytest.raises(InputDataError, match="train.year is there but not train.job"):
        read_panel(only)


def test_non_utf8_career_file_names_the_line(career_small: Path, expect_problem: ExpectProblem) -> None:
    (career_small / "train.ethnicity").write_bytes(b"white\nbl\xe4ck\n")
    expect_problem(
        read_with(career_small),
        file="train.ethnicity",
        row=2,
        field=None,
        reason="not UTF-8",
        whole_file=True,
    )
