from __future__ import annotations

import pytest

from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.markov import MarkovModel
from laborlm.baselines.unigram import UnigramModel
from laborlm.models.neural import NeuralOccupationModel
from laborlm.models.registry import REGISTRY, create_model, model_names
from laborlm.occupations import Taxonomy


def test_every_registered_model_builds_and_implements_the_interface() -> None:
    taxonomy = Taxonomy.default()
    for base in ("regression", "bag-of-jobs", "nemo", "career-small", "career-pretrained"):
        assert {f"{base}-one_stage", f"{base}-two_stage"} <= set(model_names())
    for name in model_names():
        model = create_model(name, taxonomy)
        assert isinstance(model, NextOccupationModel) and model.name == name
        kind = (
            UnigramModel
            if name == "unigram"
            else MarkovModel
            if name.startswith("markov")
            else NeuralOccupationModel
        )
        assert isinstance(model, kind)
    pretrained = create_model("career-pretrained-two_stage", taxonomy)
    assert isinstance(pretrained, NeuralOccupationModel)
    n_params = sum(p.numel() for p in pretrained.network.parameters())
    assert 5.0e6 < n_params < 6.0e6  # CAREER Appendix G: about 5.6 million parameters
    assert (
        REGISTRY["regression-two_stage"].fit is not None
        and REGISTRY["regression-two_stage"].fit.warmup_steps == 4000
    )


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="career-small-two_stage"):
        create_model("career-huge", Taxonomy.default())
