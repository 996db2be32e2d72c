"""Canonical panel -> padded per-person tensors: the one input format of every neural occupation model.

Step ``t`` of a career predicts the occupation of row ``t`` from

* the previous occupation (taxonomy index, or ``NO_PREVIOUS`` for the first observed year, which the
  models embed as a beginning-of-career token), and
* the covariates *of row t*: CAREER conditions on "pre-transition" covariates of the same timestep
  (Section 2.1), so the year and education of the target year are known when its occupation is predicted.

The covariate vocabulary is fixed and independent of the taxonomy and of the data: ``year`` (1940..2040,
clipped), ``education`` (``schema.EDUCATION_LEVELS``), ``gap`` since the previous observation (first year,
1, 2, 3+ years), ``region`` (``schema.region_of``: four census regions), ``gender`` and ``race``, each with a
"missing" value at index 0 where the panel has nulls. So a model pretrained on resumes (no gender, race or
special states) and fine-tuned on a survey sees the same indices in both.

Batches hold whole careers, padded on the right to the longest career in the batch, with at most
``max_tokens`` padded person-years (CAREER used 16,000 tokens per batch). Right padding is invisible to
causal models: step ``t`` only reads steps ``<= t``, so padding after a career never changes its outputs.
``CareerBatch.rows`` maps every step back to its panel row, so predictions come back in panel order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from laborlm.models.two_stage import NO_PREVIOUS
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import (
    EDUCATION,
    EDUCATION_LEVELS,
    GENDER,
    GENDERS,
    RACE,
    RACES,
    REGION,
    REGIONS,
    STATE_REGION,
    region_of,
)
from laborlm.sequences import panel_arrays

YEAR_MIN = 1940  # years before are clipped to 1940 (CAREER substitutes the nearest known year embedding)
YEAR_MAX = 2040  # years after are clipped to 2040
MISSING = "<missing>"
GAP_BUCKETS: tuple[str, ...] = ("first", "1", "2", "3+")  # years since the previous observation


@dataclass(frozen=True)
class Covariate:
    """One categorical covariate of the fixed vocabulary."""

    name: str
    values: tuple[str, ...]  # index i <-> values[i]; index 0 is MISSING where the panel may have nulls
    dynamic: bool  # varies within a career (year, education, gap) rather than being a person trait

    @property
    def size(self) -> int:
        return len(self.values)


COVARIATES: tuple[Covariate, ...] = (
    Covariate("year", tuple(str(y) for y in range(YEAR_MIN, YEAR_MAX + 1)), dynamic=True),
    Covariate("education", (MISSING, *EDUCATION_LEVELS), dynamic=True),
    Covariate("gap", GAP_BUCKETS, dynamic=True),
    Covariate("region", (MISSING, *REGIONS), dynamic=False),
    Covariate("gender", (MISSING, *GENDERS), dynamic=False),
    Covariate("race", (MISSING, *RACES), dynamic=False),
)
COVARIATE_NAMES: tuple[str, ...] = tuple(c.name for c in COVARIATES)
DYNAMIC_COVARIATES: tuple[str, ...] = tuple(c.name for c in COVARIATES if c.dynamic)
_BY_NAME = {c.name: (i, c) for i, c in enumerate(COVARIATES)}


def covariate(name: str) -> Covariate:
    return _BY_NAME[name][1]


def covariate_column(name: str) -> int:
    """Index of a covariate along the last axis of ``CareerBatch.covariates``."""
    return _BY_NAME[name][0]


@dataclass(frozen=True)
class EncodedPanel:
    """A canonical panel as aligned integer arrays, one entry per row, plus where each career starts."""

    target: np.ndarray  # [n] int64 taxonomy index of the row's occupation
    prev: np.ndarray  # [n] int64 previous occupation, NO_PREVIOUS for a first year
    prev2: np.ndarray  # [n] int64 occupation two observations back, NO_PREVIOUS if none
    covariates: np.ndarray  # [n, C] int64 indices into COVARIATES[c].values
    position: np.ndarray  # [n] int64 0-based index of the row within its career (= earlier observations)
    tenure: np.ndarray  # [n] int64 consecutive observations in the previous occupation (0 for a first year)
    education_changed: np.ndarray  # [n] bool education differs from the previous row (False for a first year)
    starts: np.ndarray  # [P] int64 first row of each career
    lengths: np.ndarray  # [P] int64 rows of each career

    @property
    def n_rows(self) -> int:
        return len(self.target)

    @property
    def n_people(self) -> int:
        return len(self.starts)

    def fingerprint(self) -> str:
        """Hash of everything a model sees, so a resumed run can tell it is fed the same data."""
        h = hashlib.sha256()
        for f in fields(self):
            h.update(np.ascontiguousarray(getattr(self, f.name)).tobytes())
        return h.hexdigest()[:16]


def encode_panel(table: pa.Table, taxonomy: Taxonomy) -> EncodedPanel:
    """Encode a canonical panel sorted by (person_id, year).

    Raises:
        SchemaError: an occupation is not in the taxonomy, or rows are not clustered / ordered by person-year.
    """
    arr = panel_arrays(table, taxonomy)
    n = len(arr)
    year = np.clip(arr.year, YEAR_MIN, YEAR_MAX) - YEAR_MIN
    # gap is 0 exactly on first rows, so clipping at 3 yields the buckets first / 1 / 2 / 3+.
    gap = np.clip(arr.gap, 0, len(GAP_BUCKETS) - 1)
    education = _lookup(table.column(EDUCATION), EDUCATION_LEVELS, np.arange(1, len(EDUCATION_LEVELS) + 1))
    # Regions may be stored as states: map every accepted spelling to its census region's index.
    region_keys = (*REGIONS, *sorted(STATE_REGION))
    region = _lookup(
        table.column(REGION), region_keys, np.array([REGIONS.index(region_of(k)) + 1 for k in region_keys])
    )
    gender = _lookup(table.column(GENDER), GENDERS, np.arange(1, len(GENDERS) + 1))
    race = _lookup(table.column(RACE), RACES, np.arange(1, len(RACES) + 1))
    columns = {
        "year": year,
        "education": education,
        "gap": gap,
        "region": region,
        "gender": gender,
        "race": race,
    }
    covariates = np.stack([columns[name] for name in COVARIATE_NAMES], axis=1).astype(np.int64)
    first = arr.position == 0
    education_changed = np.zeros(n, dtype=bool)
    education_changed[1:] = education[1:] != education[:-1]
    education_changed[first] = False
    lengths = np.diff(np.append(arr.starts, n)).astype(np.int64)
    return EncodedPanel(
        target=arr.occ,
        prev=arr.prev,  # panel_arrays marks "no such observation" with -1 == NO_PREVIOUS
        prev2=arr.prev2,
        covariates=covariates,
        position=arr.position,
        tenure=arr.tenure,
        education_changed=education_changed,
        starts=arr.starts.astype(np.int64),
        lengths=lengths,
    )


def _lookup(column: pa.ChunkedArray, keys: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    """``codes[i]`` where a value equals ``keys[i]``; 0 (MISSING) for nulls and values outside ``keys``."""
    position = pc.index_in(column, value_set=pa.array(keys, pa.string()))
    found = np.asarray(position.to_numpy(zero_copy_only=False), dtype=np.float64)  # NaN where null / unknown
    out = np.zeros(len(found), dtype=np.int64)
    ok = ~np.isnan(found)
    out[ok] = codes[found[ok].astype(np.int64)]
    return out


@dataclass(frozen=True)
class CareerBatch:
    """Padded careers ``[B, T]``; step ``t`` of row ``b`` predicts ``target[b, t]``."""

    prev: torch.Tensor  # [B, T] long previous occupation, NO_PREVIOUS at a first year and at padding
    prev2: torch.Tensor  # [B, T] long occupation two observations back, NO_PREVIOUS if none
    target: torch.Tensor  # [B, T] long occupation to predict (0 at padding)
    covariates: torch.Tensor  # [B, T, C] long covariates of the target year (COVARIATES order)
    position: torch.Tensor  # [B, T] long 0-based position in the career
    tenure: torch.Tensor  # [B, T] long consecutive observations in the previous occupation
    education_changed: torch.Tensor  # [B, T] bool
    mask: torch.Tensor  # [B, T] bool True at real person-years, False at padding
    rows: torch.Tensor  # [B, T] long panel row of each step, -1 at padding

    def to(self, device: torch.device) -> CareerBatch:
        return CareerBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def n_tokens(self) -> int:
        """Real (unpadded) person-years in the batch."""
        return int(self.mask.sum())


def collate(panel: EncodedPanel, persons: np.ndarray) -> CareerBatch:
    """Pad the careers ``persons`` (indices into ``panel.starts``) into one batch.

    An empty ``persons`` gives a single all-padding step: a worker with no share of a global batch still
    runs forward and backward (distributed data parallel needs every rank to), contributing zero loss.
    """
    persons = np.asarray(persons, dtype=np.int64)
    lengths = panel.lengths[persons] if len(persons) else np.zeros(1, np.int64)
    starts = panel.starts[persons] if len(persons) else np.zeros(1, np.int64)
    steps = np.arange(max(int(lengths.max()), 1))
    mask = steps[None, :] < lengths[:, None]  # [B, T]
    rows = np.where(mask, starts[:, None] + steps[None, :], -1)
    safe = np.where(mask, rows, 0)  # gather any real row at padding, then overwrite

    def take(values: np.ndarray, pad: int) -> torch.Tensor:
        return torch.from_numpy(np.where(mask, values[safe], pad))

    covariates = panel.covariates[safe] * mask[:, :, None]
    return CareerBatch(
        prev=take(panel.prev, NO_PREVIOUS),
        prev2=take(panel.prev2, NO_PREVIOUS),
        target=take(panel.target, 0),
        covariates=torch.from_numpy(covariates),
        position=take(panel.position, 0),
        tenure=take(panel.tenure, 0),
        education_changed=torch.from_numpy(panel.education_changed[safe] & mask),
        mask=torch.from_numpy(mask),
        rows=torch.from_numpy(rows),
    )


def token_batches(
    lengths: np.ndarray, max_tokens: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Group careers into batches of at most ``max_tokens`` padded person-years (batch size x longest career).

    Careers are ordered by length so that each batch pads little (fairseq's ordered batching, as CAREER
    trained). Without ``rng`` the batches are deterministic (evaluation); with it, equal-length careers are
    ordered at random and the batch order is shuffled (training). A career longer than ``max_tokens`` gets a
    batch of its own.

    Returns:
        Lists of career indices (into ``lengths``), one array per batch.
    """
    tiebreak = rng.permutation(len(lengths)) if rng is not None else np.arange(len(lengths))
    order = np.lexsort((tiebreak, lengths))
    batches: list[np.ndarray] = []
    begin = 0
    for i, person in enumerate(order):
        # Ascending lengths: the newest career is the longest, so the padded size is (count) * its length.
        if i > begin and (i - begin + 1) * int(lengths[person]) > max_tokens:
            batches.append(order[begin:i])
            begin = i
    if len(order):
        batches.append(order[begin:])
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iter_batches(
    panel: EncodedPanel, max_tokens: int, persons: np.ndarray | None = None
) -> Iterator[CareerBatch]:
    """Deterministic batches over ``persons`` (all careers if None), for evaluation and prediction."""
    persons = np.arange(panel.n_people) if persons is None else np.asarray(persons, dtype=np.int64)
    for group in token_batches(panel.lengths[persons], max_tokens):
        yield collate(panel, persons[group])
