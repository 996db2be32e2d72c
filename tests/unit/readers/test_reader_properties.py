"""Property tests: whatever bytes a user hands the readers, the only exception out is InputDataError.

And when a read succeeds with a RejectWriter, no row is lost: rows_in == rows_kept + rows_rejected, and every
rejected row left a record.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laborlm.errors import InputDataError
from laborlm.readers import PanelRead, RejectWriter, read_panel

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that stress a CSV parser and the validator: separators, quotes, line breaks, invalid UTF-8,
# null tokens, codes in and out of the taxonomy, years in and out of range.
CSV_PIECES = st.sampled_from(
    [
        b",",
        b'"',
        b"\n",
        b"\r\n",
        b"\r",
        b" ",
        b"\xff",
        b"\xc3",
        b"\x00",
        b"NA",
        b"",
        b"p1",
        b"p2",
        b"4",
        b"905",
        b"9999",
        b"unemployed",
        b"1990",
        b"1991",
        b"19x0",
        b"-1",
        b"1e400",
        b"female",
        b"south",
        b"train",
        b"\xef\xbb\xbf",
    ]
)
HEADERS = st.sampled_from(
    [
        b"person_id,year,occupation\n",
        b"person_id,year,occupation,wage,gender,split\n",
        b"Person_ID , YEAR,occupation\r\n",
        b"person_id,year\n",
        b"person_id,person_id,year,occupation\n",
        b"",
        b"a,b,c\n",
    ]
)


def survives(read: Callable[[RejectWriter | None], PanelRead], folder: Path) -> None:
    """Strict and rejecting reads either succeed with consistent counts or raise InputDataError."""
    with contextlib.suppress(InputDataError):
        read(None)
    with RejectWriter(folder / "rejects.jsonl") as rejects:
        try:
            result = read(rejects)
        except InputDataError:
            return
        counts = result.counts
        assert counts.rows_in == counts.rows_kept + counts.rows_rejected
        assert result.table.num_rows == counts.rows_kept
        assert (
            rejects.rows_written <= counts.rows_rejected
        )  # a rejected CAREER line stands for its person-years
        assert (rejects.rows_written == 0) == (counts.rows_rejected == 0)


@PROPERTY
@given(
    header=HEADERS,
    body=st.one_of(
        st.lists(st.lists(CSV_PIECES, max_size=12), max_size=12).map(
            lambda ls: b"".join(b"".join(x) for x in ls)
        ),
        st.binary(max_size=512),
    ),
)
def test_random_csv_bytes(header: bytes, body: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panel.csv"
        path.write_bytes(header + body)
        survives(lambda rejects: read_panel(path, rejects=rejects), Path(tmp))


def _valid_parquet() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.parquet"
        pq.write_table(
            pa.table(
                {"person_id": ["a", "a", "b"], "year": [1990, 1991, 1990], "occupation": ["4", "7", "x"]}
            ),
            path,
        )
        return path.read_bytes()


VALID_PARQUET = _valid_parquet()


@PROPERTY
@given(
    data=st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda cut: VALID_PARQUET[:cut], st.integers(0, len(VALID_PARQUET))),
        st.builds(
            lambda at, byte: VALID_PARQUET[:at] + bytes([byte]) + VALID_PARQUET[at + 1 :],
            st.integers(0, len(VALID_PARQUET) - 1),
            st.integers(0, 255),
        ),
    )
)
def test_random_bytes_as_parquet(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "panel.parquet"
        path.write_bytes(data)
        survives(lambda rejects: read_panel(path, rejects=rejects), Path(tmp))


TOKENS = st.sampled_from(
    [
        "4",
        "7",
        "905",
        "9999",
        "unemployed",
        "education",
        "1990",
        "1991",
        "1992",
        "19x0",
        "NA",
        "female",
        "CA",
        "white",
        "bachelors",
        "x1",
        "\xe9",
    ]
)
LINE = st.lists(TOKENS, max_size=4).map(" ".join)
FILE = st.one_of(
    st.lists(LINE, max_size=4).map(lambda lines: "".join(line + "\n" for line in lines)),
    st.lists(LINE, min_size=1, max_size=4).map("\n".join),  # no final newline
)
KINDS = ["job", "year", "education", "location", "ethnicity", "gender", "id", "person_id", "birth_year"]


@PROPERTY
@given(
    files=st.dictionaries(
        st.tuples(st.sampled_from(["train", "valid", "test"]), st.sampled_from(KINDS)).map(".".join),
        FILE,
        max_size=12,
    ),
    latin1=st.booleans(),
)
def test_random_career_folders(files: dict[str, str], latin1: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "career"
        folder.mkdir()
        (folder / "train.job").write_text("4 7\n", encoding="utf-8")  # always a CAREER folder
        for name, text in files.items():
            (folder / name).write_bytes(text.encode("latin-1" if latin1 else "utf-8"))
        survives(lambda rejects: read_panel(folder, rejects=rejects), Path(tmp))
