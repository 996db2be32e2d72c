"""GPU-only training settings (deselected by default: ``-m gpu`` on a machine with CUDA).

The CPU suite covers DDP, ZeRO-2 and ZeRO-3 on gloo; these cover what only a GPU runs: bf16 and fp16 under
ZeRO-3 with DeepSpeed's fused optimizer, and ZeRO-3 CPU offload with DeepSpeedCPUAdam.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_train_workflow import shared_data

from laborlm.config import load_config
from laborlm.training import TrainConfig
from laborlm.training.workflow import run_training

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.usefixtures("ray_session"),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize(("precision", "offload"), [("bf16", False), ("fp16", False), ("bf16", True)])
def test_zero3_on_gpu_trains_with_deepspeed_optimizers(
    precision: str, offload: bool, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    overrides = [
        *shared_data(tmp_path_factory),
        f"out_dir={tmp_path / 'run'}",
        "finetune.enabled=false",
        "strategy.kind=zero3",
        f"strategy.precision={precision}",
        f"strategy.offload={str(offload).lower()}",
        "strategy.use_gpu=true",
        f"strategy.num_workers={min(2, torch.cuda.device_count())}",
        "strategy.cpus_per_worker=1",
        "optim.impl=deepspeed",
        "pretrain.max_steps=6",
        "pretrain.warmup_steps=1",
        "pretrain.eval_every_steps=3",
        "pretrain.checkpoint_every_steps=3",
        "pretrain.eval_blocks=16",
        "tracking.enabled=false",
    ]
    phase = run_training(load_config(TrainConfig, None, overrides)).phases["pretrain"]
    assert phase.metrics["train/step"] == 6 and math.isfinite(phase.metrics["train/loss"])
    assert phase.metrics["valid/best_loss"] < phase.metrics["valid/initial_loss"]
