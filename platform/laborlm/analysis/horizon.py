"""A Markov chain fitted on k-step transitions: the model that predicts ``y_{t+k}`` *directly* from ``y_t``.

LABOR-LLM asks whether a model's direct multi-year predictions agree with the composition of its one-year
predictions (the chain rule): nothing constrains a model trained on two-year transitions to equal the
square of the one trained on one-year transitions. A first-order Markov chain is the smallest model where
both are computable exactly, so the gap measures what direct estimation changes, not Monte-Carlo noise:

    direct:   p_k(j -> y)      = 0.99 * transitions_k(j -> y) / transitions_k(j -> .) + 0.01 * f(y)
    composed: p_1^k(j -> y)    = (T^k)[j, y], T the smoothed one-step chain of ``baselines.markov``

``transitions_k`` counts pairs of observations ``k`` rows apart within a person (rows, not years: on a
biennial survey one row is two years), with the same smoothing as ``MarkovModel`` (CAREER Appendix G).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa

from laborlm.errors import CheckpointError, ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.sequences import panel_arrays

logger = logging.getLogger(__name__)

_FORMAT = "laborlm.direct_horizon_markov/1"


class DirectHorizonMarkov:
    """``p(y_t | y_{t-k})``: a first-order chain over k-row transitions. Implements ``NextOccupationModel``.

    Row ``r`` of ``log_probs`` is the distribution of row ``r``'s occupation given the occupation ``steps``
    rows earlier (the rows between are not looked at: this is the direct k-step forecast). Rows closer than
    ``steps`` to the start of their career have no such row: a first row gets the smoothed first-job
    distribution, the others the smoothed job frequencies ``f``. Only rows ``>= steps`` into a career are
    what the model is for.
    """

    def __init__(self, taxonomy: Taxonomy, steps: int, weight: float = 0.99, alpha: float = 0.1) -> None:
        if steps < 1:
            raise ConfigError(f"steps: expected >= 1, got {steps}")
        self.taxonomy = taxonomy
        self.steps = steps
        self.weight = weight  # weight on the empirical k-step transitions (0.99 as CAREER's chains)
        self.alpha = alpha  # pseudo-count per occupation in f, so no held-out row gets probability zero
        self.name = f"direct-markov-{steps}step"
        K = len(taxonomy)
        self.freq = np.full(K, 1.0 / K)  # [K] smoothed job frequencies f
        self.first = np.full(K, 1.0 / K)  # [K] smoothed first-job distribution
        self.trans = np.tile(self.freq, (K, 1))  # [K, K] smoothed p(y_t | y_{t-k})

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        arr = panel_arrays(train, self.taxonomy)
        K = len(self.taxonomy)
        counts = np.bincount(arr.occ, minlength=K).astype(np.float64)
        self.freq = (counts + self.alpha) / (counts.sum() + self.alpha * K)
        first = np.bincount(arr.occ[arr.position == 0], minlength=K).astype(np.float64)
        self.first = _mix(first[None, :], self.freq, self.weight)[0]
        origin = np.arange(len(arr)) - self.steps  # the row k earlier, valid where it is the same person
        ok = arr.position >= self.steps
        t = np.zeros((K, K))
        np.add.at(t, (arr.occ[origin[ok]], arr.occ[ok]), 1.0)
        self.trans = _mix(t, self.freq, self.weight)
        logger.debug("%s: %d k-step transitions", self.name, int(ok.sum()))

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        arr = panel_arrays(panel, self.taxonomy)
        out = np.empty((len(arr), len(self.taxonomy)))
        far = arr.position >= self.steps
        out[far] = self.trans[arr.occ[np.flatnonzero(far) - self.steps]]
        out[arr.position == 0] = self.first
        out[~far & (arr.position > 0)] = self.freq
        with np.errstate(divide="ignore"):
            return np.log(out)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path / "direct_markov.npz", freq=self.freq, first=self.first, trans=self.trans)
        self.taxonomy.to_csv(path / "taxonomy.csv")
        meta = {
            "format": _FORMAT,
            "steps": self.steps,
            "weight": self.weight,
            "alpha": self.alpha,
            "taxonomy_fingerprint": self.taxonomy.fingerprint(),
        }
        (path / "direct_markov.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: Path) -> DirectHorizonMarkov:
        """Rebuild a saved model.

        Raises:
            CheckpointError: not a saved direct-horizon chain, or its taxonomy file was changed.
        """
        path = Path(path)
        try:
            meta = json.loads((path / "direct_markov.json").read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a saved direct-horizon Markov chain: {exc}") from exc
        if meta.get("format") != _FORMAT:
            raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {_FORMAT!r}")
        taxonomy = Taxonomy.from_csv(path / "taxonomy.csv")
        if taxonomy.fingerprint() != meta["taxonomy_fingerprint"]:
            raise CheckpointError(f"{path}: taxonomy.csv does not match the saved fingerprint")
        model = cls(taxonomy, meta["steps"], meta["weight"], meta["alpha"])
        with np.load(path / "direct_markov.npz") as z:
            model.freq, model.first, model.trans = z["freq"], z["first"], z["trans"]
        return model


def _mix(counts: np.ndarray, fallback: np.ndarray, weight: float) -> np.ndarray:
    """Rows of ``weight * counts / row_total + (1 - weight) * fallback``; rows never seen are ``fallback``."""
    totals = counts.sum(axis=1, keepdims=True)
    empirical = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return np.where(totals > 0, weight * empirical + (1.0 - weight) * fallback[None, :], fallback[None, :])
