"""Pretrain-then-fine-tune keeps what pretraining learned and re-initialises exactly what it could not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from laborlm.baselines.logistic import RegressionConfig
from laborlm.errors import CheckpointError
from laborlm.models.architectures import NetworkConfig
from laborlm.models.career import CAREER_TINY
from laborlm.models.fitting import NeuralModelConfig
from laborlm.models.neural import NeuralOccupationModel
from laborlm.occupations import Taxonomy
from markov_panels import Chain


def _randomised(network: NetworkConfig, taxonomy: Taxonomy, seed: int) -> NeuralOccupationModel:
    """A model with all-random weights, so 'copied' and 're-initialised' can never coincide by accident."""
    model = NeuralOccupationModel(NeuralModelConfig("transfer-test", network, seed=seed), taxonomy)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.network.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return model


def test_career_reinitialises_special_state_rows_and_gender_race(chain: Chain, tmp_path: Path) -> None:
    tax = chain.taxonomy
    pretrained = _randomised(CAREER_TINY, tax, seed=1)
    pretrained.save(tmp_path / "resumes")
    survey = _randomised(CAREER_TINY, tax, seed=2)
    fresh = {k: v.clone() for k, v in survey.network.state_dict().items()}
    survey.init_from_pretrained(tmp_path / "resumes")

    got, pre = survey.network.state_dict(), pretrained.network.state_dict()
    special = torch.as_tensor(tax.special_indices)
    expected = {k: v.clone() for k, v in pre.items()}
    for name in (
        "body.job.weight",
        "head.weight",
        "head.bias",
    ):  # input rows and output rows of special states
        expected[name][special] = fresh[name][special]
    for name in ("body.covariates.tables.gender.weight", "body.covariates.tables.race.weight"):
        expected[name] = fresh[name]
    assert expected.keys() == got.keys()
    for name in got:
        assert torch.equal(got[name], expected[name]), name
    # Kept from pretraining: the beginning-of-career row and the stay score of the two-stage head.
    assert torch.equal(got["body.job.weight"][len(tax)], pre["body.job.weight"][len(tax)])
    assert torch.equal(got["head.weight"][len(tax)], pre["head.weight"][len(tax)])


def test_headless_regression_reinitialises_special_state_columns(chain: Chain, tmp_path: Path) -> None:
    tax = chain.taxonomy
    pretrained = _randomised(RegressionConfig(), tax, seed=1)
    pretrained.save(tmp_path / "resumes")
    survey = _randomised(RegressionConfig(), tax, seed=2)
    fresh = {k: v.clone() for k, v in survey.network.state_dict().items()}
    survey.init_from_pretrained(tmp_path / "resumes")
    got, pre = survey.network.state_dict(), pretrained.network.state_dict()
    special = torch.as_tensor(tax.special_indices)
    for name, value in got.items():
        expected = pre[name].clone()
        if name.endswith(("gender.weight", "race.weight")):
            expected = fresh[name]
        expected[..., special] = fresh[name][..., special]  # every score column of a special state
        if name in ("body.recent_job.weight", "body.prior_job.weight"):
            expected[special] = fresh[name][special]  # and the input rows of previous special states
        assert torch.equal(value, expected), name


def test_pretrained_model_must_match_architecture(chain: Chain, tmp_path: Path) -> None:
    _randomised(CAREER_TINY, chain.taxonomy, seed=1).save(tmp_path / "m")
    with pytest.raises(CheckpointError, match="architecture"):
        _randomised(RegressionConfig(), chain.taxonomy, seed=2).init_from_pretrained(tmp_path / "m")
