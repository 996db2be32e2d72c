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
DATA_OVERRIDES = ["pretrain.synth_people=300", "finetune.synth_people=200", "tokenizer_vocab_size=600",
                  "block_size=32", "micro_batch_size=8"]


def shared_data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Overrides pointing a config at the session's tiny corpora and tokenizer (built on first use)."""
    root = tmp_path_factory.getbasetemp() / "train_data"
    cfg = load_config(TrainConfig, None, [f"out_dir={root}", *DATA_OVERRIDES])
    corpora = {name: prepare_corpus(cfg, name, phase) for name, phase in cfg.phases()}
    tokenizer = prepare_tokenizer(cfg, corpora["pretrain"])
    return [*DATA_OVERRIDES, f"pretrain.corpus={corpora['pretrain']}", f"finetune.corpus={corpora['finetune']}",
            f"tokenizer={tokenizer}"]


def test_two_phase_run_lowers_validation_loss_and_is_tracked(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = [
        *shared_data(tmp_path_factory), f"out_dir={tmp_path / 'run'}",
        "pretrain.max_steps=12", "pretrain.warmup_steps=3", "pretrain.lr=5e-3", "pretrain.eval_every_steps=6",
        "pretrain.checkpoint_every_steps=6", "pretrain.log_every_steps=3", "pretrain.eval_blocks=32",
        "finetune.max_steps=8", "finetune.warmup_steps=2", "finetune.lr=5e-3",
        "finetune.eval_every_steps=4", "finetune.checkpoint_every_steps=4", "finetune.log_every_steps=2",
        "finetune.eval_blocks=32",
    ]
    cfg = load_config(TrainConfig, None, overrides)
    result = run_training(cfg)

    assert list(result.phases) == ["pretrain", "finetune"]
    for name, phase in result.phases.items():
        m = phase.metrics
        assert m["train/step"] == getattr(cfg, name).max_steps
        assert m["valid/best_loss"] < m["valid/initial_loss"], (name, m)  # validation loss falls in both phases
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
        for key in ("train/loss", "train/lr", "throughput/tokens_per_s", "valid/loss"):
            assert key in run.data.metrics, key
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
