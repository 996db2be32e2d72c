"""A killed worker: ZeRO-3 + LoRA on 2 CPU workers, rank 1 exits hard after step 3 (once, via a marker file).

Ray Train's FailureConfig restarts the worker group; every rank restores its ZeRO-3 shard, optimizer and
scheduler from the step-2 checkpoint and skips the micro-batches it had consumed. The run must end at the
configured step count with a finite loss, and the LoRA adapter saved under ZeRO-3 must be full-size and
non-zero (gathered before saving), and merge into a plain model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_train_workflow import shared_data

from laborlm.config import load_config
from laborlm.training import TrainConfig
from laborlm.training.loop import STATE_FILE
from laborlm.training.workflow import FailureInjection, run_training

# A worker-group restart costs a second Ray Train start-up: allow for a loaded machine beyond the suite's 300 s.
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow, pytest.mark.timeout(900)]


def test_killed_worker_resumes_and_finishes_at_the_same_step(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = [*shared_data(tmp_path_factory), f"out_dir={tmp_path / 'run'}", "finetune.enabled=false",
                 "strategy.kind=zero3", "pretrain.lora=true", "lora.rank=4", "pretrain.max_steps=4",
                 "pretrain.warmup_steps=1", "pretrain.lr=1e-2", "pretrain.eval_every_steps=2",
                 "pretrain.checkpoint_every_steps=2", "pretrain.log_every_steps=2", "pretrain.eval_blocks=16",
                 "pretrain.eval_at_start=false", "checkpoint.max_failures=1", "tracking.enabled=false"]
    marker = tmp_path / "killed.txt"
    result = run_training(load_config(TrainConfig, None, overrides),
                          failure=FailureInjection(step=3, marker=marker, rank=1))
    phase = result.phases["pretrain"]

    assert marker.read_text().startswith("killed rank 1 after step 3")  # the failure really happened
    assert phase.checkpoint is not None
    state = json.loads((Path(phase.checkpoint) / STATE_FILE).read_text())["state"]
    assert state["step"] == 4 and state["resumes"] == 1  # restarted once, from the step-2 checkpoint
    assert state["batches_in_epoch"] == 4 or state["epoch"] > 0  # data position continued past the skip
    assert phase.metrics["train/step"] == 4 and math.isfinite(phase.metrics["train/loss"])

    adapter = load_file(str(phase.model_dir / "adapter_model.safetensors"))
    assert adapter and all(t.numel() > 0 for t in adapter.values())  # not the empty ZeRO-3 save
    a = next(t for k, t in adapter.items() if k.endswith("q_proj.lora_A.weight"))
    assert tuple(a.shape) == (4, 64)
    assert any(float(t.abs().sum()) > 0 for k, t in adapter.items() if "lora_B" in k)
    assert (phase.init_dir / "model.safetensors").is_file()  # merged into the seed-built base
