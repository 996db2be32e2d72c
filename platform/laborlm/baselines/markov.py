"""First- and second-order Markov chains over occupations, with CAREER's smoothing (Appendix G).

First order:  p(k | j)    = 0.99 * transitions(j -> k) / transitions(j -> .) + 0.01 * f(k)
Second order: p(k | i, j) = 0.5 * transitions(i, j -> k) / transitions(i, j -> .) + 0.5 * p1(k | j)

``f`` is the empirical distribution of individual jobs. CAREER does not say how it handles occupations that
never occur in training; so that no held-out person-year gets probability zero (an infinite perplexity),
``f`` adds ``alpha`` pseudo-counts to every occupation (0.1 by default; a tiny effect on seen codes). A
first observed year has no previous job: it is predicted by the smoothed distribution of first jobs,
``0.99 * first_jobs(k) + 0.01 * f(k)``. Rows whose previous state was never seen in training fall back to
the next smoothing level. Covariates are ignored: that is what makes these the baselines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from laborlm.errors import CheckpointError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.sequences import panel_arrays

_FORMAT = "laborlm.markov/1"


class MarkovModel:
    """A Markov chain of order 1 or 2 (see module docstring). Implements ``NextOccupationModel``."""

    def __init__(self, taxonomy: Taxonomy, order: int = 1, weight: float = 0.99, alpha: float = 0.1) -> None:
        if order not in (1, 2):
            raise ValueError(f"Markov order must be 1 or 2, got {order}")
        self.taxonomy = taxonomy
        self.order = order
        self.weight = weight  # first-order weight on transitions (0.99 in CAREER)
        self.alpha = alpha
        self.name = f"markov{order}"
        K = len(taxonomy)
        self.freq = np.full(K, 1.0 / K)  # [K] smoothed job frequencies f
        self.first = np.full(K, 1.0 / K)  # [K] smoothed first-job distribution
        self.trans = np.tile(self.freq, (K, 1))  # [K, K] smoothed p1(k | j)
        self.pair_counts: sp.csr_matrix = sp.csr_matrix((K * K, K))  # [(i*K + j), K] second-order counts

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        arr = panel_arrays(train, self.taxonomy)
        K = len(self.taxonomy)
        counts = np.bincount(arr.occ, minlength=K).astype(np.float64)
        self.freq = (counts + self.alpha) / (counts.sum() + self.alpha * K)
        first_counts = np.bincount(arr.occ[arr.prev < 0], minlength=K).astype(np.float64)
        self.first = self._mix(first_counts[None, :], self.freq, self.weight)[0]
        has_prev = arr.prev >= 0
        t_counts = np.zeros((K, K))
        np.add.at(t_counts, (arr.prev[has_prev], arr.occ[has_prev]), 1.0)
        self.trans = self._mix(t_counts, self.freq, self.weight)
        has2 = arr.prev2 >= 0
        rows = arr.prev2[has2] * K + arr.prev[has2]
        self.pair_counts = sp.csr_matrix((np.ones(int(has2.sum())), (rows, arr.occ[has2])), shape=(K * K, K))
        self.pair_counts.sum_duplicates()

    @staticmethod
    def _mix(counts: np.ndarray, fallback: np.ndarray, weight: float) -> np.ndarray:
        """Rows of ``weight * counts / row_total + (1 - weight) * fallback``; unseen rows are ``fallback``."""
        totals = counts.sum(axis=1, keepdims=True)
        empirical = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        mixed = weight * empirical + (1.0 - weight) * fallback[None, :]
        return np.where(totals > 0, mixed, fallback[None, :])

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        arr = panel_arrays(panel, self.taxonomy)
        K = len(self.taxonomy)
        out = np.empty((len(arr), K))
        first = arr.prev < 0
        out[first] = self.first
        out[~first] = self.trans[arr.prev[~first]]
        if self.order == 2:
            idx = np.flatnonzero(arr.prev2 >= 0)
            pair = self.pair_counts[arr.prev2[idx] * K + arr.prev[idx]].toarray()  # [m, K]
            totals = pair.sum(axis=1)
            seen = totals > 0
            rows = idx[seen]
            out[rows] = 0.5 * pair[seen] / totals[seen, None] + 0.5 * out[rows]
        with np.errstate(divide="ignore"):  # alpha=0 legitimately gives zero probabilities
            return np.log(out)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path / "markov.npz", freq=self.freq, first=self.first, trans=self.trans)
        sp.save_npz(path / "pair_counts.npz", self.pair_counts)
        self.taxonomy.to_csv(path / "taxonomy.csv")
        meta = {
            "format": _FORMAT,
            "order": self.order,
            "weight": self.weight,
            "alpha": self.alpha,
            "taxonomy": self.taxonomy.name,
            "taxonomy_fingerprint": self.taxonomy.fingerprint(),
        }
        (path / "model.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: Path, taxonomy: Taxonomy | None = None) -> MarkovModel:
        path = Path(path)
        meta = json.loads((path / "model.json").read_text())
        taxonomy = taxonomy or Taxonomy.from_csv(path / "taxonomy.csv")
        if taxonomy.fingerprint() != meta["taxonomy_fingerprint"]:
            raise CheckpointError(
                f"{path}: saved with taxonomy {meta['taxonomy_fingerprint']}, loaded with {taxonomy.fingerprint()}"
            )
        model = cls(taxonomy, order=meta["order"], weight=meta["weight"], alpha=meta["alpha"])
        with np.load(path / "markov.npz") as z:
            model.freq, model.first, model.trans = z["freq"], z["first"], z["trans"]
        model.pair_counts = sp.load_npz(path / "pair_counts.npz").tocsr()
        return model
