"""The training loop without Ray: learning-rate schedule, checkpoints, resume and its safety checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from laborlm.errors import CheckpointError, ConfigError
from laborlm.models.career import CAREER_TINY
from laborlm.models.fitting import (
    BEST_EVAL_PERPLEXITY,
    BEST_WEIGHTS,
    EPOCH,
    STEP,
    FitConfig,
    NeuralModelConfig,
    fit_network,
    init_network,
    learning_rate,
)
from markov_panels import Chain


def test_inverse_square_root_schedule_with_linear_warmup() -> None:
    fit = FitConfig(lr=1e-3, warmup_steps=100, warmup_init_lr=0.0)
    assert learning_rate(0, fit) == 0.0
    assert learning_rate(50, fit) == pytest.approx(5e-4)
    assert learning_rate(100, fit) == pytest.approx(1e-3)
    assert learning_rate(400, fit) == pytest.approx(5e-4)  # sqrt(100 / 400) = 1/2
    assert learning_rate(7, replace(fit, warmup_steps=0)) == pytest.approx(1e-3 / 7**0.5)
    assert learning_rate(0, FitConfig(lr=1e-3, warmup_steps=10)) == pytest.approx(
        1e-7
    )  # CAREER's warmup_init_lr


def test_fit_config_rejects_nonsense_in_one_error() -> None:
    with pytest.raises(ConfigError) as err:
        FitConfig(lr=0.0, patience=0, num_workers=-1)
    assert len(err.value.problems) == 3


def test_restarted_in_process_run_resumes_and_refuses_other_data(chain: Chain, tmp_path: Path) -> None:
    fit = FitConfig(
        lr=1e-2, warmup_steps=5, max_tokens=600, max_epochs=1, storage_path=tmp_path, run_name="resume"
    )
    config = NeuralModelConfig("career-tiny", CAREER_TINY, fit)
    initial = init_network(config, len(chain.taxonomy)).state_dict()
    first = fit_network(config, chain.taxonomy, chain.train, chain.valid, initial)
    steps_per_epoch = first.metrics[STEP]
    assert first.metrics[EPOCH] == 1 and first.checkpoint is not None
    assert (first.checkpoint / BEST_WEIGHTS).is_file()

    longer = replace(config, fit=replace(fit, max_epochs=3))
    resumed = fit_network(longer, chain.taxonomy, chain.train, chain.valid, initial)
    assert resumed.metrics[EPOCH] == 3 and resumed.metrics[STEP] == 3 * steps_per_epoch  # counters continue
    assert resumed.metrics[BEST_EVAL_PERPLEXITY] <= first.metrics[BEST_EVAL_PERPLEXITY]
    assert len(list((tmp_path / "resume").glob("checkpoint_*"))) == fit.checkpoints_to_keep

    with pytest.raises(CheckpointError, match="train_fingerprint"):
        fit_network(longer, chain.taxonomy, chain.valid, chain.valid, initial)
