"""Property test (issue 16, defect 2), for the model kinds ``tests/unit/serving/test_answer_properties.py`` does
not fit: NEMO, a tiny language model scoring the labels directly, and the embedding model (LM hidden states
and a two-stage head). Together the two files cover every kind: the oracle, Markov, regression, bag-of-jobs,
NEMO, CAREER, a tiny LLM and the embedding model.

Any career the request format accepts gets probabilities that are finite, non-negative and sum to at most
1 + 1e-6 over the whole taxonomy, and the JSON answer holds no NaN. Models are fitted once per module and
tiny (one epoch, a 2-layer Llama with random weights): the property is about the numbers being a
distribution, not about accuracy.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from laborlm import jsonsafe
from laborlm.baselines.base import NextOccupationModel
from laborlm.models.registry import FitOverrides, create_model, fit_config, load_model
from laborlm.readers import read_panel
from laborlm.serving.careers import predict_careers
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset
from torch_threads import one_torch_thread  # noqa: F401  (autouse here)
from unit.serving.test_answer_properties import _careers

# Fewer examples than the counted models get: every example runs the LM over up to 3 careers x K labels.
PROPERTY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("nemo-two_stage", "tiny-llm", "llm-embedding")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NextOccupationModel]:
    from laborlm.llm.embedding import EmbeddingHeadConfig, EmbeddingOccupationModel
    from unit.llm.llm_world import sticky_panel
    from unit.serving.serving_models import save_tiny_llm

    root = tmp_path_factory.mktemp("properties")
    generate_panel(replace(load_preset("psid"), people=200, seed=3), root / "psid")
    read = read_panel(root / "psid")
    train, valid = select_split(read.table, "train"), select_split(read.table, "valid")
    nemo = create_model(
        "nemo-two_stage",
        read.taxonomy,
        fit=fit_config("nemo-two_stage", FitOverrides(max_epochs=1, patience=None, max_tokens=2000)),
    )
    nemo.fit(train, valid)

    llm: Any = load_model(save_tiny_llm(root))  # the saved-folder path serving and `laborlm predict` use
    embedding = EmbeddingOccupationModel(
        llm.scorer.model,
        llm.scorer.tokenizer,
        llm.scorer.template,
        llm.taxonomy,
        head=EmbeddingHeadConfig(max_epochs=2, patience=None, batch_size=64),
    )
    embedding.fit(sticky_panel(30, 5, llm.taxonomy, "e"))
    return {"nemo-two_stage": nemo, "tiny-llm": llm, "llm-embedding": embedding}


@pytest.mark.parametrize("name", KINDS)
def test_any_valid_career_gets_a_finite_distribution(
    models: dict[str, NextOccupationModel], name: str
) -> None:
    model = models[name]
    K = len(model.taxonomy)

    @PROPERTY
    @given(_careers(model.taxonomy))
    def check(careers: list[dict[str, Any]]) -> None:
        answers = predict_careers(model, careers, K)
        assert len(answers) == len(careers)
        for answer in answers:
            probs = [t["probability"] for t in answer["top_k"]]
            assert len(probs) == K
            assert all(math.isfinite(p) and p >= 0.0 for p in probs), (careers, answer)
            assert sum(probs) <= 1.0 + 1e-6, (careers, sum(probs))
        json.loads(jsonsafe.dumps(answers))  # strict JSON: no NaN / Infinity anywhere

    check()


def test_the_fixture_covers_the_kinds_it_claims(
    models: dict[str, NextOccupationModel], tmp_path: Path
) -> None:
    assert type(models["tiny-llm"]).__name__ == "LlmOccupationModel"
    assert getattr(models["llm-embedding"], "kind", None) == "embedding"
    assert type(models["nemo-two_stage"]).__name__ != type(models["tiny-llm"]).__name__
