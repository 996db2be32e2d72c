"""Metrics over log-probability arrays: pure numpy, no framework imports.

Every model returns ``log_probs: np.ndarray  # [n_rows, K]`` for the same person-years of a canonical panel,
so one function turns each into the same numbers. The denominator of every perplexity is the number of
person-years scored: every observed year of every held-out person, the first included (predicted from
covariates alone), as CAREER's evaluation counts them. Header and covariate tokens of text models are never
scored; only occupations are. Token-level losses are never compared across models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from laborlm.sequences import CONSECUTIVE_REPEAT, FIRST, TRANSITION_NAMES, PanelArrays


def target_log_probs(log_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``[n]`` log-probability each row assigns to its observed occupation (``targets``: ``[n]`` indices)."""
    picked: np.ndarray = log_probs[np.arange(len(targets)), targets]
    return picked


def perplexity(target_logp: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``exp(-mean log p)`` over the rows selected by ``mask`` (all rows if None); NaN if none are selected.

    Why perplexity: it is a monotone transform of held-out log-likelihood that reads as "the number of equally
    likely occupations the model is choosing among", the currency of both papers.
    """
    lp = target_logp if mask is None else target_logp[mask]
    if lp.size == 0:
        return float("nan")
    return float(np.exp(-np.mean(lp)))


def stay_probabilities(log_probs: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """``[n]`` P(y_t = y_{t-1}) under the model; NaN for first years (no previous occupation)."""
    out = np.full(len(prev), np.nan)
    has = prev >= 0
    out[has] = np.exp(log_probs[np.flatnonzero(has), prev[has]])
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is absent."""
    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    # Average ranks over runs of tied scores.
    boundaries = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(s)]])
    for a, b in zip(starts, ends):
        ranks[a:b] = (a + b + 1) / 2.0
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def calibration_bins(prob: np.ndarray, outcome: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Reliability table: per equal-width probability bin, mean predicted vs observed frequency and count."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            out.append(
                {
                    "bin_low": float(edges[b]),
                    "bin_high": float(edges[b + 1]),
                    "mean_predicted": float(prob[sel].mean()),
                    "observed": float(outcome[sel].mean()),
                    "count": int(sel.sum()),
                }
            )
    return out


def expected_calibration_error(bins: list[dict[str, float]]) -> float:
    total = sum(b["count"] for b in bins)
    return (
        float(sum(b["count"] * abs(b["mean_predicted"] - b["observed"]) for b in bins) / total)
        if total
        else float("nan")
    )


@dataclass(frozen=True)
class Metrics:
    """Every number one model gets on one evaluation set (all perplexities over person-years)."""

    perplexity: float
    person_years: int
    by_transition: dict[
        str, float
    ]  # CAREER Table 4: first / consecutive_repeat / nonconsecutive_repeat / new_job
    stay_auc: float  # CAREER Table 5: P(stay) as a score for the stay-vs-move event, rows with a previous job
    stay_calibration_error: float  # expected calibration error of P(stay)
    by_history_length: dict[
        str, float
    ]  # CAREER Figure 4: by number of earlier observed years (0, 1, ..., "10+")
    by_subgroup: dict[str, dict[str, float]] = field(default_factory=dict)  # covariate -> value -> perplexity
    oracle_perplexity: float | None = None  # the floor on the same rows, when the panel carries oracle_logp
    stay_calibration: list[dict[str, float]] = field(default_factory=list)

    @property
    def oracle_gap(self) -> float | None:
        """Perplexity above the oracle's on the same rows (0 is unbeatable)."""
        return None if self.oracle_perplexity is None else self.perplexity - self.oracle_perplexity

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["oracle_gap"] = self.oracle_gap
        return d

    def flat(self, prefix: str = "test") -> dict[str, float]:
        """Scalar metrics as ``split/name`` keys (MLflow)."""
        out = {
            f"{prefix}/perplexity": self.perplexity,
            f"{prefix}/stay_auc": self.stay_auc,
            f"{prefix}/stay_calibration_error": self.stay_calibration_error,
        }
        out.update({f"{prefix}/perplexity_{k}": v for k, v in self.by_transition.items()})
        if self.oracle_perplexity is not None:
            out[f"{prefix}/oracle_perplexity"] = self.oracle_perplexity
            out[f"{prefix}/oracle_gap"] = float(self.oracle_gap or 0.0)
        return {k: float(v) for k, v in out.items() if not math.isnan(v)}


def evaluate_log_probs(
    log_probs: np.ndarray,
    arrays: PanelArrays,
    subgroups: Mapping[str, Sequence[object] | np.ndarray] | None = None,
    oracle_logp: np.ndarray | None = None,
    history_cap: int = 10,
) -> Metrics:
    """All metrics for one model on one panel.

    Args:
        log_probs: ``[n, K]`` the model's log-probabilities, rows aligned with ``arrays``.
        arrays: ``sequences.panel_arrays`` of the same panel (targets, previous jobs, transition types).
        subgroups: covariate name -> ``[n]`` values (null as None) for perplexity by subgroup.
        oracle_logp: ``[n]`` the generator's exact log p of each target, for the oracle gap.
        history_cap: years of history at and above which rows are pooled in ``by_history_length``.
    """
    lp = target_log_probs(log_probs, arrays.occ)
    by_transition = {TRANSITION_NAMES[k]: perplexity(lp, arrays.transition == k) for k in TRANSITION_NAMES}
    has_prev = arrays.transition != FIRST
    stay = stay_probabilities(log_probs, arrays.prev)
    stayed = (arrays.transition == CONSECUTIVE_REPEAT).astype(np.float64)
    bins = calibration_bins(stay[has_prev], stayed[has_prev])
    hist = np.minimum(arrays.position, history_cap)
    by_history = {
        (f"{h}+" if h == history_cap else str(h)): perplexity(lp, hist == h) for h in np.unique(hist)
    }
    by_subgroup: dict[str, dict[str, float]] = {}
    for name, values in (subgroups or {}).items():
        vals = np.asarray([("missing" if v is None else str(v)) for v in values], dtype=object)
        by_subgroup[name] = {str(v): perplexity(lp, vals == v) for v in sorted(set(vals))}
    return Metrics(
        perplexity=perplexity(lp),
        person_years=len(lp),
        by_transition=by_transition,
        stay_auc=roc_auc(stay[has_prev], stayed[has_prev]),
        stay_calibration_error=expected_calibration_error(bins),
        by_history_length=by_history,
        by_subgroup=by_subgroup,
        oracle_perplexity=None if oracle_logp is None else perplexity(oracle_logp),
        stay_calibration=bins,
    )
