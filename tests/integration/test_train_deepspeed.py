"""DeepSpeed ZeRO-2 + LoRA on 2 CPU workers (gloo, torch AdamW: only shm_comm is JIT-built): train, resume.

The second fit reuses the run name and storage path, so Ray Train hands every worker the latest checkpoint:
each rank reloads its own ZeRO shard (adapter weights only: frozen ones are excluded; optimizer, scheduler) and the loop continues the step counter
and the data position. ZeRO-3 (with LoRA) is covered, with a killed worker, in test_train_fault_tolerance.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_train_workflow import shared_data

from laborlm.config import load_config
from laborlm.training import TrainConfig
from laborlm.training.session import STATE_FILE
from laborlm.training.workflow import run_training

pytestmark = pytest.mark.usefixtures("ray_session")


def _state(checkpoint: str | None) -> dict[str, object]:
    assert checkpoint is not None
    state: dict[str, object] = json.loads((Path(checkpoint) / STATE_FILE).read_text())["state"]
    return state


def test_zero2_lora_trains_and_resumes_from_its_sharded_checkpoint(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = [
        *shared_data(tmp_path_factory),
        f"out_dir={tmp_path / 'run'}",
        "run_name=zero2",
        "finetune.enabled=false",
        "strategy.kind=zero2",
        "pretrain.lora=true",
        "lora.rank=4",
        "pretrain.warmup_steps=2",
        "pretrain.lr=5e-3",
        "pretrain.eval_every_steps=3",
        "pretrain.checkpoint_every_steps=3",
        "pretrain.log_every_steps=3",
        "pretrain.eval_blocks=16",
        "pretrain.eval_at_start=false",
        "tracking.enabled=false",
    ]
    first = run_training(load_config(TrainConfig, None, [*base, "pretrain.max_steps=3"])).phases["pretrain"]
    s1 = _state(first.checkpoint)
    assert s1["step"] == 3 and s1["resumes"] == 0 and s1["batches_in_epoch"] == 3
    shards = sorted(p.name for p in (Path(str(first.checkpoint)) / "ds").iterdir())
    assert any(n.startswith("zero_pp_rank_0") for n in shards) and any(
        n.startswith("zero_pp_rank_1") for n in shards
    )

    second = run_training(load_config(TrainConfig, None, [*base, "pretrain.max_steps=6"])).phases["pretrain"]
    s2 = _state(second.checkpoint)
    assert s2["step"] == 6 and s2["resumes"] == 1  # continued from step 3, not restarted
    assert s2["batches_in_epoch"] == 6 or s2["epoch"] > 0  # the data position moved on from 3
    assert math.isfinite(second.metrics["train/loss"]) and second.metrics["valid/best_loss"] < 7.0
    assert (second.model_dir / "adapter_model.safetensors").is_file() and (
        second.init_dir / "config.json"
    ).is_file()
