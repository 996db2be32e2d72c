"""Vectorised per-row views of a canonical panel: the history features every model, metric and stat needs.

A panel sorted by (person_id, year) is a concatenation of careers. Each row is one prediction target: its
occupation given the earlier rows of the same person. ``PanelArrays`` gives, for every row at once, the
occupation index, the previous and second-previous occupation, the position in the career, the tenure and
whether the target returns to a job held earlier, without a Python loop over rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm.errors import SchemaError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import OCCUPATION, PERSON_ID, YEAR

# Transition types of CAREER's Table 4, per target row.
FIRST = 0  # first observed year of a career: no previous job
CONSECUTIVE_REPEAT = 1  # same occupation as the previous observation (a "stay")
NONCONSECUTIVE_REPEAT = 2  # a move back to an occupation held earlier, not the previous one
NEW_JOB = 3  # a move to an occupation never held before
TRANSITION_NAMES = {
    FIRST: "first",
    CONSECUTIVE_REPEAT: "consecutive_repeat",
    NONCONSECUTIVE_REPEAT: "nonconsecutive_repeat",
    NEW_JOB: "new_job",
}


@dataclass(frozen=True)
class PanelArrays:
    """Aligned ``[n_rows]`` arrays for a panel sorted by person then year.

    ``prev`` and ``prev2`` are -1 where there is no such earlier observation. ``tenure`` counts the
    consecutive earlier observations with the same occupation as the previous one (0 for a first row).
    """

    occ: np.ndarray  # [n] int64 taxonomy index of the target occupation
    person: np.ndarray  # [n] int64 person ordinal (0..n_people-1) in table order
    position: np.ndarray  # [n] int64 0-based index of the row within its career
    year: np.ndarray  # [n] int64
    gap: np.ndarray  # [n] int64 years since the previous observation (0 for a first row)
    prev: np.ndarray  # [n] int64 previous occupation index or -1
    prev2: np.ndarray  # [n] int64 occupation two observations back or -1
    tenure: np.ndarray  # [n] int64 run length of the previous occupation up to the previous row
    transition: np.ndarray  # [n] int8 FIRST / CONSECUTIVE_REPEAT / NONCONSECUTIVE_REPEAT / NEW_JOB
    starts: np.ndarray  # [n_people] row index where each career starts

    @property
    def n_people(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return len(self.occ)


def panel_arrays(table: pa.Table, taxonomy: Taxonomy) -> PanelArrays:
    """Compute ``PanelArrays``; the table must be clustered by person with years strictly increasing.

    Raises:
        SchemaError: an occupation is not in the taxonomy, or rows are not clustered / ordered.
    """
    n = table.num_rows
    codes = table.column(OCCUPATION).to_pylist()
    occ = taxonomy.indices(codes)
    if n and (occ < 0).any():
        bad = codes[int(np.flatnonzero(occ < 0)[0])]
        raise SchemaError(f"occupation {bad!r} is not in taxonomy '{taxonomy.name}'")
    pid = table.column(PERSON_ID)
    year = np.asarray(table.column(YEAR).to_numpy(zero_copy_only=False), dtype=np.int64)
    if n == 0:
        e = np.zeros(0, dtype=np.int64)
        return PanelArrays(e, e, e, e, e, e, e, e, e.astype(np.int8), e)
    # A new career starts wherever the person id changes from the row before.
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = ~np.asarray(
            pc.equal(pid.slice(1), pid.slice(0, n - 1)).to_numpy(zero_copy_only=False), dtype=bool
        )
    starts = np.flatnonzero(new)
    person = np.cumsum(new) - 1
    n_people_seen = len(np.unique(np.asarray(pc.dictionary_encode(pid).combine_chunks().indices)))
    if n_people_seen != len(starts):
        raise SchemaError("panel rows are not clustered by person (sort by person_id, year first)")
    position = np.arange(n) - starts[person]
    gap = np.zeros(n, dtype=np.int64)
    gap[1:] = year[1:] - year[:-1]
    gap[new] = 0
    if (gap[~new] <= 0).any():
        raise SchemaError("years are not strictly increasing within a person")
    prev = np.full(n, -1, dtype=np.int64)
    prev[1:] = occ[:-1]
    prev[new] = -1
    prev2 = np.full(n, -1, dtype=np.int64)
    prev2[2:] = occ[:-2]
    prev2[position < 2] = -1
    # Tenure in the previous job: length of the run of equal codes ending at the previous row.
    same_as_before = np.zeros(n, dtype=bool)
    same_as_before[1:] = (occ[1:] == occ[:-1]) & ~new[1:]
    run_id = np.cumsum(~same_as_before)
    run_start = np.flatnonzero(~same_as_before)
    run_len_at = np.arange(n) - run_start[run_id - 1] + 1  # length of the run up to and including each row
    tenure = np.zeros(n, dtype=np.int64)
    tenure[1:] = run_len_at[:-1]
    tenure[new] = 0
    transition = np.full(n, NEW_JOB, dtype=np.int8)
    transition[new] = FIRST
    transition[(~new) & (occ == prev)] = CONSECUTIVE_REPEAT
    held_before = _held_earlier(occ, person, position)
    transition[(~new) & (occ != prev) & held_before] = NONCONSECUTIVE_REPEAT
    return PanelArrays(occ, person, position, year, gap, prev, prev2, tenure, transition, starts)


def _held_earlier(occ: np.ndarray, person: np.ndarray, position: np.ndarray) -> np.ndarray:
    """True where a row's occupation appeared in an earlier row of the same person."""
    key = person.astype(np.int64) * (int(occ.max()) + 1) + occ
    order = np.lexsort((position, key))
    sorted_key = key[order]
    first_of_key = np.ones(len(key), dtype=bool)
    first_of_key[1:] = sorted_key[1:] != sorted_key[:-1]
    out = np.empty(len(key), dtype=bool)
    out[order] = ~first_of_key
    return out
