"""Ray Train runs the in-process loop: local mode, 2 CPU workers (DDP), best checkpoint, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from laborlm.evaluation.metrics import perplexity, target_log_probs
from laborlm.models.career import CAREER_TINY
from laborlm.models.fitting import (
    BEST_EVAL_PERPLEXITY,
    BEST_WEIGHTS,
    EPOCH,
    STEP,
    TOKENS_PER_S,
    TRAIN_LOSS,
    FitConfig,
    NeuralModelConfig,
    fit_network,
    init_network,
)
from laborlm.models.neural import NeuralOccupationModel
from laborlm.sequences import panel_arrays
from markov_panels import Chain, make_chain

FIT = FitConfig(lr=1e-2, warmup_steps=5, max_tokens=240, max_epochs=2, patience=None)
# Without dropout a run's arithmetic does not depend on the worker count, so runs can be compared.
NO_DROPOUT = replace(CAREER_TINY, dropout=0.0, attention_dropout=0.0)


@pytest.fixture(scope="module")
def data() -> Chain:
    return make_chain(n_train=150, n_valid=60)


def _config(network: object = NO_DROPOUT, **fit: object) -> NeuralModelConfig:
    return NeuralModelConfig("career-tiny-two_stage", network, replace(FIT, **fit))  # type: ignore[arg-type]


def test_local_mode_runs_the_in_process_loop(ray_session: object, data: Chain) -> None:
    config = _config(CAREER_TINY, num_workers=0)  # dropout on: the same seeds give the same masks
    initial = init_network(config, len(data.taxonomy)).state_dict()
    local = fit_network(config, data.taxonomy, data.train, data.valid, initial)
    in_process = fit_network(replace(config, fit=FIT), data.taxonomy, data.train, data.valid, initial)
    assert {k: v for k, v in local.metrics.items() if k != TOKENS_PER_S} == {
        k: v for k, v in in_process.metrics.items() if k != TOKENS_PER_S
    }
    assert all(np.array_equal(local.best_state[k], in_process.best_state[k]) for k in local.best_state)


@pytest.mark.slow  # two 2-worker Ray Train runs: worker start-up dominates (~15-30 s each on 2 cores)
def test_two_workers_report_a_best_checkpoint_that_restores_and_a_restart_resumes(
    ray_session: object, data: Chain, tmp_path: Path
) -> None:
    config = _config(num_workers=2, max_epochs=1, storage_path=tmp_path, run_name="ddp")
    model = NeuralOccupationModel(config, data.taxonomy)
    initial = {k: v.clone() for k, v in model.network.state_dict().items()}
    model.fit(data.train, data.valid)
    first = model.last_fit
    assert first is not None and first.checkpoint is not None and first.metrics[EPOCH] == 1
    assert first.checkpoint.is_relative_to(tmp_path) and (first.checkpoint / BEST_WEIGHTS).is_file()
    # The restored best weights score exactly the reported best validation perplexity.
    occ = panel_arrays(data.valid, data.taxonomy).occ
    assert perplexity(target_log_probs(model.log_probs(data.valid), occ)) == pytest.approx(
        first.metrics[BEST_EVAL_PERPLEXITY], rel=1e-9
    )
    again = NeuralOccupationModel(config, data.taxonomy)
    again.network.load_state_dict(load_file(first.checkpoint / BEST_WEIGHTS))
    assert np.array_equal(again.log_probs(data.valid), model.log_probs(data.valid))

    # Restarted with the same RunConfig(name, storage_path) and one more epoch: it continues, not restarts.
    longer = replace(config, fit=replace(config.fit, max_epochs=2))
    second = fit_network(longer, data.taxonomy, data.train, data.valid, initial)
    assert second.metrics[EPOCH] == 2 and second.metrics[STEP] == 2 * first.metrics[STEP]
    # Two epochs in one process from the same start reach the same point: a 2-worker DDP update equals
    # the single-process update on the same global batch, and resuming equals never stopping.
    straight = fit_network(replace(longer, fit=FIT), data.taxonomy, data.train, data.valid, initial)
    assert second.metrics[TRAIN_LOSS] == pytest.approx(straight.metrics[TRAIN_LOSS], rel=1e-5)
    assert second.metrics[BEST_EVAL_PERPLEXITY] == pytest.approx(
        straight.metrics[BEST_EVAL_PERPLEXITY], rel=1e-5
    )
