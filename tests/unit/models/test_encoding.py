from __future__ import annotations

import numpy as np
import pyarrow as pa

from laborlm.models.encoding import (
    COVARIATE_NAMES,
    YEAR_MIN,
    collate,
    covariate,
    encode_panel,
    iter_batches,
    token_batches,
)
from laborlm.models.two_stage import NO_PREVIOUS
from laborlm.occupations import Taxonomy
from laborlm.schema import conform

TAX = Taxonomy.infer(["a", "b"])  # a=0, b=1, then unemployed=2, out_of_labor_force=3, in_school=4


def _two_people() -> pa.Table:
    """p1: a (2000), b (2001), b (2004: 3-year gap, now a graduate); p2: unemployed in 1930, nothing known."""
    return conform(
        pa.table(
            {
                "person_id": ["p1", "p1", "p1", "p2"],
                "year": pa.array([2000, 2001, 2004, 1930], pa.int32()),
                "occupation": ["a", "b", "b", "unemployed"],
                "education": ["high_school", "high_school", "bachelors", None],
                "region": ["CA", "CA", "CA", None],  # a state: encoded as its census region
                "gender": ["female"] * 3 + [None],
                "race": [None] * 3 + ["black"],
                "source": ["x"] * 4,
            }
        )
    )


def _col(name: str) -> int:
    return COVARIATE_NAMES.index(name)


def test_previous_job_and_covariates_of_the_target_year() -> None:
    enc = encode_panel(_two_people(), TAX)
    a, b, unemployed = TAX.index("a"), TAX.index("b"), TAX.index("unemployed")
    assert enc.target.tolist() == [a, b, b, unemployed]
    assert enc.prev.tolist() == [NO_PREVIOUS, a, b, NO_PREVIOUS]  # first years get the begin token
    assert enc.prev2.tolist() == [NO_PREVIOUS, NO_PREVIOUS, a, NO_PREVIOUS]
    cov = enc.covariates
    assert cov[:, _col("year")].tolist() == [
        2000 - YEAR_MIN,
        2001 - YEAR_MIN,
        2004 - YEAR_MIN,
        0,
    ]  # 1930 clipped
    education = covariate("education").values
    assert [education[i] for i in cov[:, _col("education")]] == [
        "high_school",
        "high_school",
        "bachelors",
        "<missing>",
    ]
    assert [covariate("gap").values[i] for i in cov[:, _col("gap")]] == ["first", "1", "3+", "first"]
    assert [covariate("region").values[i] for i in cov[:, _col("region")]] == ["west"] * 3 + ["<missing>"]
    assert [covariate("gender").values[i] for i in cov[:, _col("gender")]] == ["female"] * 3 + ["<missing>"]
    assert [covariate("race").values[i] for i in cov[:, _col("race")]] == ["<missing>"] * 3 + ["black"]
    assert enc.education_changed.tolist() == [False, False, True, False]
    assert enc.tenure.tolist() == [0, 1, 1, 0]
    assert enc.position.tolist() == [0, 1, 2, 0]
    assert enc.lengths.tolist() == [3, 1]


def test_collate_pads_on_the_right_and_keeps_step_alignment() -> None:
    enc = encode_panel(_two_people(), TAX)
    batch = collate(enc, np.array([1, 0]))
    assert batch.rows.tolist() == [[3, -1, -1], [0, 1, 2]]
    assert batch.mask.tolist() == [[True, False, False], [True, True, True]]
    assert batch.prev[1].tolist() == [NO_PREVIOUS, TAX.index("a"), TAX.index("b")]
    assert batch.prev[0].tolist() == [NO_PREVIOUS] * 3  # padding looks like a first year, and is masked
    # Step t carries the covariates of row t (the target year), not of the previous row.
    assert np.array_equal(batch.covariates[1].numpy(), enc.covariates[[0, 1, 2]])
    assert batch.n_tokens == 4
    empty = collate(enc, np.array([], dtype=np.int64))  # a worker without a share still gets a (masked) step
    assert empty.mask.shape == (1, 1) and not empty.mask.any()


def test_token_budget_and_row_order_round_trip() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, size=200)
    batches = token_batches(lengths, max_tokens=40)
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    assert all(len(b) * lengths[b].max() <= 40 for b in batches)
    shuffled = token_batches(lengths, max_tokens=40, rng=rng)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(200))
    assert [b.tolist() for b in token_batches(lengths, 40)] == [b.tolist() for b in batches]  # deterministic

    panel = _two_people()
    enc = encode_panel(panel, TAX)
    rows = np.concatenate([b.rows[b.mask].numpy() for b in iter_batches(enc, max_tokens=1)])
    assert sorted(rows.tolist()) == list(range(panel.num_rows))  # every row exactly once
