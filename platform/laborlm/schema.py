"""The canonical career panel: one row per person-year. The single data contract of LaborLM.

Every reader produces this schema, every writer consumes it, and every model, corpus and metric reads it.
Columns (README's "Panel schema" section documents the same table for users):

==============  =========  ========  ===================================================================
column          type       kind      meaning and allowed values
==============  =========  ========  ===================================================================
person_id       string     key       any non-empty string, unique per person within a panel
year            int32      dynamic   calendar year of the observation, 1900..2100; one row per person-year
occupation      string     dynamic   a code of the panel's taxonomy (occ1990dd by default) or a special
                                     state: ``unemployed``, ``out_of_labor_force``, ``in_school``
education       string     dynamic   highest level reached so far (``EDUCATION_LEVELS``), or null
wage            float64    dynamic   log hourly wage, or null
weight          float64    dynamic   survey weight (>= 0), or null
region          string     static    census region (``REGIONS``) or US state postal code, or null
gender          string     static    ``GENDERS`` or null
race            string     static    ``RACES`` or null
birth_year      int32      static    year of birth, or null
source          string     static    where the person comes from: psid, nlsy79, nlsy97, resumes, ... ([a-z0-9_]+)
split           string     static    train / valid / test if fixed by the input (CAREER files); null means
                                     "derive it from a hash of person_id" (see ``laborlm.splits``)
oracle_logp     float64    dynamic   synthetic data only: the true log p(occupation | history, covariates)
==============  =========  ========  ===================================================================

Static columns are constant within a person; the validator rejects persons where they are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

PERSON_ID = "person_id"
YEAR = "year"
OCCUPATION = "occupation"
EDUCATION = "education"
WAGE = "wage"
WEIGHT = "weight"
REGION = "region"
GENDER = "gender"
RACE = "race"
BIRTH_YEAR = "birth_year"
SOURCE = "source"
SPLIT = "split"
ORACLE_LOGP = "oracle_logp"

PANEL_SCHEMA = pa.schema(
    [
        pa.field(PERSON_ID, pa.string(), nullable=False),
        pa.field(YEAR, pa.int32(), nullable=False),
        pa.field(OCCUPATION, pa.string(), nullable=False),
        pa.field(EDUCATION, pa.string()),
        pa.field(WAGE, pa.float64()),
        pa.field(WEIGHT, pa.float64()),
        pa.field(REGION, pa.string()),
        pa.field(GENDER, pa.string()),
        pa.field(RACE, pa.string()),
        pa.field(BIRTH_YEAR, pa.int32()),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(SPLIT, pa.string()),
        pa.field(ORACLE_LOGP, pa.float64()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(PANEL_SCHEMA.names)
REQUIRED_COLUMNS: tuple[str, ...] = (PERSON_ID, YEAR, OCCUPATION)
DYNAMIC_COLUMNS: tuple[str, ...] = (YEAR, OCCUPATION, EDUCATION, WAGE, WEIGHT, ORACLE_LOGP)
STATIC_COLUMNS: tuple[str, ...] = (REGION, GENDER, RACE, BIRTH_YEAR, SOURCE, SPLIT)

YEAR_RANGE = (1900, 2100)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
SOURCE_PATTERN = re.compile(r"^[a-z0-9_]+$")

# Ordered from least to most; the order is used (education never falls in synthetic data, stats count
# college graduates as bachelors and above).
EDUCATION_LEVELS: tuple[str, ...] = (
    "less_than_high_school",
    "high_school",
    "some_college",
    "associates",
    "bachelors",
    "masters",
    "professional",
    "doctorate",
)
COLLEGE_LEVELS: frozenset[str] = frozenset({"bachelors", "masters", "professional", "doctorate"})
GENDERS: tuple[str, ...] = ("female", "male")
RACES: tuple[str, ...] = ("white", "black", "hispanic", "asian", "native_american", "other")
REGIONS: tuple[str, ...] = ("northeast", "midwest", "south", "west")

# US Census Bureau regions of the states (and DC), so panels may carry a state and still be grouped by region.
STATE_REGION: dict[str, str] = {
    **{s: "northeast" for s in ("CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA")},
    **{s: "midwest" for s in ("IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD")},
    **{
        s: "south"
        for s in (
            "DE",
            "FL",
            "GA",
            "MD",
            "NC",
            "SC",
            "VA",
            "DC",
            "WV",
            "AL",
            "KY",
            "MS",
            "TN",
            "AR",
            "LA",
            "OK",
            "TX",
        )
    },
    **{s: "west" for s in ("AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA")},
}

# Spellings seen in real files (CAREER's sample data, NLS/PSID/CPS codebooks) mapped to canonical values. An
# import counts every value one of these changed (``laborlm data import`` prints them), so none is silent.
EDUCATION_ALIASES: dict[str, str] = {
    "less_than_hs": "less_than_high_school",
    "lths": "less_than_high_school",
    "some_high_school": "less_than_high_school",
    "hs_diploma": "high_school",
    "hs_graduate": "high_school",
    "some_college_no_degree": "some_college",
    "ba": "bachelors",
    "bs": "bachelors",
    "ma": "masters",
    "ms": "masters",
    "no_high_school": "less_than_high_school",
    "high_school_diploma": "high_school",
    "hs": "high_school",
    "ged": "high_school",
    "high_school_graduate": "high_school",
    "associate": "associates",
    "associates_degree": "associates",
    "bachelor": "bachelors",
    "bachelors_degree": "bachelors",
    "college": "bachelors",
    "college_graduate": "bachelors",
    "master": "masters",
    "masters_degree": "masters",
    "phd": "doctorate",
    "doctoral": "doctorate",
    "professional_degree": "professional",
}
GENDER_ALIASES: dict[str, str] = {
    "f": "female",
    "woman": "female",
    "women": "female",
    "m": "male",
    "man": "male",
    "men": "male",
}
RACE_ALIASES: dict[str, str] = {
    "hisp": "hispanic",  # NLSY's label
    "hispanic_latino": "hispanic",
    "latina": "hispanic",
    "latino_a": "hispanic",
    "non_hispanic_white": "white",
    "white_non_hispanic": "white",
    "nh_white": "white",
    "non_hispanic_black": "black",
    "black_non_hispanic": "black",
    "nh_black": "black",
    "black_or_african_american": "black",
    "african_american": "black",
    "hispanic_or_latino": "hispanic",
    "latino": "hispanic",
    "american_indian_or_alaska_native": "native_american",
    "american_indian": "native_american",
    "two_or_more_races": "other",
    "multiracial": "other",
    "native_hawaiian_or_other_pacific_islander": "other",
}
REGION_ALIASES: dict[str, str] = {
    "north_central": "midwest",
    "northcentral": "midwest",
    "north_east": "northeast",
}


def _token(value: str) -> str:
    """Lower-case, trim, and join words with underscores: 'Some college (no degree)' -> 'some_college_no_degree'."""
    return re.sub(r"[\s\-/,.()]+", "_", value.strip().lower()).strip("_")


def normalize_education(value: str) -> str | None:
    """Canonical education level, or None if the value is not one we know."""
    t = _token(value)
    t = EDUCATION_ALIASES.get(t, t)
    return t if t in EDUCATION_LEVELS else None


def normalize_gender(value: str) -> str | None:
    t = _token(value)
    t = GENDER_ALIASES.get(t, t)
    return t if t in GENDERS else None


def normalize_race(value: str) -> str | None:
    t = _token(value)
    t = RACE_ALIASES.get(t, t)
    return t if t in RACES else None


def normalize_region(value: str) -> str | None:
    """A census region (lower case) or a US state postal code (upper case)."""
    if value.strip().upper() in STATE_REGION:
        return value.strip().upper()
    t = _token(value)
    t = REGION_ALIASES.get(t, t)
    return t if t in REGIONS else None


def region_of(value: str | None) -> str | None:
    """The census region of a canonical region value (states map to their region)."""
    if value is None:
        return None
    return STATE_REGION.get(value, value)


CATEGORICAL_NORMALIZERS = {
    EDUCATION: (normalize_education, EDUCATION_LEVELS),
    GENDER: (normalize_gender, GENDERS),
    RACE: (normalize_race, RACES),
    REGION: (normalize_region, REGIONS + tuple(sorted(STATE_REGION))),
}


def empty_panel() -> pa.Table:
    return PANEL_SCHEMA.empty_table()


@dataclass(frozen=True)
class Career:
    """One person's whole observed history, in year order: the unit that models and templates consume.

    Arrays are aligned per observed year (length T). Static covariates are scalars.
    """

    person_id: str
    source: str
    years: np.ndarray  # [T] int
    occupations: tuple[str, ...]  # [T] taxonomy codes
    education: tuple[str | None, ...]  # [T]
    wage: np.ndarray  # [T] float, NaN where missing
    region: str | None = None
    gender: str | None = None
    race: str | None = None
    birth_year: int | None = None
    split: str | None = None

    def __len__(self) -> int:
        return len(self.occupations)


def iter_careers(table: pa.Table) -> Iterator[Career]:
    """Careers of a canonical panel, one per person, in the order persons first appear.

    The table must be sorted by (person_id, year) or at least clustered by person with years ascending, as
    every reader in ``laborlm.readers`` returns it.
    """
    if table.num_rows == 0:
        return
    cols = {name: table.column(name).to_pylist() for name in COLUMNS if name in table.column_names}
    pids = cols[PERSON_ID]
    years = np.asarray(cols[YEAR], dtype=np.int64)
    wages = np.asarray(
        [np.nan if w is None else w for w in cols.get(WAGE, [None] * len(pids))], dtype=np.float64
    )
    start = 0
    n = len(pids)
    for i in range(1, n + 1):
        if i == n or pids[i] != pids[start]:
            sl = slice(start, i)
            yield Career(
                person_id=pids[start],
                source=cols[SOURCE][start],
                years=years[sl],
                occupations=tuple(cols[OCCUPATION][sl]),
                education=tuple(cols[EDUCATION][sl]) if EDUCATION in cols else (None,) * (i - start),
                wage=wages[sl],
                region=cols.get(REGION, [None] * n)[start],
                gender=cols.get(GENDER, [None] * n)[start],
                race=cols.get(RACE, [None] * n)[start],
                birth_year=cols.get(BIRTH_YEAR, [None] * n)[start],
                split=cols.get(SPLIT, [None] * n)[start],
            )
            start = i


def conform(table: pa.Table) -> pa.Table:
    """Add missing optional columns as nulls, order columns canonically, and cast to the panel schema.

    Raises:
        SchemaError: a required column is missing, an unknown column is present, or a cast fails.
    """
    from laborlm.errors import SchemaError

    missing = [c for c in REQUIRED_COLUMNS + (SOURCE,) if c not in table.column_names]
    if missing:
        raise SchemaError(f"missing required column(s): {', '.join(missing)}")
    unknown = [c for c in table.column_names if c not in COLUMNS]
    if unknown:
        raise SchemaError(
            f"unknown column(s): {', '.join(unknown)}; the panel schema has {', '.join(COLUMNS)}"
        )
    arrays = []
    for field in PANEL_SCHEMA:
        if field.name in table.column_names:
            col = table.column(field.name)
            try:
                arrays.append(col.cast(field.type) if col.type != field.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(f"column '{field.name}' cannot be cast to {field.type}: {exc}") from None
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=PANEL_SCHEMA)
