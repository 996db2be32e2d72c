"""The evaluation harness: score any ``NextOccupationModel`` on a panel with the shared metric code.

Every model (Markov chains, regression, bag-of-jobs, NEMO, CAREER, fine-tuned language models, and the
oracle) goes through ``evaluate_model``, so all numbers in a comparison table are computed on the same
person-years by the same functions.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from laborlm.baselines.base import NextOccupationModel
from laborlm.evaluation.metrics import Metrics, evaluate_log_probs
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import EDUCATION, GENDER, ORACLE_LOGP, RACE, REGION, region_of
from laborlm.sequences import panel_arrays

logger = logging.getLogger(__name__)

SUBGROUP_COLUMNS = (EDUCATION, GENDER, RACE, REGION)


def subgroups_of(panel: pa.Table) -> dict[str, list[object]]:
    """Covariate values per row for perplexity by subgroup (regions pooled from states to census regions)."""
    out: dict[str, list[object]] = {}
    for col in SUBGROUP_COLUMNS:
        values = panel.column(col).to_pylist()
        if col == REGION:
            values = [region_of(v) for v in values]
        if any(v is not None for v in values):
            out[col] = values
    return out


def oracle_logp_of(panel: pa.Table) -> np.ndarray | None:
    """``[n]`` the generator's exact log p of each target, if every row of the panel carries it."""
    col = panel.column(ORACLE_LOGP)
    if col.null_count:
        return None
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def evaluate_model(model: NextOccupationModel, panel: pa.Table, taxonomy: Taxonomy | None = None) -> Metrics:
    """Metrics of ``model`` on every person-year of ``panel`` (canonical, sorted by person then year)."""
    taxonomy = taxonomy or model.taxonomy
    arrays = panel_arrays(panel, taxonomy)
    log_probs = model.log_probs(panel)
    if log_probs.shape != (len(arrays), len(taxonomy)):
        raise ValueError(
            f"{model.name}: log_probs shape {log_probs.shape}, expected {(len(arrays), len(taxonomy))}"
        )
    metrics = evaluate_log_probs(
        log_probs, arrays, subgroups=subgroups_of(panel), oracle_logp=oracle_logp_of(panel)
    )
    logger.info(
        "%s: perplexity %.3f on %d person-years", model.name, metrics.perplexity, metrics.person_years
    )
    return metrics
