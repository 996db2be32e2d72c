"""Wage regressions with and without a model's representation of the job history (CAREER Table 3).

    laborlm analyze wages [--config YAML] [wages.representation=bag ...]

CAREER adds its fitted representation ``h_i`` of a worker's job history to a Blau-Kahn (2017) style log-wage
regression, ``w_i ~ a + theta' x_i + gamma' h_i`` (Eq. 9), and reports held-out R^2 over five splits, by
decade. Here:

- units: person-years with a recorded wage (working years; synthetic panels have none for special states);
- ``x`` (the "full specification" stand-in): education level, potential experience and its square (age - 18,
  or years since the first observation when the birth year is unknown), gender, race, region, calendar year,
  and the broad occupation group of the current job (Blau-Kahn's occupation controls, at the level a few
  thousand person-years can estimate);
- ``h``: the model's representation at the row (``representations``: its hidden state when it has one,
  else its predicted next-occupation distribution, or the bag of past jobs), which sees the rows *before*
  the wage's year only. It is centred (optionally standardised) and reduced to its leading principal
  components on the training folds (a 345-dimensional distribution would otherwise overfit a few thousand
  rows); an optional ridge penalty applies to those columns only, never to ``x``;
- folds: five person-level folds (a person's years never straddle training and held-out data, so the
  persistent person effect cannot leak); R^2 = 1 - SSE / SST on each held-out fold around that fold's mean,
  averaged over folds (± their standard error); by decade, the same on the fold's rows of the decade.

The representations must come from a model that did not train on these persons (the runner uses the test
split), as CAREER freezes its representations on held-out samples.

Synthetic presets record wages from the generator (``synthetic.config.WageConfig``: occupation, education,
experience, gender and, through ``wage_type_effect``, the hidden career type). For panels without wages
``attach_synthetic_wages`` adds a log wage from the panel's own columns, optionally with a dependence on the
job history (``history_effect``, ``unemployment_scar``) that the covariates cannot see. The generator's
hidden type is not in the canonical panel (no column carries it), so it cannot be used here; the
generator's own wages carry it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm.analysis.representations import RepresentationKind, bag_of_past_jobs, representation
from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations.taxonomy import UNEMPLOYED, Taxonomy
from laborlm.schema import (
    BIRTH_YEAR,
    EDUCATION,
    EDUCATION_LEVELS,
    GENDER,
    PERSON_ID,
    RACE,
    REGION,
    WAGE,
    region_of,
)
from laborlm.sequences import PanelArrays, panel_arrays

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

DECADES: tuple[tuple[int, int], ...] = ((1980, 1989), (1990, 1999), (2000, 2009), (2010, 2019))


@dataclass(frozen=True)
class SyntheticWageConfig:
    """A log-wage process over any panel's columns (for panels that record none)."""

    seed: int = 0  # occupation effects, person effects and noise
    intercept: float = 2.3
    occupation_sd: float = 0.25  # sd of the per-occupation wage effects
    education_return: float = 0.08  # per education level (schema.EDUCATION_LEVELS order; missing = level 2)
    experience: float = 0.04  # per year of potential experience
    experience_sq: float = -0.0007  # per squared year
    female_gap: float = -0.12
    history_effect: float = 0.0  # times the mean occupation effect of the jobs held in earlier rows
    unemployment_scar: float = 0.0  # log-wage change per earlier row spent unemployed (e.g. -0.05)
    person_sd: float = 0.1  # sd of a persistent person effect
    noise_sd: float = 0.25  # sd of yearly noise


@dataclass(frozen=True)
class WageStudyConfig:
    representation: RepresentationKind = (
        "auto"  # hidden state when the model has one, else predicted distribution
    )
    components: int | None = (
        32  # principal components of the representation kept per training fold; None: all
    )
    ridge: float = 0.0  # L2 penalty on the representation's coefficients (0: OLS, as CAREER)
    standardize: bool = (
        False  # scale each representation column to unit variance first (rare states then dominate)
    )
    folds: int = 5  # person-level cross-validation folds
    seed: int = 0  # fold assignment
    bag_row: bool = True  # also report the model-free bag of past jobs as a representation
    attach: Literal["auto", "always", "never"] = (
        "auto"  # synthetic wages: when none are recorded / always / never
    )
    synthetic: SyntheticWageConfig = field(default_factory=SyntheticWageConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.folds < 2:
            problems.append(f"folds: expected >= 2, got {self.folds}")
        if self.components is not None and self.components < 1:
            problems.append(f"components: expected >= 1 or null, got {self.components}")
        if self.ridge < 0:
            problems.append(f"ridge: expected >= 0, got {self.ridge}")
        if problems:
            raise ConfigError(problems)


def has_wages(panel: pa.Table) -> bool:
    return WAGE in panel.column_names and panel.column(WAGE).null_count < panel.num_rows


def _potential_experience(panel: pa.Table, years: np.ndarray, first_year: np.ndarray) -> np.ndarray:
    """``[n]`` age - 18 (clipped at 0) where the birth year is known, else years since the first observation."""
    birth = np.asarray(pc.fill_null(panel.column(BIRTH_YEAR).cast(pa.int64()), -1).to_numpy(), dtype=np.int64)
    return np.where(birth > 0, np.maximum(years - birth - 18, 0), years - first_year).astype(np.float64)


def _education_level(panel: pa.Table) -> np.ndarray:
    """``[n]`` index in EDUCATION_LEVELS; ``len(EDUCATION_LEVELS)`` where not recorded."""
    idx = pc.index_in(panel.column(EDUCATION), value_set=pa.array(EDUCATION_LEVELS, pa.string()))
    return np.asarray(pc.fill_null(idx, len(EDUCATION_LEVELS)).to_numpy(), dtype=np.int64)


def attach_synthetic_wages(panel: pa.Table, taxonomy: Taxonomy, cfg: SyntheticWageConfig) -> pa.Table:
    """The panel with its ``wage`` column replaced by a synthetic log hourly wage (null in special states).

    ``w = intercept + occ_effect[y_t] + education_return * level + experience terms + female_gap * female
    + history_effect * mean(occ_effect of earlier working rows) + unemployment_scar * (earlier unemployed rows)
    + person effect + noise``. With ``history_effect`` or ``unemployment_scar`` non-zero the wage depends on
    the career beyond the current job and the covariates: the case where a representation of the history
    should raise the held-out R^2.
    """
    arr = panel_arrays(panel, taxonomy)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x77616765]))  # "wage"
    K = len(taxonomy)
    special = np.array([o.special for o in taxonomy.occupations])
    effect = rng.normal(0.0, cfg.occupation_sd, K)
    effect[special] = 0.0
    level = _education_level(panel).astype(np.float64)
    level[level == len(EDUCATION_LEVELS)] = 2.0
    first_year = arr.year[arr.starts][arr.person]
    exper = _potential_experience(panel, arr.year, first_year)
    female = np.asarray(
        pc.fill_null(pc.equal(panel.column(GENDER), "female"), False).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    # History terms: running sums within the person over earlier rows (row t sees rows < t).
    working = ~special[arr.occ]
    past_effect = _earlier_sum(np.where(working, effect[arr.occ], 0.0), arr)
    past_working = _earlier_sum(working.astype(np.float64), arr)
    past_unemployed = _earlier_sum((arr.occ == taxonomy.index(UNEMPLOYED)).astype(np.float64), arr)
    history = np.divide(past_effect, past_working, out=np.zeros(len(arr)), where=past_working > 0)
    person_effect = rng.normal(0.0, cfg.person_sd, arr.n_people)[arr.person]
    wage = (
        cfg.intercept
        + effect[arr.occ]
        + cfg.education_return * level
        + cfg.experience * exper
        + cfg.experience_sq * exper**2
        + cfg.female_gap * female
        + cfg.history_effect * history
        + cfg.unemployment_scar * past_unemployed
        + person_effect
        + rng.normal(0.0, cfg.noise_sd, len(arr))
    )
    column = pa.array(wage, pa.float64(), mask=special[arr.occ])
    return panel.set_column(panel.column_names.index(WAGE), WAGE, column)


def _earlier_sum(values: np.ndarray, arr: PanelArrays) -> np.ndarray:
    """``[n]`` sum of ``values`` over the same person's earlier rows."""
    running = np.cumsum(values)
    before = np.concatenate([[0.0], running[:-1]])
    starts = arr.starts[arr.person]
    return before - np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0.0)


def covariate_matrix(panel: pa.Table, taxonomy: Taxonomy) -> np.ndarray:
    """``[n, p]`` the Blau-Kahn style covariates ``x`` of every row (dummies drop their first level)."""
    arr = panel_arrays(panel, taxonomy)
    first_year = arr.year[arr.starts][arr.person]
    exper = _potential_experience(panel, arr.year, first_year) / 10.0  # decades keep the square well scaled
    groups = np.asarray([o.group for o in taxonomy.occupations], dtype=object)[arr.occ]
    blocks = [np.ones((len(arr), 1)), exper[:, None], (exper**2)[:, None]]
    region = [region_of(v) for v in panel.column(REGION).to_pylist()]
    for values in (
        _education_level(panel),
        panel.column(GENDER).to_pylist(),
        panel.column(RACE).to_pylist(),
        region,
        arr.year,
        groups,
    ):
        blocks.append(_dummies(np.asarray(["" if v is None else str(v) for v in values], dtype=object)))
    return np.concatenate(blocks, axis=1)


def _dummies(values: np.ndarray) -> np.ndarray:
    levels = sorted(set(values.tolist()))
    if len(levels) < 2:
        return np.zeros((len(values), 0))
    idx = np.searchsorted(np.asarray(levels, dtype=object), values)
    out = np.zeros((len(values), len(levels) - 1))
    rows = np.flatnonzero(idx > 0)
    out[rows, idx[rows] - 1] = 1.0
    return out


@dataclass(frozen=True)
class WageR2:
    """Held-out R^2 of one specification (CAREER Table 3 row)."""

    label: str
    r2: float  # mean over folds
    r2_se: float  # standard error over folds
    by_decade: dict[str, float]  # "1990-1999" -> mean held-out R^2 over folds
    rows: int  # person-years with a wage
    dims: int  # representation columns used (0 for covariates only)


def _fit_predict(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    h_train: np.ndarray | None,
    h_test: np.ndarray | None,
    components: int | None,
    ridge: float,
    standardize: bool = False,
) -> tuple[np.ndarray, int]:
    """Least squares on ``[x, reduced h]`` with an L2 penalty on the ``h`` block only; predictions on the test rows."""
    if h_train is not None and h_test is not None and h_train.shape[1]:
        # Centre (and, with ``standardize``, scale) and rotate onto the leading principal components, all
        # estimated on the training rows: eigenvectors of the D x D covariance, cheaper than an SVD of the rows.
        mean = h_train.mean(axis=0)
        scale = h_train.std(axis=0)
        keep = scale > 1e-12
        div = scale[keep] if standardize else 1.0
        ht = (h_train[:, keep] - mean[keep]) / div
        hs = (h_test[:, keep] - mean[keep]) / div
        if components is not None and components < ht.shape[1]:
            _, vecs = np.linalg.eigh(ht.T @ ht)
            top = vecs[:, ::-1][:, :components]  # eigh sorts ascending
            ht, hs = ht @ top, hs @ top
        a_train, a_test = np.concatenate([x_train, ht], axis=1), np.concatenate([x_test, hs], axis=1)
        dims = ht.shape[1]
    else:
        a_train, a_test, dims = x_train, x_test, 0
    if ridge > 0 and dims:
        penalty = np.zeros((dims, a_train.shape[1]))
        penalty[:, x_train.shape[1] :] = math.sqrt(ridge) * np.eye(dims)
        a_fit, y_fit = np.concatenate([a_train, penalty]), np.concatenate([y_train, np.zeros(dims)])
    else:
        a_fit, y_fit = a_train, y_train
    beta, *_ = np.linalg.lstsq(
        a_fit, y_fit, rcond=None
    )  # minimum-norm: dummies absent from a fold are harmless
    return a_test @ beta, dims


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    if len(y) < 2:
        return float("nan")
    sst = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / sst if sst > 0 else float("nan")


def person_folds(person_ids: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """``[n]`` fold of each row: persons shuffled with ``seed`` and dealt round-robin into ``folds``."""
    unique, inverse = np.unique(np.asarray(person_ids, dtype=object).astype(str), return_inverse=True)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x666F6C64])).permutation(
        len(unique)
    )  # "fold"
    fold_of = np.empty(len(unique), dtype=np.int64)
    fold_of[order] = np.arange(len(unique)) % folds
    return fold_of[inverse]


def wage_r2(
    panel: pa.Table, taxonomy: Taxonomy, rep: np.ndarray | None, cfg: WageStudyConfig, label: str
) -> WageR2:
    """Held-out R^2 of the wage regression on ``x`` (and ``rep``, ``[n_rows, D]`` row-aligned, when given).

    Raises:
        InputDataError: the panel has fewer than ``folds`` persons with a wage.
    """
    wage = np.asarray(
        pc.fill_null(panel.column(WAGE), np.nan).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    rows = np.flatnonzero(np.isfinite(wage))
    x = covariate_matrix(panel, taxonomy)[rows]
    y = wage[rows]
    h = None if rep is None else rep[rows]
    years = np.asarray(panel.column("year").to_numpy(zero_copy_only=False), dtype=np.int64)[rows]
    ids = np.asarray(panel.column(PERSON_ID).to_pylist(), dtype=object)[rows]
    fold = person_folds(ids, cfg.folds, cfg.seed)
    if len(np.unique(fold)) < cfg.folds:
        raise InputDataError(
            "<wage panel>", None, WAGE, f"fewer than {cfg.folds} persons with a recorded wage"
        )
    scores: list[float] = []
    decade: dict[str, list[float]] = {}
    dims = 0
    for f in range(cfg.folds):
        tr, te = fold != f, fold == f
        pred, dims = _fit_predict(
            x[tr],
            y[tr],
            x[te],
            None if h is None else h[tr],
            None if h is None else h[te],
            cfg.components,
            cfg.ridge,
            cfg.standardize,
        )
        scores.append(_r2(y[te], pred))
        for lo, hi in DECADES:
            sel = (years[te] >= lo) & (years[te] <= hi)
            if sel.sum() >= 2:
                decade.setdefault(f"{lo}-{hi}", []).append(_r2(y[te][sel], pred[sel]))
    arr = np.asarray(scores)
    return WageR2(
        label=label,
        r2=float(arr.mean()),
        r2_se=float(arr.std(ddof=1) / math.sqrt(len(arr))),
        by_decade={k: float(np.nanmean(v)) for k, v in decade.items()},
        rows=len(rows),
        dims=dims,
    )


def wage_study(
    models: dict[str, NextOccupationModel], panel: pa.Table, taxonomy: Taxonomy, cfg: WageStudyConfig
) -> list[WageR2]:
    """CAREER's Table 3 rows: the covariates alone, then covariates plus each model's representation.

    Raises:
        InputDataError: the panel records no wage and ``attach`` is ``never``.
    """
    if cfg.attach == "always" or (cfg.attach == "auto" and not has_wages(panel)):
        logger.info(
            "wages: attaching synthetic wages (%s)", "always" if cfg.attach == "always" else "none recorded"
        )
        panel = attach_synthetic_wages(panel, taxonomy, cfg.synthetic)
    elif not has_wages(panel):
        raise InputDataError(
            "<wage panel>", None, WAGE, "no wage is recorded (set wages.attach=auto to simulate some)"
        )
    out = [wage_r2(panel, taxonomy, None, cfg, "Covariates (Blau-Kahn style)")]
    if cfg.bag_row:
        out.append(
            wage_r2(panel, taxonomy, bag_of_past_jobs(panel, taxonomy), cfg, "Covariates + bag of past jobs")
        )
    for name, model in models.items():
        rep, kind = representation(model, panel, cfg.representation)
        out.append(wage_r2(panel, taxonomy, rep, cfg, f"Covariates + {name} ({kind})"))
        logger.info("wages: %s (%s): held-out R^2 %.3f", name, kind, out[-1].r2)
    return out
