"""Size family parameter counts, seeded construction, LoRA export (non-empty) and merge, data position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from laborlm.errors import ConfigError, LaborLMError
from laborlm.training.config import LoraConfig, ModelConfig
from laborlm.training.loop import LoopState, gathered_state, micro_batches
from laborlm.training.models import (
    apply_lora,
    build_model,
    is_adapter,
    merge_adapter,
    parameter_count,
)
from laborlm.training.sizes import NOMINAL_PARAMS, SIZES


class _Tokenizer:
    """What build_model needs from a tokenizer."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self) -> int:
        return 300


@pytest.mark.parametrize("size", list(SIZES))
def test_family_sizes_are_near_their_names(size: str) -> None:
    count = parameter_count(size, vocab_size=4096)
    assert 0.75 * NOMINAL_PARAMS[size] <= count <= 1.25 * NOMINAL_PARAMS[size], count


def test_family_is_ordered_and_1b_is_tinyllama_shaped() -> None:
    counts = [parameter_count(s) for s in SIZES]
    assert counts == sorted(counts)
    assert parameter_count("llama-1b", vocab_size=32000) == pytest.approx(1.1e9, rel=0.01)


def test_config_built_model_depends_only_on_the_seed() -> None:
    cfg = ModelConfig(size="llama-1m")
    a = build_model(cfg, _Tokenizer(), block_size=32, seed=3)  # type: ignore[arg-type]
    torch.manual_seed(123)  # the global RNG does not matter
    b = build_model(cfg, _Tokenizer(), block_size=32, seed=3)  # type: ignore[arg-type]
    c = build_model(cfg, _Tokenizer(), block_size=32, seed=4)  # type: ignore[arg-type]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    assert a.config.vocab_size == 300 and a.config.max_position_embeddings == 32


def test_tied_embeddings_share_one_matrix_through_training_saving_and_loading(tmp_path: Path) -> None:
    tied = build_model(ModelConfig(tie_embeddings=True), _Tokenizer(), block_size=16)  # type: ignore[arg-type]
    untied = build_model(ModelConfig(), _Tokenizer(), block_size=16)  # type: ignore[arg-type]
    assert tied.lm_head.weight is tied.model.embed_tokens.weight
    n_tied, n_untied = (sum(p.numel() for p in m.parameters()) for m in (tied, untied))
    assert n_untied - n_tied == 300 * SIZES["llama-1m"]["hidden_size"]  # one vocab x hidden matrix fewer

    ids = torch.randint(3, 300, (2, 16))
    optimizer = torch.optim.SGD(tied.parameters(), lr=0.1)
    tied(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    assert tied.lm_head.weight is tied.model.embed_tokens.weight  # still one matrix after an update

    tied.save_pretrained(tmp_path / "m")
    loaded = build_model(ModelConfig(), _Tokenizer(), block_size=16, init_path=tmp_path / "m")  # type: ignore[arg-type]
    assert loaded.config.tie_word_embeddings
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.allclose(tied(input_ids=ids).logits, loaded(input_ids=ids).logits, atol=1e-6)


def test_tie_embeddings_is_refused_for_a_loaded_model() -> None:
    with pytest.raises(ConfigError, match="tie_embeddings: applies to a model built from a size"):
        ModelConfig(size=None, path="some/model", tie_embeddings=True)


def test_missing_model_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a local causal LM"):
        build_model(ModelConfig(size=None, path=str(tmp_path / "none")), _Tokenizer(), block_size=8)  # type: ignore[arg-type]
    base = build_model(ModelConfig(), _Tokenizer(), block_size=8)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="target_modules"):
        apply_lora(base, LoraConfig(target_modules=("c_attn",)))


def test_lora_adapter_saves_non_empty_and_merges_to_the_same_logits(tmp_path: Path) -> None:
    tok = _Tokenizer()
    base = build_model(ModelConfig(), tok, block_size=16, seed=0)  # type: ignore[arg-type]
    base.save_pretrained(str(tmp_path / "base"))
    model = apply_lora(
        build_model(ModelConfig(), tok, block_size=16, seed=0), LoraConfig(rank=4, dropout=0.0)
    )  # type: ignore[arg-type]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(3, 300, (4, 16), generator=torch.Generator().manual_seed(0))
    for _ in range(3):  # lora_B starts at zero: train so the adapter changes the logits
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    # The export path of the training loop (non-partitioned here; ZeRO-3 gathers first, tested on 2 workers).
    weights = gathered_state(model, trainable_only=True, partitioned=False, rank=0)
    assert weights and all("lora_" in k for k in weights)
    model.save_pretrained(str(tmp_path / "adapter"), state_dict=weights)
    assert is_adapter(tmp_path / "adapter")
    saved = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert len(saved) == 2 * 4 * 6  # A and B for q/k/v/o in 6 layers
    assert all(t.numel() > 0 for t in saved.values())
    assert any(float(t.abs().sum()) > 0 for k, t in saved.items() if "lora_B" in k)

    merged_dir = merge_adapter(tmp_path / "base", tmp_path / "adapter", tmp_path / "merged")
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), local_files_only=True)
    model.eval()
    with torch.no_grad():
        adapter_logits = model(input_ids=ids).logits
        merged_logits = merged(input_ids=ids).logits
        base_logits = base(input_ids=ids).logits
    assert torch.allclose(adapter_logits, merged_logits, atol=1e-5)
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4)
    assert not any("lora" in k for k in merged.state_dict())


class _Shard:
    """A stand-in for a Ray Train dataset shard: numbered blocks, batched like iter_torch_batches."""

    def __init__(self, blocks: int) -> None:
        self.blocks = blocks

    def iter_torch_batches(self, *, batch_size: int, drop_last: bool, **_: Any) -> Any:
        for start in range(0, self.blocks - batch_size + 1 if drop_last else self.blocks, batch_size):
            yield {"input_ids": torch.arange(start, min(start + batch_size, self.blocks))}


def test_micro_batches_keep_and_restore_the_data_position() -> None:
    state = LoopState()
    it = micro_batches(_Shard(10), state, 3)  # 3 full micro-batches per epoch, 1 block dropped
    firsts = [int(next(it)["input_ids"][0]) for _ in range(5)]
    assert firsts == [0, 3, 6, 0, 3]
    assert (state.epoch, state.batches_in_epoch) == (1, 2)
    resumed = LoopState(epoch=1, batches_in_epoch=2)
    it2 = micro_batches(_Shard(10), resumed, 3)
    assert int(next(it2)["input_ids"][0]) == 6  # the 2 consumed micro-batches are skipped
    assert (resumed.epoch, resumed.batches_in_epoch) == (1, 3)


def test_micro_batches_fail_clearly_on_a_too_small_shard() -> None:
    with pytest.raises(LaborLMError, match="no full micro-batch"):
        next(micro_batches(_Shard(2), LoopState(), 3))
