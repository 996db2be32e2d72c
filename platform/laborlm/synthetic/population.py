"""Who is in a synthetic dataset and when they are observed: static covariates, first education, the grid.

Nothing here depends on the latent worker type or on occupations, so the oracle can condition on all of it
without a likelihood term: the observation grid (entry, gaps, attrition) and the demographics are
covariates, drawn before the career. The first recorded education is drawn here too, because the type is
drawn *given* it (see ``process.type_log_prior``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from laborlm.synthetic.config import GridConfig, SynthConfig
from laborlm.synthetic.process import (
    EDU_MISSING,
    EDU_SCORE,
    GENDER_MISSING,
    LEVEL_MIN_AGE,
    RACE_MISSING,
    BoolArray,
    FloatArray,
    IntArray,
)


@dataclass(frozen=True)
class Population:
    """``n`` people: static covariates and their observation grid (``years`` padded with 0 past ``length``)."""

    gender: IntArray  # [n] 0 female, 1 male, GENDER_MISSING
    race: IntArray  # [n] index in schema.RACES or RACE_MISSING
    region: IntArray  # [n] index in schema.REGIONS
    birth_year: IntArray  # [n] -1 where not recorded
    edu_recorded: BoolArray  # [n]
    first_edu: IntArray  # [n] education index at the first observation (EDU_MISSING if not recorded)
    years: IntArray  # [n, T]
    length: IntArray  # [n] observed years, >= 1

    def __len__(self) -> int:
        return len(self.length)

    def age(self, years: IntArray, rows: IntArray, proxy_start_age: int) -> FloatArray:
        """Age at ``years`` for ``rows``; without a birth year, ``proxy_start_age`` + years since the first."""
        known = self.birth_year[rows] > 0
        proxy = proxy_start_age + (years - self.years[rows, 0])
        return np.where(known, years - self.birth_year[rows], proxy).astype(np.float64)


def draw_population(cfg: SynthConfig, n: int, rng: np.random.Generator) -> Population:
    """Draw ``n`` people of the configured population and their observation years."""
    pop, rec = cfg.population, cfg.recording
    if rec.demographics:
        gender = (rng.random(n) >= pop.female_share).astype(np.int64)
        race = rng.choice(len(pop.race_shares), size=n, p=np.asarray(pop.race_shares) / sum(pop.race_shares))
    else:
        gender = np.full(n, GENDER_MISSING, dtype=np.int64)
        race = np.full(n, RACE_MISSING, dtype=np.int64)
    region = rng.choice(
        len(pop.region_shares), size=n, p=np.asarray(pop.region_shares) / sum(pop.region_shares)
    )
    if pop.birth_years is not None:
        birth_year = rng.integers(pop.birth_years[0], pop.birth_years[1] + 1, size=n)
    else:
        birth_year = np.full(n, -1, dtype=np.int64)
    if cfg.grid.kind == "survey":
        years, length = _survey_grid(cfg.grid, birth_year, rng)
    else:
        years, length = _resume_grid(cfg.grid, n, rng)
    edu_recorded = rng.random(n) >= rec.education_missing
    first_age = np.where(birth_year > 0, years[:, 0] - birth_year, pop.proxy_start_age).astype(np.float64)
    # First education: the population's level logits plus a tilt per score unit, among reachable levels.
    logits = np.asarray(pop.education_logits)[None, :] + pop.education_tilt * EDU_SCORE[None, :]
    logits = np.where(first_age[:, None] >= LEVEL_MIN_AGE[None, :], logits, -np.inf)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    first_edu = (cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1)
    first_edu = np.where(edu_recorded, first_edu, EDU_MISSING)
    return Population(gender, race, region, birth_year, edu_recorded, first_edu, years, length)


def survey_waves(grid: GridConfig) -> IntArray:
    """Interview years: annual up to ``annual_until``, then every other year up to ``last_year``."""
    if grid.annual_until is None:
        return np.arange(grid.first_year, grid.last_year + 1)
    annual = np.arange(grid.first_year, grid.annual_until + 1)
    return np.concatenate([annual, np.arange(grid.annual_until + 2, grid.last_year + 1, 2)])


def _survey_grid(
    grid: GridConfig, birth_year: IntArray, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """First wave at or after max(entry year, birth + min_age); later waves kept unless skipped, until attrition."""
    waves = survey_waves(grid)
    n, W = len(birth_year), len(waves)
    entry = rng.integers(grid.entry_years[0], grid.entry_years[1] + 1, size=n)
    start = np.maximum(entry, birth_year + grid.min_age)
    first = np.minimum(np.searchsorted(waves, start), W - 1)
    after = np.arange(W)[None, :] - first[:, None]  # [n, W] waves since the first
    # Still in the panel at a wave: survived the attrition hazard at every wave since the first.
    alive = np.cumprod(np.where(after > 0, rng.random((n, W)) >= grid.attrition, True), axis=1).astype(bool)
    observed = (after == 0) | ((after > 0) & alive & (rng.random((n, W)) >= grid.skip))
    return _pack(np.where(observed, waves[None, :], 0), observed)


def _resume_grid(grid: GridConfig, n: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """A first year, a length, and gaps where years out of work are simply missing; truncated at last_year."""
    start = np.clip(
        np.rint(rng.normal(grid.start_year_mean, grid.start_year_sd, n)), grid.first_year, grid.last_year
    )
    length = np.minimum(1 + rng.poisson(grid.mean_length - 1.0, n), grid.max_length)
    T = int(length.max())
    steps = 1 + (
        rng.geometric(1.0 - grid.skip, (n, T)) - 1 if grid.skip > 0 else np.zeros((n, T), dtype=np.int64)
    )
    steps[:, 0] = 0
    years = start[:, None].astype(np.int64) + np.cumsum(steps, axis=1)
    observed = (np.arange(T)[None, :] < length[:, None]) & (years <= grid.last_year)
    return _pack(np.where(observed, years, 0), observed)


def _pack(years: IntArray, observed: BoolArray) -> tuple[IntArray, IntArray]:
    """Move each row's observed years to the front (they are increasing already) and trim the padding."""
    length = observed.sum(axis=1)
    order = np.argsort(~observed, axis=1, kind="stable")
    packed = np.take_along_axis(years, order, axis=1)[:, : max(int(length.max()), 1)]
    return packed.astype(np.int64), length.astype(np.int64)
