"""Coding a real survey without editing its file (issue 15 item 4): special states in a taxonomy file,
``--states``, ``--map`` and built-in spellings with their counts, ``--columns``, two-digit years, titles."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations import Taxonomy
from laborlm.readers import read_panel
from laborlm.readers.recode import ImportMaps
from laborlm.readers.rejects import Recoding
from laborlm.workflows.data import import_data

SURVEY = (
    "idcode,yr,occ,race,grade,extra\n"
    "1,70,3,hisp,12,x\n"
    "1,71,home,hisp,16,x\n"
    "1,73,3,hisp,college,x\n"
    "2,68,school,1,9,x\n"
    "2,99,1,1,NA,x\n"
)


def survey(tmp_path: Path, text: str = SURVEY, name: str = "survey.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def occupations(table: pa.Table) -> list[str]:
    return table.column("occupation").to_pylist()  # type: ignore[no-any-return]


def test_a_taxonomy_file_may_list_the_special_states(tmp_path: Path) -> None:
    """Used to be a ValueError traceback: ``duplicate codes: ['unemployed']``."""
    path = tmp_path / "groups.csv"
    path.write_text(
        "code,title\n1,Clerical\nunemployed,Unemployed\nOut of labor force,Out of the labor force\n"
        "In-School,Student\n2,Sales\n"
    )
    t = Taxonomy.from_csv(path)
    assert t.codes == ("1", "2", "unemployed", "out_of_labor_force", "in_school")
    assert (
        t.normalize("Out of labor force") == "out_of_labor_force" and t.normalize("in school") == "in_school"
    )
    # Deleting one line must not turn another state into an ordinary occupation.
    path.write_text("code,title\n1,Clerical\nOut of labor force,Out of the labor force\n")
    assert Taxonomy.from_csv(path).codes == ("1", "unemployed", "out_of_labor_force", "in_school")
    # A survey's own label is a state when --states says so, in the file as in the data.
    path.write_text("code,title\n1,Clerical\nhome,At home\n")
    assert "home" in Taxonomy.from_csv(path).codes  # without --states it is an occupation like any other
    with_states = Taxonomy.from_csv(path, states={"home": "out_of_labor_force"})
    assert with_states.codes == ("1", "unemployed", "out_of_labor_force", "in_school")
    assert with_states.normalize("Home") == "out_of_labor_force"
    assert Taxonomy.infer(["1", "Not in labor force", "home"], states={"home": "nilf"}).codes[:1] == ("1",)


def test_states_map_survey_labels_and_are_counted(tmp_path: Path) -> None:
    path = survey(tmp_path, "person_id,year,occupation\na,1990,4\na,1991,home\nb,1990,school\nb,1991,Home\n")
    with pytest.raises(InputDataError, match="'home' not a code"):
        read_panel(path, taxonomy="occ1990dd")  # without --states, 'home' is not an occupation
    maps = ImportMaps.from_flags(states="home=out_of_labor_force,school=in_school")
    read = read_panel(path, maps=maps)
    assert occupations(read.table) == ["4", "out_of_labor_force", "in_school", "out_of_labor_force"]
    assert set(read.recoded) == {
        Recoding("occupation", "home", "out_of_labor_force", 1, "states"),
        Recoding("occupation", "Home", "out_of_labor_force", 1, "states"),
        Recoding("occupation", "school", "in_school", 1, "states"),
    }
    with pytest.raises(ConfigError, match="'retired' is not a special state"):
        ImportMaps.from_flags(states="home=retired")


def test_maps_columns_and_two_digit_years_import_a_survey_as_it_is(tmp_path: Path) -> None:
    maps = ImportMaps.from_flags(
        columns="person_id=idcode,year=yr,occupation=occ,education=grade",
        ignore_columns="extra",
        maps=["race:1=white", "education:0-11=less_than_high_school,12=high_school,16=bachelors"],
        states="home=out_of_labor_force,school=in_school",
        two_digit_years=1930,
    )
    read = read_panel(survey(tmp_path), maps=maps, taxonomy="infer", source="nlsw")
    t = read.table.to_pydict()
    assert t["year"] == [1970, 1971, 1973, 1968, 1999]  # START 1930: 68 -> 1968, 99 -> 1999
    assert t["race"] == ["hispanic"] * 3 + ["white"] * 2  # NLSY's 'hisp' is a built-in spelling now
    assert t["education"] == ["high_school", "bachelors", "bachelors", "less_than_high_school", None]
    assert occupations(read.table) == ["3", "out_of_labor_force", "3", "in_school", "1"]
    assert read.ignored_columns == ("extra",)
    recoded = {(r.column, r.value, r.to, r.how): r.rows for r in read.recoded}
    assert recoded[("race", "hisp", "hispanic", "alias")] == 3
    assert recoded[("race", "1", "white", "map")] == 2
    assert recoded[("education", "college", "bachelors", "alias")] == 1  # used to be silent
    assert recoded[("education", "9", "less_than_high_school", "map")] == 1  # a LO-HI range
    assert recoded[("year", "two-digit", "1968..1999", "two_digit_years")] == 5
    # Years past START..START+99 wrap into the next century.
    wrapped = read_panel(
        survey(tmp_path), maps=replace(maps, two_digit_years=1970), taxonomy="infer", source="nlsw"
    )
    assert wrapped.table.column("year").to_pylist() == [1970, 1971, 1973, 1999, 2068]


def test_map_errors_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        ImportMaps.from_flags(
            columns="person=idcode", maps=["race:1=martian", "wage:1=2", "nonsense"], two_digit_years=19
        )
    text = str(info.value)
    for part in (
        "'person' is not a panel column",
        "'martian' is not a valid race",
        "only occupation",
        "'nonsense': expected COLUMN:LABEL=VALUE",
        "--two-digit-years: 19",
    ):
        assert part in text, text
    with pytest.raises(
        InputDataError, match="--columns person_id=pid: the file has no column 'pid'; its columns: idcode"
    ):
        read_panel(survey(tmp_path), maps=ImportMaps.from_flags(columns="person_id=pid"))


def test_two_digit_years_without_the_flag_say_which_flag(tmp_path: Path) -> None:
    path = survey(tmp_path, "person_id,year,occupation\na,70,4\n")
    with pytest.raises(
        InputDataError, match="two-digit years\\? `laborlm data import --two-digit-years 1900`"
    ):
        read_panel(path)


def test_parquet_columns_are_mapped_before_the_schema_check(tmp_path: Path) -> None:
    path = tmp_path / "survey.parquet"
    pq.write_table(pa.table({"idcode": [1, 1], "year": [70, 71], "occ_code": [4, 7], "age": [20, 21]}), path)
    maps = ImportMaps.from_flags(
        columns="person_id=idcode,occupation=occ_code", ignore_columns="*", two_digit_years=1900
    )
    read = read_panel(path, maps=maps, source="x")
    assert read.table.column("year").to_pylist() == [1970, 1971] and read.ignored_columns == ("age",)


def test_import_names_titles_and_warns_about_bare_codes_and_the_default_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = survey(tmp_path, "person_id,year,occupation\na,1990,1\na,1991,2\n", name="My Survey.csv")
    with caplog.at_level(logging.WARNING, logger="laborlm.workflows.data"):
        summary = import_data(path, tmp_path / "bare", taxonomy="infer")
    assert "a language model will see bare codes" in caplog.text
    assert "tagged source 'my_survey'" in caplog.text and summary.default_source == "my_survey"
    titles = tmp_path / "titles.csv"
    titles.write_text("code,title\n1,Professional workers\n2,Managers\n13,Other\nunemployed,Unemployed\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="laborlm.workflows.data"):
        import_data(path, tmp_path / "titled", taxonomy="infer", titles=titles, source="survey")
    assert "bare codes" not in caplog.text and "tagged source" not in caplog.text
    taxonomy = read_panel(tmp_path / "titled").taxonomy
    assert taxonomy.title("1") == "Professional workers" and taxonomy.title("2") == "Managers"
    other = tmp_path / "other.csv"
    other.write_text("code,title\n11-1011,Chief Executives\n")
    with pytest.raises(InputDataError, match="none of its codes is in the panel's taxonomy"):
        import_data(path, tmp_path / "wrong", taxonomy="infer", titles=other)


def test_summary_lists_every_recoding(tmp_path: Path) -> None:
    maps = ImportMaps.from_flags(
        columns="person_id=idcode,year=yr,occupation=occ",
        ignore_columns="*",
        maps=["race:1=white"],
        states="home=nilf,school=in_school",
        two_digit_years=1900,
    )
    lines = import_data(survey(tmp_path), tmp_path / "out", taxonomy="infer", maps=maps, source="s").lines()
    text = "\n".join(lines)
    assert lines[0].endswith("rows in 5 = kept 5 + rejected 0 (2 people, taxonomy inferred)")
    assert "recoded race (--map), rows: '1' -> white: 2" in text
    assert "recoded race (built-in spelling), rows: 'hisp' -> hispanic: 3" in text
    assert "recoded year (--two-digit-years): two-digit years -> 1968..1999 on 5 rows" in text
    assert "ignored columns: grade, extra" in text
