"""A vector per person-year summarising the job history: what wage regressions and career similarity read.

CAREER's downstream uses (Table 3, Figure 5) read the transformer's hidden state ``h_t``, the
representation its head turns into ``p(y_t | history)``: it summarises everything before year t and the
covariates of year t. Models that expose such a state are asked for it (``hidden``):

- ``NeuralOccupationModel.representations(panel)`` (CAREER, NEMO, bag-of-jobs, the regression);
- ``EmbeddingOccupationModel.features(panel)[0]`` (the language model's hidden state at the prompt).

Every model has two fallbacks, so the analyses run for the Markov chains, the oracle and scoring LLMs too:

- ``predicted``: the model's own next-occupation distribution at the row, as log-probabilities clipped at
  ``log(1e-8)`` (a -inf from a state the model rules out would break a regression). Whatever the model knows
  about the history that matters for the next job is in it;
- ``bag``: the bag of past jobs, the share of each state among the person's *earlier* rows (zeros at a
  first row): model-free, CAREER's bag-of-jobs baseline reduced to its input.

All are row-aligned with the panel and describe row t from rows ``< t`` plus row t's covariates, so a wage
regression of year t never sees year t's job through the representation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa

from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

RepresentationKind = Literal["auto", "hidden", "predicted", "bag"]
LOG_FLOOR = float(np.log(1e-8))  # clip for log-probabilities used as features


def has_hidden(model: NextOccupationModel) -> bool:
    """Whether the model exposes a hidden-state representation (see module docstring)."""
    return callable(getattr(model, "representations", None)) or (
        callable(getattr(model, "features", None)) and getattr(model, "kind", None) == "embedding"
    )


def representation(
    model: NextOccupationModel, panel: pa.Table, kind: RepresentationKind = "auto"
) -> tuple[np.ndarray, str]:
    """``([n_rows, D], resolved kind)``: the representation of every row of ``panel``.

    ``auto`` is ``hidden`` when the model has one, else ``predicted``.

    Raises:
        ConfigError: ``hidden`` asked of a model that has none.
    """
    if kind == "auto":
        kind = "hidden" if has_hidden(model) else "predicted"
    if kind == "hidden":
        if callable(getattr(model, "representations", None)):
            return np.asarray(model.representations(panel), dtype=np.float64), kind  # type: ignore[attr-defined]
        if has_hidden(model):
            return np.asarray(model.features(panel)[0], dtype=np.float64), kind  # type: ignore[attr-defined]
        raise ConfigError(
            f"representation: {model.name} exposes no hidden state; use 'predicted' or 'bag' (or 'auto')"
        )
    if kind == "predicted":
        return np.maximum(model.log_probs(panel), LOG_FLOOR), kind
    if kind == "bag":
        return bag_of_past_jobs(panel, model.taxonomy), kind
    raise ConfigError(f"representation: expected auto, hidden, predicted or bag, got {kind!r}")


def bag_of_past_jobs(panel: pa.Table, taxonomy: Taxonomy) -> np.ndarray:
    """``[n_rows, K]`` share of each state among the person's earlier rows (a first row is all zeros).

    A running sum of one-hot rows within each person, shifted by one row so that row t sees rows ``< t``.
    """
    arr = panel_arrays(panel, taxonomy)
    K = len(taxonomy)
    onehot = np.zeros((len(arr), K))
    onehot[np.arange(len(arr)), arr.occ] = 1.0
    running = np.cumsum(onehot, axis=0)
    before = np.zeros_like(running)  # cumulative counts up to the previous row...
    before[1:] = running[:-1]
    first = arr.starts[arr.person]
    base = np.where((first > 0)[:, None], running[np.maximum(first - 1, 0)], 0.0)  # ...minus earlier persons
    counts = before - base
    counts[arr.position == 0] = 0.0
    shares: np.ndarray = counts / np.maximum(arr.position, 1)[:, None]
    return shares
