"""The corpus configs load strictly, from the shipped job YAML and from overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.config import build, config_hash, load_config, load_yaml
from laborlm.corpus import CorpusConfig, PackConfig, TokenizerConfig
from laborlm.errors import ConfigError

JOB = Path(__file__).resolve().parents[3] / "jobs" / "build_corpus.yaml"


def test_job_yaml_loads_into_corpus_config() -> None:
    assert load_yaml(JOB)["kind"] == "build_corpus"
    config = load_config(CorpusConfig, JOB)
    assert config.template == "labor-llm" and config.inputs == (
        Path("runs/quickstart/psid"),
        Path("runs/quickstart/resumes"),
    )
    assert config == CorpusConfig(
        inputs=config.inputs, out_dir=Path("runs/corpus")
    )  # the YAML only documents defaults


def test_overrides_are_typed_and_change_the_hash() -> None:
    base = load_config(CorpusConfig, JOB)
    codes = load_config(CorpusConfig, JOB, ["template=codes", "split.seed=3", "max_reject_fraction=0.01"])
    assert (codes.template, codes.split.seed, codes.max_reject_fraction) == ("codes", 3, 0.01)
    assert config_hash(codes) != config_hash(base)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rows_per_shard=0"], "rows_per_shard: must be >= 1"),
        (["max_reject_fraction=1.5"], "max_reject_fraction: must be in [0, 1]"),
        (["split.seed=abc"], "split.seed: expected int"),
        (["templat=codes"], "did you mean 'template'"),
    ],
)
def test_bad_values_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(CorpusConfig, JOB, overrides)
    assert message in str(info.value)


def test_tokenizer_and_pack_configs() -> None:
    assert build(TokenizerConfig, {"vocab_size": 8192}).vocab_size == 8192
    with pytest.raises(ConfigError, match="vocab_size: must be >= 260"):
        TokenizerConfig(vocab_size=100)
    with pytest.raises(ConfigError, match="split: expected one of train, valid, test"):
        TokenizerConfig(split="dev")
    with pytest.raises(ConfigError, match="tokenizer: missing required value"):
        build(PackConfig, {"block_size": 128})
    with pytest.raises(ConfigError, match="block_size: must be >= 2"):
        PackConfig(tokenizer="t", block_size=1)
