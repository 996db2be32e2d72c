"""The unigram model: every person-year gets the occupation frequencies of the training split.

    p(k) = (count(k) + alpha) / (N + alpha * K)

``count(k)`` is the number of training person-years in occupation ``k`` (special states included), ``N``
their total and ``K`` the taxonomy size. It ignores history and covariates altogether, so it is the floor
every model must beat: a model that does not beat it has learnt nothing from careers. ``alpha`` pseudo-counts
(add-one by default) give every label positive mass, so no held-out person-year gets probability zero (an
infinite perplexity) for an occupation unseen in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from laborlm.errors import CheckpointError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.sequences import panel_arrays

FORMAT = "laborlm.unigram/1"
META_FILE = "model.json"  # shared file name with the Markov chains; ``format`` tells them apart
_WEIGHTS = "unigram.npz"
_TAXONOMY = "taxonomy.csv"


class UnigramModel:
    """Occupation frequencies with add-``alpha`` smoothing (see module docstring). Implements ``NextOccupationModel``."""

    name = "unigram"

    def __init__(self, taxonomy: Taxonomy, alpha: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f"unigram alpha must be > 0 (every label needs mass), got {alpha}")
        self.taxonomy = taxonomy
        self.alpha = alpha
        self.probs = np.full(len(taxonomy), 1.0 / len(taxonomy))  # [K]; uniform until fitted

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Count occupations over every training person-year (``valid`` is not needed: nothing to stop)."""
        K = len(self.taxonomy)
        counts = np.bincount(panel_arrays(train, self.taxonomy).occ, minlength=K).astype(np.float64)
        self.probs = (counts + self.alpha) / (counts.sum() + self.alpha * K)

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]``: the same distribution on every row."""
        n = len(panel_arrays(panel, self.taxonomy))  # also checks the codes and the row order
        return np.broadcast_to(np.log(self.probs), (n, len(self.taxonomy))).copy()

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path / _WEIGHTS, probs=self.probs)
        self.taxonomy.to_csv(path / _TAXONOMY)
        meta = {
            "format": FORMAT,
            "alpha": self.alpha,
            "taxonomy": self.taxonomy.name,
            "taxonomy_fingerprint": self.taxonomy.fingerprint(),
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: Path) -> UnigramModel:
        """Rebuild a saved model.

        Raises:
            CheckpointError: another format, missing files, or a taxonomy.csv that no longer matches.
        """
        path = Path(path)
        try:
            meta = json.loads((path / META_FILE).read_text())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
            taxonomy = Taxonomy.from_csv(path / _TAXONOMY)
            with np.load(path / _WEIGHTS) as z:
                probs = np.asarray(z["probs"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: not a complete saved unigram model: {exc}") from exc
        if taxonomy.fingerprint() != meta.get("taxonomy_fingerprint"):
            raise CheckpointError(
                f"{path}: taxonomy.csv no longer matches fingerprint {meta.get('taxonomy_fingerprint')}"
            )
        if probs.shape != (len(taxonomy),):
            raise CheckpointError(f"{path}: {probs.shape[0]} probabilities for {len(taxonomy)} occupations")
        model = cls(taxonomy, alpha=float(meta["alpha"]))
        model.probs = probs
        return model
