from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from laborlm.evaluation.metrics import (
    calibration_bins,
    evaluate_log_probs,
    perplexity,
    roc_auc,
    stay_probabilities,
)
from laborlm.occupations import Taxonomy
from laborlm.schema import conform
from laborlm.sequences import panel_arrays


def test_perplexity_counts_every_selected_row() -> None:
    lp = np.log(np.array([0.5, 0.25, 0.125]))
    assert perplexity(lp) == pytest.approx(4.0)
    assert perplexity(lp, np.array([True, False, False])) == pytest.approx(2.0)
    assert np.isnan(perplexity(lp, np.zeros(3, dtype=bool)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 300).astype(float)
    labels = rng.random(300) < 0.3 + 0.1 * scores
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(roc_auc(scores, np.ones(300, dtype=bool)))


def test_calibration_bins_of_a_calibrated_predictor() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(200_000) < p).astype(float)
    for b in calibration_bins(p, y):
        assert abs(b["mean_predicted"] - b["observed"]) < 0.01


def test_evaluate_log_probs_breakdowns() -> None:
    tax = Taxonomy.infer(["a", "b"])
    K = len(tax)
    panel = conform(
        pa.table(
            {
                "person_id": ["p", "p", "p", "q"],
                "year": pa.array([1, 2, 3, 1], pa.int32()),
                "occupation": ["a", "a", "b", "b"],
                "source": ["x"] * 4,
                "gender": ["female", "female", "female", None],
            }
        )
    )
    arr = panel_arrays(panel, tax)
    probs = np.full((4, K), 0.1 / (K - 2))
    probs[:, :2] = [[0.5, 0.4], [0.8, 0.1], [0.3, 0.6], [0.2, 0.7]]
    m = evaluate_log_probs(
        np.log(probs),
        arr,
        subgroups={"gender": panel.column("gender").to_pylist()},
        oracle_logp=np.log([0.6, 0.9, 0.7, 0.8]),
    )
    assert m.person_years == 4
    assert m.perplexity == pytest.approx(np.exp(-np.mean(np.log([0.5, 0.8, 0.6, 0.7]))))
    assert m.by_transition["first"] == pytest.approx(np.exp(-np.mean(np.log([0.5, 0.7]))))
    assert m.by_transition["consecutive_repeat"] == pytest.approx(1 / 0.8)
    assert m.by_transition["new_job"] == pytest.approx(1 / 0.6)
    assert np.isnan(m.by_transition["nonconsecutive_repeat"])
    assert m.stay_auc == 1.0  # the stayer got P(stay)=0.8 > the mover's 0.3
    assert list(stay_probabilities(np.log(probs), arr.prev)[1:3]) == pytest.approx([0.8, 0.3])
    assert m.by_subgroup["gender"]["missing"] == pytest.approx(1 / 0.7)
    assert m.by_history_length["0"] == m.by_transition["first"]
    assert m.oracle_gap == pytest.approx(m.perplexity - np.exp(-np.mean(np.log([0.6, 0.9, 0.7, 0.8]))))
    assert m.flat()["test/perplexity"] == m.perplexity
