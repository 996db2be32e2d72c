"""ZeRO templates: "auto" filled from the training config, leftovers and conflicts rejected; jobs/ copies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.errors import ConfigError
from laborlm.training.deepspeed import TEMPLATES, fill_deepspeed_config, load_template

JOBS = Path(__file__).resolve().parents[3] / "jobs" / "deepspeed"
KW = {
    "micro_batch_size": 4,
    "grad_accum_steps": 3,
    "world_size": 2,
    "max_grad_norm": 1.0,
    "precision": "bf16",
    "hidden_size": 64,
    "torch_optimizer": True,
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_jobs_json_files_are_the_built_in_templates(name: str) -> None:
    assert json.loads((JOBS / f"{name}.json").read_text()) == TEMPLATES[name]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_auto_is_filled_from_the_training_config(name: str) -> None:
    cfg = fill_deepspeed_config(TEMPLATES[name], **KW)  # type: ignore[arg-type]
    assert "auto" not in json.dumps(cfg)
    assert cfg["train_batch_size"] == 4 * 3 * 2 and cfg["train_micro_batch_size_per_gpu"] == 4
    assert cfg["gradient_accumulation_steps"] == 3 and cfg["gradient_clipping"] == 1.0
    assert cfg["bf16"]["enabled"] is True and cfg["fp16"]["enabled"] is False
    assert cfg["zero_optimization"]["reduce_bucket_size"] == 64 * 64
    assert cfg["zero_allow_untested_optimizer"] is True
    assert ("zero_force_ds_cpu_optimizer" in cfg) == name.endswith("offload")
    assert TEMPLATES[name]["train_batch_size"] == "auto"  # the template itself is untouched


def test_no_clipping_and_fp32() -> None:
    cfg = fill_deepspeed_config(TEMPLATES["zero2"], **{**KW, "max_grad_norm": None, "precision": "fp32"})  # type: ignore[arg-type]
    assert cfg["gradient_clipping"] == 0.0 and not cfg["bf16"]["enabled"] and not cfg["fp16"]["enabled"]


def test_unknown_auto_and_conflicting_values_are_errors() -> None:
    bad = {
        **TEMPLATES["zero2"],
        "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
        "train_micro_batch_size_per_gpu": 16,
    }
    with pytest.raises(ConfigError) as err:
        fill_deepspeed_config(bad, **KW)  # type: ignore[arg-type]
    assert "optimizer.params.lr" in str(err.value) and "train_micro_batch_size_per_gpu: 16" in str(err.value)


def test_template_file_must_match_the_strategy(tmp_path: Path) -> None:
    path = tmp_path / "z.json"
    path.write_text(json.dumps(TEMPLATES["zero2"]))
    assert load_template(path, "zero2", False)["zero_optimization"]["stage"] == 2
    with pytest.raises(ConfigError, match="stage is 2 but strategy.kind is zero3"):
        load_template(path, "zero3", False)
    path.write_text("{oops")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_template(path, "zero2", False)
