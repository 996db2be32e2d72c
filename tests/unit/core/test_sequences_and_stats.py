from __future__ import annotations

import pyarrow as pa
import pytest

from laborlm.errors import SchemaError
from laborlm.occupations import Taxonomy
from laborlm.schema import conform
from laborlm.sequences import CONSECUTIVE_REPEAT, FIRST, NEW_JOB, NONCONSECUTIVE_REPEAT, panel_arrays
from laborlm.stats import CAREER_TABLE7, format_stats, panel_stats


def _panel(rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows))
    return conform(
        pa.table(
            {
                "person_id": list(cols[0]),
                "year": pa.array(cols[1], pa.int32()),
                "occupation": list(cols[2]),
                "education": list(cols[3]),
                "gender": list(cols[4]),
                "source": ["psid"] * len(rows),
            }
        )
    )


ROWS = [
    ("a", 2000, "4", "high_school", "female"),
    ("a", 2001, "4", "high_school", "female"),
    ("a", 2003, "889", "bachelors", "female"),  # biennial gap, new job
    ("a", 2005, "4", "bachelors", "female"),  # return to a job held earlier
    ("b", 2001, "unemployed", None, None),
    ("b", 2002, "889", "less_than_high_school", None),
]


def test_panel_arrays_history_features() -> None:
    t = Taxonomy.default()
    arr = panel_arrays(_panel(ROWS), t)
    assert list(arr.position) == [0, 1, 2, 3, 0, 1]
    assert list(arr.gap) == [0, 1, 2, 2, 0, 1]
    assert list(arr.prev) == [-1, t.index("4"), t.index("4"), t.index("889"), -1, t.index("unemployed")]
    assert list(arr.prev2) == [-1, -1, t.index("4"), t.index("4"), -1, -1]
    assert list(arr.tenure) == [0, 1, 2, 1, 0, 1]
    assert list(arr.transition) == [FIRST, CONSECUTIVE_REPEAT, NEW_JOB, NONCONSECUTIVE_REPEAT, FIRST, NEW_JOB]
    assert list(arr.starts) == [0, 4] and arr.n_people == 2


def test_panel_arrays_rejects_unclustered_rows() -> None:
    rows = [ROWS[0], ROWS[4], ROWS[1]]
    with pytest.raises(SchemaError, match="clustered"):
        panel_arrays(_panel(rows), Taxonomy.default())


def test_stats_table7_rows() -> None:
    st = panel_stats(_panel(ROWS), Taxonomy.default())
    assert st.people == 2 and st.person_years == 6 and st.mean_sequence_length == 3.0
    assert st.special_states_available and st.demographics_available
    assert st.median_year == 2001.5
    assert st.pct_manual_laborers == pytest.approx(100 * 2 / 6)
    assert st.pct_college_graduates == pytest.approx(50.0)  # a ends with bachelors, b with less than HS
    assert st.occupation_change_share == pytest.approx(3 / 4)
    assert st.change_share_by_year == {2001: 0.0, 2002: 1.0, 2003: 1.0, 2005: 1.0}
    text = format_stats({"tiny": st}, reference=CAREER_TABLE7)
    for row in (
        "Number of individuals",
        "Average sequence length",
        "Median year",
        "Percent manual laborers",
        "Percent college graduates",
        "Demographic covariates available",
    ):
        assert row in text
    assert "| Percent manual laborers | 33% | 7% | 17% | 13% | 12% |" in text
