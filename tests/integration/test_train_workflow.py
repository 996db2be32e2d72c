"""The two-phase training workflow on 2 Ray Train workers (DDP): pretrain on resumes, fine-tune on PSID.

Shortened version of jobs/train_tiny.yaml: validation loss must fall in both phases, each phase's best model
lands in out_dir, and each phase's MLflow run holds the resolved config as params, train/valid metrics and
the model as artifacts. LoRA runs under DeepSpeed in test_train_deepspeed.py and test_train_fault_tolerance.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from laborlm.config import load_config
from laborlm.training import TrainConfig
from laborlm.training.workflow import prepare_corpus, prepare_tokenizer, run_training

pytestmark = pytest.mark.usefixtures("ray_session")

# Tiny synthetic corpora, tokenizer and schedule shared by the test_train_* files (data is made once per
# session: prepare_corpus and prepare_tokenizer reuse what is already built in the same folder).
DATA_OVERRIDES = [
    "pretrain.synth_people=300",
    "finetune.synth_people=200",
    "tokenizer_vocab_size=600",
    "block_size=32",
    "micro_batch_size=8",
]


def shared_data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides pointing a config at the session's tiny corpora and tokenizer (built on first use)."""
    root = tmp_path_factory.getbasetemp() / "train_data"
    cfg = load_config(TrainConfig, None, [f"out_dir={root}", *DATA_OVERRIDES])
    corpora = {name: prepare_corpus(cfg, name, phase) for name, phase in cfg.phases()}
    tokenizer = prepare_tokenizer(cfg, list(corpora.values()))
    return [
        *DATA_OVERRIDES,
        f"pretrain.corpus={corpora['pretrain']}",
        f"finetune.corpus={corpora['finetune']}",
        f"tokenizer={tokenizer}",
    ]


def test_two_phase_run_lowers_validation_loss_and_is_tracked(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    overrides = [
        *shared_data(tmp_path_factory),
        f"out_dir={tmp_path / 'run'}",
        "pretrain.max_steps=12",
        "pretrain.warmup_steps=3",
        "pretrain.lr=5e-3",
        "pretrain.eval_every_steps=6",
        "pretrain.checkpoint_every_steps=6",
        "pretrain.log_every_steps=3",
        "pretrain.eval_blocks=32",
        "finetune.max_steps=8",
        "finetune.warmup_steps=2",
        "finetune.lr=5e-3",
        "finetune.eval_every_steps=4",
        "finetune.checkpoint_every_steps=4",
        "finetune.log_every_steps=2",
        "finetune.eval_blocks=32",
    ]
    cfg = load_config(TrainConfig, None, overrides)
    result = run_training(cfg)

    assert list(result.phases) == ["pretrain", "finetune"]
    for name, phase in result.phases.items():
        m = phase.metrics
        assert m["train/step"] == getattr(cfg, name).max_steps
        assert m["valid/best_loss"] < m["valid/initial_loss"], (
            name,
            m,
        )  # validation loss falls in both phases
        assert math.isfinite(m["train/loss"])
    pre, fine = result.phases["pretrain"], result.phases["finetune"]
    assert (pre.model_dir / "model.safetensors").is_file() and pre.init_dir == pre.model_dir
    assert (fine.model_dir / "model.safetensors").is_file() and fine.init_dir == fine.model_dir
    info = json.loads((fine.model_dir / "laborlm_model.json").read_text())
    assert info["kind"] == "full" and info["base_model"] == str(pre.model_dir) and info["final_step"] == 8
    assert info["template"] == "labor-llm" and info["taxonomy"] == "occ1990dd"
    assert (fine.model_dir / "taxonomy.csv").is_file() and (fine.model_dir / "tokenizer.json").is_file()
    # The fine-tune started from phase (a)'s model: its initial loss is well below a fresh model's (ln V).
    assert fine.metrics["valid/initial_loss"] < pre.metrics["valid/initial_loss"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri)
    for phase in (pre, fine):
        run = client.get_run(str(phase.mlflow_run_id))
        assert run.info.run_name == f"{result.run_name}-{phase.phase}" and run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
        params = run.data.params
        assert params["strategy.kind"] == "ddp" and params["phase"] == phase.phase
        assert params["resolved.world_size"] == "2" and params["finetune.init"] == "previous"
        for key in (
            "train/loss",
            "train/lr",
            "throughput/tokens_per_s",
            "valid/loss",
            "valid/occupation_perplexity",
            "valid/occupation_perplexity_raw",
            "valid/outside_mass",
            "valid/label_token_loss",
        ):
            assert key in run.data.metrics, key
        # The occupation perplexity is a perplexity over the K labels: above 1, below a uniform guess's K.
        occupation = client.get_metric_history(run.info.run_id, "valid/occupation_perplexity")
        assert occupation[0].step == 0 and len(occupation) >= 3
        assert all(1.0 < h.value < 345 for h in occupation[1:]), [h.value for h in occupation]
        history = client.get_metric_history(run.info.run_id, "valid/loss")
        assert history[0].step == 0 and history[-1].value < history[0].value
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
        assert {"model/tokenizer.json", "model/taxonomy.csv", "model/laborlm_model.json"} <= artifacts
        assert "model/model.safetensors" in artifacts
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "config.yaml" in names
        # Nothing from the data: no corpus, panel or text file among the artifacts.
        assert not any(p.endswith((".parquet", ".jsonl", ".txt")) for p in names | artifacts)
    assert result.run_name == cfg.default_run_name()


def test_best_checkpoint_is_chosen_by_valid_occupation_perplexity_and_early_stops(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The model kept is the one with the lowest valid occupation perplexity, not the lowest whole-text loss.

    A learning rate high enough to make training unstable gives evaluations whose orderings by loss and by
    occupation perplexity differ; whatever happens, the saved model's step must be the argmin of the
    occupation perplexity history, and early stopping (patience 2) ends the phase two evaluations after it.
    """
    overrides = [
        *shared_data(tmp_path_factory),
        f"out_dir={tmp_path / 'run'}",
        "pretrain.enabled=false",
        "finetune.init=model",
        "finetune.max_steps=40",
        "finetune.warmup_steps=1",
        "finetune.lr=3e-2",
        "finetune.schedule=constant",
        "finetune.eval_every_steps=2",
        "finetune.checkpoint_every_steps=20",
        "finetune.log_every_steps=2",
        "finetune.eval_blocks=16",
        "finetune.occupation_eval_people=20",
        "finetune.early_stopping_patience=2",
        "finetune.eval_at_start=false",
    ]
    result = run_training(load_config(TrainConfig, None, overrides))
    fine = result.phases["finetune"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri)
    history = client.get_metric_history(str(fine.mlflow_run_id), "valid/occupation_perplexity")
    by_step = {h.step: h.value for h in history}
    best_step = min(by_step, key=lambda k: by_step[k])
    info = json.loads((fine.model_dir / "laborlm_model.json").read_text())
    assert info["step"] == best_step == fine.metrics["valid/best_step"], (by_step, info["step"])
    assert fine.metrics["valid/best_occupation_perplexity"] == pytest.approx(by_step[best_step])
    last = max(by_step)
    if fine.metrics["train/stopped_early"]:
        # Stopped exactly `patience` evaluations after the best one, before max_steps.
        assert last == best_step + 2 * 2 < 40 and info["stopped_early"] is True
        assert info["final_step"] == last
    else:
        assert last == 40 and best_step > 40 - 2 * 2
