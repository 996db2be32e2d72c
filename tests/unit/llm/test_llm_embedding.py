"""The embedding occupation model: LM hidden states at each prompt end feed a trained two-stage head."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from llm_world import TinyWorld

from laborlm.errors import CheckpointError
from laborlm.evaluation.harness import evaluate_model
from laborlm.llm.embedding import EmbeddingHeadConfig, EmbeddingOccupationModel
from laborlm.llm.model import LlmOccupationModel
from laborlm.sequences import panel_arrays

logger = logging.getLogger(__name__)


def test_head_beats_uniform_and_is_compared_with_direct_scoring(world: TinyWorld, tmp_path: Path) -> None:
    model = EmbeddingOccupationModel(
        world.model,
        world.tokenizer,
        world.template,
        world.taxonomy,
        head=EmbeddingHeadConfig(max_epochs=60, patience=5, batch_size=128),
    )
    hidden, prev, _ = model.features(world.test)
    assert hidden.shape == (world.test.num_rows, world.model.config.hidden_size)
    assert ((prev == -1) == (panel_arrays(world.test, world.taxonomy).position == 0)).all()

    model.fit(world.train, world.valid)
    assert model.last_fit is not None and model.last_fit.valid_perplexity is not None
    log_probs = model.log_probs(world.test)
    assert log_probs.shape == (world.test.num_rows, len(world.taxonomy))
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, atol=1e-9)

    embedding = evaluate_model(model, world.test)
    direct = evaluate_model(
        LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy), world.test
    )
    logger.info(
        "tiny test set: embedding perplexity %.2f, direct scoring %.2f, uniform %d",
        embedding.perplexity,
        direct.perplexity,
        len(world.taxonomy),
    )
    assert math.isfinite(direct.perplexity)
    assert embedding.perplexity < 0.5 * len(world.taxonomy)  # far better than uniform over K

    model.save(tmp_path / "emb")
    loaded = EmbeddingOccupationModel.load(tmp_path / "emb")
    np.testing.assert_allclose(loaded.log_probs(world.test), log_probs, atol=1e-9)
    with pytest.raises(CheckpointError, match="kind"):
        LlmOccupationModel.load(tmp_path / "emb")
