"""Sweep configs, trial overrides (the CLI's own override function) and nested data fractions."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from laborlm import schema
from laborlm.config import load_config
from laborlm.corpus.build import iter_texts
from laborlm.errors import ConfigError
from laborlm.sweeps.scaling import (
    DATA_FRACTION,
    Prepared,
    SweepConfig,
    model_override,
    param_space,
    train_config_for,
    trial_key,
    trial_overrides,
)

REPO = Path(__file__).resolve().parents[3]


def _prepared(tokens: int = 10_000) -> Prepared:
    return Prepared(
        "/data/survey",
        "/data/pretrain",
        "/data/finetune",
        "/data/tokenizer",
        None,
        None,
        "laborlm",
        {"0.5": {"people": 50, "tokens": tokens}, "1.0": {"people": 100, "tokens": 2 * tokens}},
        0,
    )


def test_trial_overrides_layer_after_the_sweep_settings_and_set_steps_from_epochs(tmp_path: Path) -> None:
    cfg = SweepConfig(
        train_overrides=("block_size=64", "micro_batch_size=2", "finetune.max_steps=7", "seed=9"),
        pretrain_epochs=2.0,
    )
    params = {DATA_FRACTION: 0.5, "model": "llama-400k", "seed": 3}
    config = train_config_for(cfg, _prepared(), params, tmp_path)
    assert config.model.size == "llama-400k" and config.seed == 3  # the trial's own values win
    assert config.pretrain.data_fraction == 0.5 and config.finetune.max_steps == 7 and config.block_size == 64
    assert str(config.pretrain.corpus) == "/data/pretrain" and config.tokenizer == "/data/tokenizer"
    assert config.strategy.num_workers == 1 and config.strategy.cpus_per_worker == pytest.approx(0.4)
    assert not config.tracking.enabled  # no parent run: trials log nothing
    # Two epochs of 10,000 tokens at 64 x 2 tokens per step.
    assert config.pretrain.max_steps == math.ceil(2 * 10_000 / 128)


def test_without_epochs_the_steps_come_from_the_overrides(tmp_path: Path) -> None:
    cfg = SweepConfig(train_overrides=("pretrain.max_steps=11",), pretrain_epochs=None)
    config = train_config_for(
        cfg, _prepared(), {DATA_FRACTION: 1.0, "model": "llama-1m", "seed": 0}, tmp_path
    )
    assert config.pretrain.max_steps == 11


def test_a_bad_trial_override_is_a_config_error_naming_the_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sweep trial .*data_fraction"):
        train_config_for(SweepConfig(), _prepared(), {DATA_FRACTION: 1.5, "model": "llama-1m"}, tmp_path)


def test_trial_keys_are_readable_and_deterministic() -> None:
    a = trial_key({DATA_FRACTION: 0.3, "model": "llama-1m", "seed": 0})
    assert a.startswith("llama-1m-d0.3-s0-") and a == trial_key(
        {"seed": 0, "model": "llama-1m", DATA_FRACTION: 0.3}
    )
    assert a != trial_key({DATA_FRACTION: 0.3, "model": "llama-1m", "seed": 1})
    assert trial_key({"model": "/models/llama-3-8b/", "finetune.lr": 1e-3}).startswith("llama-3-8b-")


def test_models_map_to_a_size_or_a_path() -> None:
    assert model_override("llama-200k") == "model.size=llama-200k"
    assert model_override("/mnt/shared/models/llama-7b") == "model.path=/mnt/shared/models/llama-7b"
    assert trial_overrides({"model": "llama-1m", "finetune.lora": True}) == [
        "finetune.lora=true",
        "model.size=llama-1m",
    ]


def test_grid_and_asha_spaces() -> None:
    grid = param_space(SweepConfig())
    assert grid[DATA_FRACTION] == {"grid_search": [0.1, 0.3, 1.0]}
    assert grid["model"] == {"grid_search": ["llama-200k", "llama-400k", "llama-1m"]}
    asha = param_space(load_config(SweepConfig, REPO / "jobs" / "sweep_asha.yaml"))
    assert asha["finetune.lora"] is True and asha[DATA_FRACTION] == 1.0
    assert {"finetune.lr", "lora.rank"} <= set(asha)


def test_config_errors_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        SweepConfig(data_fractions=(0.0, 2.0), models=(), max_concurrent_trials=0)
    text = str(info.value)
    assert "data_fractions" in text and "models" in text and "max_concurrent_trials" in text


def test_data_fractions_keep_nested_person_subsets(tmp_path: Path) -> None:
    ids = [f"p{i:04d}" for i in range(2000)]
    table = pa.table(
        {
            schema.PERSON_ID: ids,
            schema.SPLIT: ["train"] * 1990 + ["valid"] * 10,
            "text": [f"career of {p}" for p in ids],
        }
    )
    shard = tmp_path / "part-0.parquet"
    pq.write_table(table, shard)

    def kept(fraction: float) -> set[str]:
        return {t for batch in iter_texts([shard], "train", 256, fraction) for t in batch}

    small, large, everything = kept(0.2), kept(0.6), kept(1.0)
    assert len(everything) == 1990  # train only
    assert small < large < everything  # nested: the people at 0.2 are among those at 0.6
    assert abs(len(small) / 1990 - 0.2) < 0.04 and abs(len(large) / 1990 - 0.6) < 0.04
    assert kept(0.2) == small  # deterministic
