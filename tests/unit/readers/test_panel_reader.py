"""read_panel / write_panel / write_csv on CSV and Parquet files and folders."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ExpectProblem
from laborlm import schema
from laborlm.errors import InputDataError, LaborLMError
from laborlm.occupations import Taxonomy
from laborlm.readers import RejectWriter, read_panel, write_csv, write_panel

HEADER = "person_id,year,occupation,wage\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_reads_the_fixture_csv(small_panel_csv: Path) -> None:
    read = read_panel(small_panel_csv)
    assert read.taxonomy == Taxonomy.default()
    assert read.counts.to_dict() == {"rows_in": 7, "rows_kept": 7, "rows_rejected": 0}
    assert read.files == (small_panel_csv,)
    t = read.table
    assert t.schema == schema.PANEL_SCHEMA
    assert t.column("occupation").to_pylist() == [
        "4",
        "unemployed",
        "7",
        "in_school",
        "out_of_labor_force",
        "905",
        "889",
    ]
    assert t.column("education").to_pylist()[3] is None and t.column("wage").to_pylist()[:3] == [
        2.5,
        None,
        2.75,
    ]
    assert t.column("split").to_pylist() == ["train"] * 3 + [None] * 3 + ["test"]
    assert t.filter(pa.compute.equal(t.column("person_id"), "p3")).to_pylist()[0]["gender"] is None


def test_csv_and_parquet_round_trips_are_exact(small_panel_csv: Path, tmp_path: Path) -> None:
    original = read_panel(small_panel_csv)
    write_csv(original.table, tmp_path / "out" / "panel.csv")
    assert read_panel(tmp_path / "out" / "panel.csv").table.equals(original.table)
    shards = write_panel(original.table, tmp_path / "panel", original.taxonomy)
    assert [p.name for p in shards] == ["part-00000.parquet"]
    assert sorted(p.name for p in (tmp_path / "panel").iterdir()) == ["part-00000.parquet", "taxonomy.csv"]
    back = read_panel(tmp_path / "panel")
    assert back.table.equals(original.table)
    assert (
        back.taxonomy == Taxonomy.default() and back.taxonomy.name == "occ1990dd"
    )  # weights and aliases too


def test_headers_ignore_case_spaces_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", "\ufeff Person_ID ,YEAR, Occupation \r\na,1990,4\r\n")
    assert read_panel(path).table.column("person_id").to_pylist() == ["a"]


def test_shards_are_whole_persons_and_a_panel_folder_is_replaced_cleanly(tmp_path: Path) -> None:
    rows = [("a", 1990), ("a", 1991), ("a", 1992), ("b", 1990), ("c", 1990), ("c", 1991)]
    table = schema.conform(
        pa.table(
            {
                "person_id": [p for p, _ in rows],
                "year": pa.array([y for _, y in rows], pa.int32()),
                "occupation": ["4"] * 6,
                "source": ["s"] * 6,
            }
        )
    )
    shards = write_panel(table, tmp_path / "panel", Taxonomy.default(), rows_per_shard=2)
    persons = [set(pq.read_table(p).column("person_id").to_pylist()) for p in shards]
    assert persons == [{"a"}, {"b", "c"}]
    read = read_panel(tmp_path / "panel")
    assert read.table.equals(table) and read.files == tuple(shards)
    write_panel(table, tmp_path / "panel", Taxonomy.default())
    assert sorted(p.name for p in (tmp_path / "panel").iterdir()) == ["part-00000.parquet", "taxonomy.csv"]
    assert not list(tmp_path.glob(".panel.tmp-*"))
    write_panel(table.slice(0, 0), tmp_path / "empty", Taxonomy.default())
    assert read_panel(tmp_path / "empty").table.num_rows == 0


def test_write_panel_refuses_a_folder_it_did_not_write(tmp_path: Path, small_panel_csv: Path) -> None:
    read = read_panel(small_panel_csv)
    mine = write(tmp_path / "data" / "notes.txt", "keep me")
    with pytest.raises(LaborLMError, match="refusing to overwrite"):
        write_panel(read.table, tmp_path / "data", read.taxonomy)
    assert mine.read_text() == "keep me" and sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "notes.txt"
    ]


def test_folder_of_csv_shards_reports_problems_in_the_right_shard(
    tmp_path: Path, expect_problem: ExpectProblem
) -> None:
    write(tmp_path / "f" / "a.csv", HEADER + "p1,1990,4,1.0\n")
    write(tmp_path / "f" / "b.csv", "Occupation,person_id,YEAR\n7,p2,1990\n7,p3,19x0\n")
    write(tmp_path / "f" / "README.md", "not data")
    result = expect_problem(
        lambda r: read_panel(tmp_path / "f", rejects=r),
        file="b.csv",
        row=3,
        field="year",
        reason="not an integer year",
    )
    assert result is not None and result.table.column("person_id").to_pylist() == ["p1", "p2"]
    assert [p.name for p in result.files] == ["a.csv", "b.csv"]


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"a.csv": HEADER, "b.parquet": b""}, "mixes .csv and .parquet"),
        ({"notes.txt": "x"}, "holds no .csv or .parquet files"),
    ],
)
def test_unusable_folders(tmp_path: Path, files: dict[str, str | bytes], reason: str) -> None:
    for name, text in files.items():
        write(tmp_path / "f" / name, text)
    with pytest.raises(InputDataError, match=reason) as info:
        read_panel(tmp_path / "f")
    assert info.value.path == str(tmp_path / "f")


def test_missing_path_and_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="no such file or folder"):
        read_panel(tmp_path / "nope.csv")
    with pytest.raises(InputDataError, match="unsupported file type"):
        read_panel(write(tmp_path / "p.xlsx", "x"))


def test_ragged_csv_row_is_reported_at_its_editor_line(tmp_path: Path, expect_problem: ExpectProblem) -> None:
    # The quoted value spans lines 3-4, so the ragged row is on line 6 although it is the 5th record.
    path = write(
        tmp_path / "p.csv", HEADER + 'p1,1990,4,1.0\n"p\n2",1990,4,1.0\n\np3,1990,4\np4,1990,4,2.0\n'
    )
    result = expect_problem(
        lambda r: read_panel(path, rejects=r),
        file="p.csv",
        row=6,
        field=None,
        reason="has 3 field(s); the header has 4",
    )
    assert result is not None and result.counts.to_dict() == {
        "rows_in": 4,
        "rows_kept": 3,
        "rows_rejected": 1,
    }
    assert result.table.column("person_id").to_pylist() == ["p\n2", "p1", "p4"]


def test_a_bad_value_after_a_multi_line_value_is_reported_at_its_line(
    tmp_path: Path, expect_problem: ExpectProblem
) -> None:
    path = write(tmp_path / "p.csv", HEADER + '"p\r\n1",1990,4,1.0\np2,1990,4,"1\n\n0"\n')
    expect_problem(
        lambda r: read_panel(path, rejects=r), file="p.csv", row=4, field="wage", reason="not a finite number"
    )


def test_non_utf8_csv_names_the_line(tmp_path: Path, expect_problem: ExpectProblem) -> None:
    path = write(
        tmp_path / "p.csv",
        (HEADER + "p1,1990,4,1.0\np2,1990,4,1.0\n").encode() + "p3,1990,4,caf\u00e9\n".encode("latin-1"),
    )
    expect_problem(
        lambda r: read_panel(path, rejects=r),
        file="p.csv",
        row=4,
        field=None,
        reason="not UTF-8",
        whole_file=True,
    )
    header = write(tmp_path / "h.csv", b"person_id,y\xe9ar,occupation\n")
    with pytest.raises(InputDataError, match="not UTF-8") as info:
        read_panel(header)
    assert info.value.row == 1


def test_unbalanced_quote_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", HEADER + 'p1,1990,4,"1.0\np2,1990,4,1.0\n')
    with pytest.raises(InputDataError) as info:
        read_panel(path)
    assert info.value.path == str(path)


def test_empty_header_only_and_blank_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InputDataError, match="no header line") as info:
        read_panel(write(tmp_path / "empty.csv", ""))
    assert info.value.row == 1
    for text in ("person_id,year,occupation", "person_id,year,occupation\n"):
        read = read_panel(write(tmp_path / "header.csv", text))
        assert read.table.num_rows == 0 and read.counts.rows_in == 0
    with caplog.at_level(logging.INFO, logger="laborlm.readers.panel"):
        read = read_panel(write(tmp_path / "blank.csv", HEADER + "\np1,1990,4,1.0\n\n\n"))
    assert read.counts.to_dict() == {"rows_in": 1, "rows_kept": 1, "rows_rejected": 0}
    assert "skipped 3 blank line(s)" in caplog.text


def test_corrupt_parquet_is_an_input_error(
    tmp_path: Path, small_panel_csv: Path, expect_problem: ExpectProblem
) -> None:
    garbage = write(tmp_path / "garbage.parquet", b"PAR1 this is not parquet")
    expect_problem(
        lambda r: read_panel(garbage, rejects=r),
        file="garbage.parquet",
        row=None,
        field=None,
        reason="not a readable Parquet file",
        whole_file=True,
    )
    shard = write_panel(read_panel(small_panel_csv).table, tmp_path / "panel", Taxonomy.default())[0]
    truncated = write(tmp_path / "truncated.parquet", shard.read_bytes()[:-30])
    with pytest.raises(InputDataError, match="not a readable Parquet file"):
        read_panel(truncated)


def test_parquet_written_by_pandas_with_nans_and_ints(tmp_path: Path, expect_problem: ExpectProblem) -> None:
    frame = pd.DataFrame(
        {
            "person_id": [1, 1, 2],
            "year": [1990, 1991, 1990],
            "occupation": [4, 7, 123456],
            "wage": [1.0, float("nan"), 2.0],
        }
    )
    frame.to_parquet(tmp_path / "p.parquet")
    result = expect_problem(
        lambda r: read_panel(tmp_path / "p.parquet", rejects=r),
        file="p.parquet",
        row=3,
        field="occupation",
        reason="not a code of the occupation taxonomy",
    )
    assert result is not None and result.table.column("wage").to_pylist() == [1.0, None]
    assert result.table.column("source").to_pylist() == ["p", "p"]  # the file's stem


def test_taxonomy_choices(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    soc = write(
        tmp_path / "soc.csv",
        "person_id,year,occupation\na,1990,11-1011\na,1991,unemployed\nb,1990,4\nc,1990,13-2011\n",
    )
    with caplog.at_level(logging.INFO, logger="laborlm.readers.layout"):
        inferred = read_panel(soc)
    assert inferred.taxonomy.codes[:3] == ("4", "11-1011", "13-2011") and len(inferred.taxonomy) == 6
    assert (
        "inferred from the data" in caplog.text and "only 1 of 3 distinct codes are occ1990dd" in caplog.text
    )
    mostly_occ = write(
        tmp_path / "occ.csv", "person_id,year,occupation\na,1990,11-1011\nb,1990,4\nc,1990,7\n"
    )
    with pytest.raises(InputDataError, match="'11-1011'"):
        read_panel(mostly_occ)
    assert read_panel(mostly_occ, taxonomy="infer").table.num_rows == 3
    custom = write(tmp_path / "codes.csv", "code,title\n11-1011,Chief Executives\n4,Four\n7,Seven\n")
    assert read_panel(mostly_occ, taxonomy=str(custom)).taxonomy.title("11-1011") == "Chief Executives"
    with pytest.raises(InputDataError, match="'11-1011'"):
        read_panel(soc, taxonomy="occ1990dd")
    folder = tmp_path / "folder"
    write(folder / "panel.csv", "person_id,year,occupation\na,1990,11-1011\n")
    write(folder / "taxonomy.csv", "code,title\n11-1011,Chief Executives\n")
    assert read_panel(folder).taxonomy.title("11-1011") == "Chief Executives"


def test_the_real_nls_panel_is_not_canonical_and_says_why(shared_data: Path) -> None:
    path = shared_data / "nlsyw_young_women_1968_1988_nlswork.csv"
    with pytest.raises(InputDataError) as info:
        read_panel(path)
    err = pickle.loads(pickle.dumps(info.value))
    assert err.path == str(path) and err.row is None and err.field == "person_id"
    assert "missing required column(s) person_id, occupation" in err.reason
    assert "unknown column(s) 'rownames', 'idcode'" in err.reason
    assert str(err).startswith(f"{path}: field 'person_id': missing required column(s)")


def test_rejects_of_several_files_share_one_writer(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", HEADER + "p1,1990,4,x\n")
    b = write(tmp_path / "b.csv", HEADER + "p1,1990,4,x\np2,1990,4,1\n")
    with RejectWriter(tmp_path / "rejects.jsonl") as rejects:
        counts = read_panel(a, rejects=rejects).counts + read_panel(b, rejects=rejects).counts
        assert rejects.rows_written == counts.rows_rejected == 2
