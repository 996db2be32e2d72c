"""TrainConfig: strict loading, cross-field validation, deterministic run names, shipped job files."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.config import build, load_config
from laborlm.errors import ConfigError
from laborlm.training import TrainConfig

JOBS = Path(__file__).resolve().parents[3] / "jobs"


def test_embedded_defaults_are_the_tiny_two_phase_cpu_run() -> None:
    cfg = TrainConfig()
    assert [name for name, _ in cfg.phases()] == ["pretrain", "finetune"]
    assert cfg.pretrain.synthesize == "resumes" and cfg.finetune.synthesize == "psid"
    assert cfg.finetune.init == "previous" and cfg.strategy.kind == "ddp" and not cfg.strategy.use_gpu
    assert cfg.model.size == "llama-1m"


def test_override_of_one_finetune_key_keeps_the_finetune_defaults() -> None:
    cfg = load_config(TrainConfig, None, ["finetune.lr=1e-4"])
    assert cfg.finetune.lr == 1e-4 and cfg.finetune.synthesize == "psid" and cfg.finetune.init == "previous"


def test_run_name_is_deterministic_and_follows_the_config() -> None:
    a, b = TrainConfig(), load_config(TrainConfig, None, [])
    assert a.default_run_name() == b.default_run_name()
    assert a.default_run_name().startswith("train-llama-1m-s0-")
    changed = load_config(TrainConfig, None, ["pretrain.max_steps=7"])
    assert changed.default_run_name() != a.default_run_name()
    assert load_config(TrainConfig, None, ["run_name=mine"]).default_run_name() == "mine"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy.offload=true"], "offload: needs kind zero3"),
        (["strategy.precision=fp16"], "fp16 needs a ZeRO strategy on GPU"),
        (["optim.impl=deepspeed"], "optim.impl: 'deepspeed' optimizers need"),
        (["pretrain.init=previous"], "pretrain.init"),
        (["pretrain.enabled=false"], "finetune.init: 'previous' needs pretrain.enabled"),
        (["pretrain.enabled=false", "finetune.enabled=false"], "at least one phase"),
        (["model.size=llama-7b"], "size: expected one of"),
        (["model.path=/m"], "exactly one of size and path"),
        # QLoRA is measured by `benchmark hardware --qlora` only; training used to validate the key and ignore it
        (["lora.quantize_4bit=true"], "QLoRA training is not implemented"),
        (["pretrain.max_steps=0"], "max_steps: must be >= 1"),
        (["finetune.synthesize=census"], "synthesize: expected"),
    ],
)
def test_invalid_combinations_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, overrides)


def test_every_problem_is_reported_at_once_with_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        build(TrainConfig, {"block_size": "long", "strategy": {"kind": "fsdp"}, "pretrain": {"lr": -1.0}})
    text = str(err.value)
    assert "block_size: expected int" in text and "strategy.kind: expected one of" in text
    assert "lr: must be > 0" in text


@pytest.mark.parametrize(
    "name", ["train_tiny.yaml", "train_llama1b_zero3_lora.yaml", "train_llama1b_multinode.yaml"]
)
def test_shipped_train_jobs_load_and_name_their_commands(name: str) -> None:
    path = JOBS / name
    cfg = load_config(TrainConfig, path)
    assert "laborlm train jobs/" in path.read_text() or "laborlm run jobs/" in path.read_text()
    if "llama1b" in name:
        assert cfg.strategy.kind == "zero3" and cfg.strategy.use_gpu and cfg.strategy.precision == "bf16"
        assert cfg.finetune.lora and cfg.model.size == "llama-1b"
        assert (
            cfg.strategy.deepspeed_config is not None
            and (JOBS.parent / cfg.strategy.deepspeed_config).is_file()
        )
    else:
        assert cfg.strategy.num_workers == 2 and not cfg.strategy.use_gpu
