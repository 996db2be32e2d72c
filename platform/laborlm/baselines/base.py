"""The one interface every next-occupation model implements, the oracle and the language models included.

Row ``r`` of ``log_probs(panel)`` is the model's distribution over the taxonomy (``[K]``, natural log) for the
occupation of panel row ``r``, given the earlier rows of the same person and the covariates of row ``r``.
The panel is canonical and sorted by (person_id, year), so every model is scored on exactly the same
person-years by ``laborlm.evaluation.metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from laborlm.occupations.taxonomy import Taxonomy


@runtime_checkable
class NextOccupationModel(Protocol):
    name: str
    taxonomy: Taxonomy

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Estimate parameters on ``train``; ``valid`` is for early stopping where the model has any."""

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` log-probabilities, rows aligned with ``panel``."""

    def save(self, path: Path) -> None:
        """Write everything needed to reproduce ``log_probs`` into the folder ``path``."""
