"""Language-model training on Ray Train: DDP or DeepSpeed ZeRO-2/3, full or LoRA, fault-tolerant, tracked.

    laborlm train jobs/train_tiny.yaml [key.path=value ...]

``config`` (``TrainConfig``, ``kind: train``), ``models`` (the Llama-style size family, local HF models,
LoRA), ``schedule`` (learning-rate factors), ``deepspeed`` (ZeRO templates filled from the config), ``loop``
(the per-worker loop: setup, restore, train, evaluate, save, report; its MLflow runs come from
``laborlm.tracking.mlflow_tracker``) and ``workflow`` (phase (a) pretrain, phase (b) fine-tune). Importing this
package imports neither Ray nor torch.
"""

from __future__ import annotations

from laborlm.training.config import (
    CheckpointingConfig,
    FinetuneConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    PhaseConfig,
    StrategyConfig,
    TrainConfig,
)

__all__ = [
    "CheckpointingConfig",
    "FinetuneConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "PhaseConfig",
    "StrategyConfig",
    "TrainConfig",
]
