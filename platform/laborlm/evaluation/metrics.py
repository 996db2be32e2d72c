"""Metrics over log-probability arrays: pure numpy, no framework imports.

Every model returns ``log_probs: np.ndarray  # [n_rows, K]`` for the same person-years of a canonical panel,
so one function turns each into the same numbers. The denominator of every perplexity is the number of
person-years scored: every observed year of every held-out person, the first included (predicted from
covariates alone), as CAREER's evaluation counts them. Header and covariate tokens of text models are never
scored; only occupations are.
"""

from __future__ import annotations

import numpy as np


def target_log_probs(log_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[n]`` log-probability each row assigns to its observed occupation (``targets``: ``[n]`` indices)."""
    return log_probs[np.arange(len(targets)), targets]


def perplexity(target_logp: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``exp(-mean log p)`` over the rows selected by ``mask`` (all rows if None); NaN if none are selected.

    Why perplexity: it is a monotone transform of held-out log-likelihood that reads as "the number of equally
    likely occupations the model is choosing among", the currency of both papers.
    """
    lp = target_logp if mask is None else target_logp[mask]
    if lp.size == 0:
        return float("nan")
    return float(np.exp(-np.mean(lp)))
