"""Every architecture, one- and two-stage: distributions per row, causal, learns a chain, round-trips."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from laborlm.baselines.bag_of_jobs import BagOfJobsConfig
from laborlm.baselines.logistic import RegressionConfig
from laborlm.baselines.lstm import LstmConfig
from laborlm.evaluation.metrics import perplexity, target_log_probs
from laborlm.models.architectures import NetworkConfig
from laborlm.models.career import CAREER_TINY
from laborlm.models.fitting import EVAL_PERPLEXITY, FitConfig, NeuralModelConfig
from laborlm.models.neural import NeuralOccupationModel
from laborlm.occupations import Taxonomy
from laborlm.sequences import panel_arrays
from markov_panels import Chain

TINY: dict[str, NetworkConfig] = {
    "regression": RegressionConfig(),
    "bag-of-jobs": BagOfJobsConfig(dim=32),
    "nemo": LstmConfig(hidden=32),
    "career": CAREER_TINY,
}
FAST = FitConfig(lr=1e-2, warmup_steps=10, max_tokens=240, max_epochs=12, patience=2)
# The regression starts at uniform probabilities (zero weights) and needs larger steps to get far in 120.
LR = {"regression": 3e-2}
VARIANTS = [(arch, two_stage) for arch in TINY for two_stage in (False, True)]
IDS = [f"{arch}-{'two' if two_stage else 'one'}_stage" for arch, two_stage in VARIANTS]


def _model(arch: str, two_stage: bool, taxonomy: Taxonomy, seed: int = 0) -> NeuralOccupationModel:
    network = replace(TINY[arch], two_stage=two_stage)
    fit = replace(FAST, lr=LR.get(arch, FAST.lr))
    return NeuralOccupationModel(NeuralModelConfig(f"{arch}-test", network, fit, seed), taxonomy)


def _perplexity(model: NeuralOccupationModel, panel: pa.Table) -> float:
    return perplexity(target_log_probs(model.log_probs(panel), panel_arrays(panel, model.taxonomy).occ))


@pytest.mark.parametrize(("arch", "two_stage"), VARIANTS, ids=IDS)
def test_rows_are_distributions_aligned_with_the_panel(arch: str, two_stage: bool, chain: Chain) -> None:
    model = _model(arch, two_stage, chain.taxonomy)
    panel = chain.valid.slice(0, 60)
    lp = model.log_probs(panel)
    assert lp.shape == (60, len(chain.taxonomy)) and lp.dtype == np.float64
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-12)
    # Row r of the output belongs to row r of the panel, whatever batch its career landed in.
    one = panel.filter(pc.equal(panel.column("person_id"), panel.column("person_id")[12]))
    rows = np.flatnonzero(
        np.asarray(panel.column("person_id").to_pylist()) == one.column("person_id")[0].as_py()
    )
    assert np.allclose(model.log_probs(one), lp[rows], atol=1e-12)
    assert model.representations(panel).shape == (60, model.network.dim)


@pytest.mark.parametrize(("arch", "two_stage"), VARIANTS, ids=IDS)
def test_fit_on_a_markov_chain_approaches_the_truth(arch: str, two_stage: bool, chain: Chain) -> None:
    model = _model(arch, two_stage, chain.taxonomy)
    model.fit(chain.train, chain.valid)
    fitted = _perplexity(model, chain.valid)
    K = len(chain.taxonomy)
    assert chain.true_perplexity <= fitted < min(1.1 * chain.true_perplexity, K / 2)
    assert model.last_fit is not None
    assert model.last_fit.metrics[EVAL_PERPLEXITY] >= fitted - 1e-6  # fit keeps the best, not the last


@pytest.mark.parametrize(("arch", "two_stage"), VARIANTS, ids=IDS)
def test_later_rows_do_not_change_earlier_predictions(arch: str, two_stage: bool, chain: Chain) -> None:
    model = _model(arch, two_stage, chain.taxonomy)
    with torch.no_grad():  # weights far from the (for the regression: uniform) initialisation
        for p in model.network.parameters():
            p.normal_()
    panel = chain.valid.slice(0, 12)  # two careers of six years
    before = model.log_probs(panel)
    occupation = panel.column("occupation").to_pylist()
    education = panel.column("education").to_pylist()
    occupation[3], occupation[4], education[4] = (
        "unemployed",
        "in_school",
        "doctorate",
    )  # rows 3-4 of person 0
    changed = panel.set_column(2, "occupation", pa.array(occupation)).set_column(
        3, "education", pa.array(education)
    )
    after = model.log_probs(changed)
    assert np.array_equal(
        after[:4], before[:4]
    )  # row 3's own prediction may use row 3's education: same here
    assert np.array_equal(after[6:], before[6:])  # the other person is untouched
    assert not np.allclose(after[4:6], before[4:6])  # and the change is seen downstream


@pytest.mark.parametrize(("arch", "two_stage"), VARIANTS[::3], ids=IDS[::3])
def test_save_load_reproduces_log_probs(arch: str, two_stage: bool, chain: Chain, tmp_path: Path) -> None:
    model = _model(arch, two_stage, chain.taxonomy, seed=3)
    model.save(tmp_path / "m")
    again = NeuralOccupationModel.load(tmp_path / "m")
    assert again.config == model.config and again.taxonomy == model.taxonomy
    assert np.array_equal(again.log_probs(chain.valid), model.log_probs(chain.valid))
