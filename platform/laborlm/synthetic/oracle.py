"""The synthetic market's exact oracle as a model: ``OracleModel`` implements ``NextOccupationModel``.

    model = OracleModel.from_panel("runs/psid")  # the synth.yaml that generate_panel wrote there
    metrics = evaluate_model(model, select_split(read_panel("runs/psid").table, "test"))

Why a model and not only the ``oracle_logp`` column: the column gives the target's log-probability, enough
for the perplexity floor, but the stay-vs-move AUC, the calibration of P(stay) and the perplexities by
transition type are computed from the whole next-step distribution. Scored through the same harness as
every other model, the oracle gets the same numbers from the same code, and is the reference for every
column of a comparison table, not only the perplexity.

What it conditions on is what a panel row records, nothing hidden: the static covariates (gender, race,
region, birth year), the years a person is observed, the recorded education and the recorded occupations
(coding noise included). From those rows it rebuilds the ``Population`` and the observed ``(occ, edu)``
arrays and teacher-forces ``generate.simulate(..., full=True)``, so every probability comes from the step
code that drew the data (``process.step_model`` and ``process.next_state_log_probs``), and the target's
entry equals ``oracle_logp`` to rounding. Unrecorded values are handled as generation handled them:
missing education is the "not recorded" level for the whole career, a missing birth year means proxy ages
(``proxy_start_age`` at the first observed year), missing gender or race are their own levels. A later row
without education (which generation never writes, but a user's history may) carries the last recorded level
forward; an observation no type can produce (education that falls, or is recorded after years without it)
leaves the type posterior unchanged (``generate._update``), so every answer stays a finite distribution.

A person's history is that person's rows in the panel given, so scoring a subset of people (a test split)
gives exactly the rows of scoring the whole panel; dropping a person's early years changes what the later
ones condition on, as for every model. States the process cannot produce get probability 0 (log ``-inf``):
in presets without special states (resumes: years out of work are simply missing) the unemployed,
out-of-labour-force and in-school states; every other state keeps a positive probability. The panel's
``oracle_logp`` is never used to compute anything; when present, a mismatch with the recomputed targets is
logged as a warning (these data were not generated with this config).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm.errors import CheckpointError, LaborLMError, SchemaError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import (
    BIRTH_YEAR,
    EDUCATION,
    EDUCATION_LEVELS,
    GENDER,
    GENDERS,
    ORACLE_LOGP,
    RACE,
    RACES,
    REGION,
    REGIONS,
    SOURCE,
)
from laborlm.sequences import PanelArrays, panel_arrays
from laborlm.synthetic.config import SynthConfig, load_synth_config, write_synth_config
from laborlm.synthetic.generate import simulate
from laborlm.synthetic.population import Population
from laborlm.synthetic.process import (
    EDU_MISSING,
    GENDER_MISSING,
    RACE_MISSING,
    REGION_MISSING,
    FloatArray,
    IntArray,
    Market,
    build_market,
)

logger = logging.getLogger(__name__)

MISMATCH_TOLERANCE = 1e-6  # |recomputed - recorded oracle_logp| above which the panel and config disagree


class OracleModel:
    """The data-generating process of a ``SynthConfig`` as a next-occupation model (see module docstring).

    Args:
        config: the config the panel was generated with (``load_synth_config(panel_dir)``).
        batch_people: people scored at a time; bounds the working memory (about ``batch_people * T * K``
            floats for the per-step distributions) without changing any number.
    """

    name = "oracle"

    def __init__(self, config: SynthConfig, *, batch_people: int = 4096) -> None:
        if batch_people < 1:
            raise ValueError(f"batch_people must be >= 1, got {batch_people}")
        self.config = config
        self.batch_people = batch_people
        self.taxonomy = Taxonomy.default()  # the process's state space: generate_panel writes this taxonomy
        self.market: Market = build_market(config.dynamics, config.market_seed)  # cached per process

    @classmethod
    def from_panel(cls, panel_dir: str | Path) -> OracleModel:
        """The oracle of a folder written by ``generate_panel`` (its ``synth.yaml``).

        Raises:
            LaborLMError: the folder records no generating config (not a synthetic panel, or one exported
                elsewhere without it).
        """
        config = load_synth_config(panel_dir)
        if config is None:
            raise LaborLMError(
                f"{panel_dir}: no synth.yaml; only panels written by generate_panel have an oracle"
            )
        return cls(config)

    @classmethod
    def load(cls, path: str | Path) -> OracleModel:
        """Load a saved oracle (a folder with ``synth.yaml``; a synthetic panel folder is one too).

        Raises:
            CheckpointError: the folder has no ``synth.yaml``.
        """
        config = load_synth_config(path)
        if config is None:
            raise CheckpointError(f"{path}: no saved oracle here (expected synth.yaml)")
        return cls(config)

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Nothing to estimate: the oracle *is* the generating process."""
        logger.debug("oracle: fit() is a no-op")

    def save(self, path: Path) -> None:
        """Write ``synth.yaml``: the config alone reproduces every probability (the market is rebuilt from it)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_synth_config(self.config, path)

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` exact log p(occupation of the row | the person's earlier rows, covariates).

        Rows must be clustered by person with increasing years (the canonical order). People are scored
        ``batch_people`` at a time; each batch is one vectorised ``simulate`` over its people's grid.

        Raises:
            LaborLMError: the panel holds rows of another source than the config's.
            SchemaError: an occupation or covariate value the process cannot record, or rows out of order.
        """
        start = time.perf_counter()
        self._check_source(panel)
        arrays = panel_arrays(panel, self.taxonomy)
        out = np.empty((len(arrays), self.market.K))
        if len(arrays) == 0:
            return out
        pop, occ, edu = _careers(panel, arrays)
        rng = np.random.default_rng(0)  # teacher forcing: only draws the latent types and wages, never read
        for lo in range(0, len(pop), self.batch_people):
            people = np.arange(lo, min(lo + self.batch_people, len(pop)))
            batch = _take(pop, people)
            observed = (occ[people], edu[people])
            careers = simulate(self.market, self.config, batch, rng, observed=observed, full=True)
            assert careers.next_log_probs is not None
            for s, dist in enumerate(careers.next_log_probs):
                active = people[batch.length > s]
                out[arrays.starts[active] + s] = dist  # the row of person p's (s+1)-th observation
        self._check_against_recorded(panel, out, arrays)
        logger.info(
            "oracle: scored %d person-years of %d people in %.2f s",
            len(arrays),
            arrays.n_people,
            time.perf_counter() - start,
        )
        return out

    def _check_source(self, panel: pa.Table) -> None:
        """Refuse rows from another source: the population (selection, grid, recording) is part of the oracle."""
        if SOURCE not in panel.column_names:
            return
        other = sorted(v for v in pc.unique(panel.column(SOURCE)).to_pylist() if v != self.config.source)
        if other:
            names = ", ".join(map(repr, other))
            raise LaborLMError(
                f"oracle of source {self.config.source!r} asked to score rows of source(s) {names}; "
                "score each source with the oracle of its own panel"
            )

    def _check_against_recorded(self, panel: pa.Table, out: FloatArray, arrays: PanelArrays) -> None:
        """Warn when the panel's own ``oracle_logp`` disagrees with the recomputed targets (a config mismatch)."""
        if ORACLE_LOGP not in panel.column_names or panel.column(ORACLE_LOGP).null_count:
            return
        recorded = np.asarray(panel.column(ORACLE_LOGP).to_numpy(zero_copy_only=False), dtype=np.float64)
        diff = np.abs(out[np.arange(len(arrays)), arrays.occ] - recorded)
        bad = ~(diff <= MISMATCH_TOLERANCE)  # NaN counts as a mismatch
        if bad.any():
            logger.warning(
                "oracle: %d of %d rows differ from the panel's oracle_logp (max |diff| %.3g): was this panel "
                "generated with this config, with every person's rows from the first?",
                int(bad.sum()),
                len(bad),
                float(np.nanmax(np.where(bad, diff, 0.0))),
            )


def _careers(panel: pa.Table, arrays: PanelArrays) -> tuple[Population, IntArray, IntArray]:
    """The ``Population`` and the observed ``(occ, edu)`` ``[n_people, T]`` arrays that generated these rows.

    Everything comes from the rows: static covariates from each person's first row, the grid from the years,
    the first education from the first row's (it is part of the population, as in ``draw_population``).
    """
    people, T = arrays.n_people, int(arrays.position.max()) + 1
    length = np.bincount(arrays.person, minlength=people).astype(np.int64)
    years = np.zeros((people, T), dtype=np.int64)
    years[arrays.person, arrays.position] = arrays.year
    occ = np.full((people, T), -1, dtype=np.int64)
    occ[arrays.person, arrays.position] = arrays.occ
    edu_row = _category_index(panel, EDUCATION, EDUCATION_LEVELS, EDU_MISSING)
    edu = np.full((people, T), EDU_MISSING, dtype=np.int64)
    edu[arrays.person, arrays.position] = edu_row
    for t in range(1, T):  # a later row without education keeps the last recorded level (README: "so far")
        gap = edu[:, t] == EDU_MISSING
        edu[gap, t] = edu[gap, t - 1]
    first = arrays.starts
    if BIRTH_YEAR in panel.column_names:
        birth = pc.fill_null(panel.column(BIRTH_YEAR).cast(pa.int64()), -1).to_numpy()[first]
    else:
        birth = np.full(people, -1, dtype=np.int64)
    first_edu = edu_row[first]
    pop = Population(
        gender=_category_index(panel, GENDER, GENDERS, GENDER_MISSING)[first],
        race=_category_index(panel, RACE, RACES, RACE_MISSING)[first],
        region=_category_index(panel, REGION, REGIONS, REGION_MISSING)[first],
        birth_year=np.asarray(birth, dtype=np.int64),
        edu_recorded=first_edu != EDU_MISSING,
        first_edu=first_edu,
        years=years,
        length=length,
    )
    return pop, occ, edu


def _category_index(panel: pa.Table, column: str, values: tuple[str, ...], missing: int) -> IntArray:
    """``[n_rows]`` index of each value in ``values``; ``missing`` where null (or the column is absent).

    Raises:
        SchemaError: a value the synthetic process never records (e.g. a state instead of a census region).
    """
    if column not in panel.column_names:
        return np.full(panel.num_rows, missing, dtype=np.int64)
    col = panel.column(column)
    idx = pc.index_in(col, value_set=pa.array(values, pa.string()))
    unknown = pc.and_(pc.is_null(idx), pc.is_valid(col))
    if pc.any(unknown).as_py():
        bad = col.filter(unknown)[0].as_py()
        raise SchemaError(
            f"{column}: {bad!r} is not a value the synthetic process records ({', '.join(values)})"
        )
    return np.asarray(pc.fill_null(idx, missing).to_numpy(), dtype=np.int64)


def _take(pop: Population, people: IntArray) -> Population:
    """The ``people`` of a population, their grid trimmed to the longest career among them."""
    length = pop.length[people]
    return Population(
        gender=pop.gender[people],
        race=pop.race[people],
        region=pop.region[people],
        birth_year=pop.birth_year[people],
        edu_recorded=pop.edu_recorded[people],
        first_edu=pop.first_edu[people],
        years=pop.years[people, : int(length.max())],
        length=length,
    )
