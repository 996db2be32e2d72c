"""DeepSpeed ZeRO configs: JSON templates whose ``"auto"`` fields are filled from the ``TrainConfig``.

One value never lives in two places: batch sizes, accumulation, clipping and precision come from the training
config; the templates (``jobs/deepspeed/{zero2,zero3,zero3_offload}.json``, and the same built-in copies
below, so the installed package never needs ``jobs/``) hold only ZeRO's own knobs. After filling, any
``"auto"`` left is an error, and so is a filled field set to something other than ``"auto"`` that
disagrees with the config (a template must not override the config silently).

Optimizer and scheduler are never in the JSON: the loop passes them in (``torch.optim.AdamW`` by default,
which needs ``zero_allow_untested_optimizer``; on CPU that avoids JIT-compiling DeepSpeed's Adam ops).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from laborlm.errors import ConfigError

logger = logging.getLogger(__name__)

AUTO = "auto"

_ZERO2: dict[str, Any] = {
    "train_batch_size": AUTO,
    "train_micro_batch_size_per_gpu": AUTO,
    "gradient_accumulation_steps": AUTO,
    "gradient_clipping": AUTO,
    "bf16": {"enabled": AUTO},
    "fp16": {
        "enabled": AUTO,
        "loss_scale": 0,
        "initial_scale_power": 16,
        "loss_scale_window": 1000,
        "hysteresis": 2,
        "min_loss_scale": 1,
    },
    "zero_optimization": {
        "stage": 2,
        "allgather_partitions": True,
        "allgather_bucket_size": 200000000,
        "overlap_comm": True,
        "reduce_scatter": True,
        "reduce_bucket_size": AUTO,
        "contiguous_gradients": True,
    },
    "steps_per_print": 1000000,
    "wall_clock_breakdown": False,
}
_ZERO3: dict[str, Any] = {
    **{k: v for k, v in _ZERO2.items() if k != "zero_optimization"},
    "zero_optimization": {
        "stage": 3,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": AUTO,
        "stage3_prefetch_bucket_size": AUTO,
        "stage3_param_persistence_threshold": AUTO,
        "stage3_max_live_parameters": 1000000000,
        "stage3_max_reuse_distance": 1000000000,
        "sub_group_size": 1000000000,
        "stage3_gather_16bit_weights_on_model_save": False,
    },
}
_ZERO3_OFFLOAD: dict[str, Any] = copy.deepcopy(_ZERO3)
_ZERO3_OFFLOAD["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
_ZERO3_OFFLOAD["zero_optimization"]["offload_param"] = {"device": "cpu", "pin_memory": True}

TEMPLATES: dict[str, dict[str, Any]] = {"zero2": _ZERO2, "zero3": _ZERO3, "zero3_offload": _ZERO3_OFFLOAD}


def template_name(kind: str, offload: bool) -> str:
    """``zero2``, ``zero3`` or ``zero3_offload``: the built-in template (and jobs/deepspeed file) of a strategy."""
    return f"{kind}_offload" if offload else kind


def load_template(path: str | Path | None, kind: str, offload: bool) -> dict[str, Any]:
    """The JSON template at ``path``, or the built-in one for the strategy.

    Raises:
        ConfigError: unreadable or invalid JSON, or a ZeRO stage that disagrees with ``kind``.
    """
    if path is None:
        return copy.deepcopy(TEMPLATES[template_name(kind, offload)])
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read DeepSpeed config: {exc.strerror}", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"line {exc.lineno}: invalid JSON: {exc.msg}", source=str(path)) from None
    stage = data.get("zero_optimization", {}).get("stage")
    want = {"zero2": 2, "zero3": 3}[kind]
    if stage != want:
        raise ConfigError(
            f"zero_optimization.stage is {stage!r} but strategy.kind is {kind} (stage {want})",
            source=str(path),
        )
    return dict(data)


def fill_deepspeed_config(
    template: dict[str, Any],
    *,
    micro_batch_size: int,
    grad_accum_steps: int,
    world_size: int,
    max_grad_norm: float | None,
    precision: str,
    hidden_size: int,
    torch_optimizer: bool,
    source: str = "deepspeed config",
) -> dict[str, Any]:
    """Fill every ``"auto"`` of a ZeRO template; returns a new dict ready for ``deepspeed.initialize``.

    Args:
        precision: the resolved precision, ``fp32``, ``bf16`` or ``fp16``.
        hidden_size: the model's hidden size, for the bucket sizes (HF's rule: ``h*h``, ``0.9*h*h``, ``10*h``).
        torch_optimizer: a plain torch optimizer is passed in (sets ``zero_allow_untested_optimizer``; with
            offload also ``zero_force_ds_cpu_optimizer: false``).

    Raises:
        ConfigError: an ``"auto"`` this function does not know, or a set value that disagrees with the config.
    """
    cfg = copy.deepcopy(template)
    problems: list[str] = []
    values: dict[str, Any] = {
        "train_batch_size": micro_batch_size * grad_accum_steps * world_size,
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum_steps,
        "gradient_clipping": float(max_grad_norm)
        if max_grad_norm is not None
        else 0.0,  # 0: DeepSpeed's "off"
        "bf16.enabled": precision == "bf16",
        "fp16.enabled": precision == "fp16",
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
    }
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None  # type: ignore[assignment]
            if node is None:
                break
        if not isinstance(node, dict) or leaf not in node:
            if key in ("bf16.enabled", "fp16.enabled") and value:
                cfg.setdefault(key.split(".")[0], {})["enabled"] = True
            continue
        current = node[leaf]
        if current == AUTO:
            node[leaf] = value
        elif (
            key
            in (
                "train_batch_size",
                "train_micro_batch_size_per_gpu",
                "gradient_accumulation_steps",
                "gradient_clipping",
                "bf16.enabled",
                "fp16.enabled",
            )
            and current != value
        ):
            problems.append(
                f'{key}: {current!r} in the template but {value!r} from the training config; set it to "auto"'
            )
    left = _autos(cfg, "")
    problems += [f'{k}: "auto" that the training config cannot fill' for k in left]
    if problems:
        raise ConfigError(problems, source=source)
    if torch_optimizer:
        cfg["zero_allow_untested_optimizer"] = True
        if cfg.get("zero_optimization", {}).get("offload_optimizer"):
            cfg["zero_force_ds_cpu_optimizer"] = False
    return cfg


def _autos(node: Any, prefix: str) -> list[str]:
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _autos(v, f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if node == AUTO else []
