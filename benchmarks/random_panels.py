"""Random canonical panels for the benchmarks: every occupation, a 70% chance of staying each year.

Not a labour market (``laborlm data synth`` is): just data of the right shape and size, fast to make.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from laborlm.occupations import Taxonomy
from laborlm.schema import EDUCATION_LEVELS, GENDERS, RACES, REGIONS, conform


def random_panel(people: int, years: int, prefix: str, seed: int, source: str = "bench") -> pa.Table:
    """``people`` careers of ``years`` consecutive years from 2000, sorted by (person, year)."""
    rng = np.random.default_rng(seed)
    codes = np.array(Taxonomy.default().codes)
    occ = rng.integers(0, len(codes), size=(people, years))
    stay = rng.random((people, years)) < 0.7
    for t in range(1, years):
        occ[:, t] = np.where(stay[:, t], occ[:, t - 1], occ[:, t])
    n = people * years
    person = np.repeat(np.arange(people), years)
    return conform(
        pa.table(
            {
                "person_id": [f"{prefix}{p:07d}" for p in person],
                "year": pa.array(np.tile(np.arange(2000, 2000 + years), people), pa.int32()),
                "occupation": codes[occ.ravel()],
                "education": np.array(EDUCATION_LEVELS)[np.minimum(np.arange(n) % years // 3, 7)],
                "region": np.array(REGIONS)[person % len(REGIONS)],
                "gender": np.array(GENDERS)[person % len(GENDERS)],
                "race": np.array(RACES)[person % len(RACES)],
                "birth_year": pa.array(1975 + person % 10, pa.int32()),
                "source": [source] * n,
            }
        )
    )
