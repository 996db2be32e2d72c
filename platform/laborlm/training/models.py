"""Causal LMs to train: a named Llama-style size family (no download), or any local HF model; LoRA via peft.

The family keeps one architecture (Llama: RoPE, RMSNorm, SwiGLU, untied embeddings unless
``model.tie_embeddings``) from ~1M to ~1B parameters so scaling runs change one thing at a time. Nominal
sizes are for the corpus tokenizer's default vocabulary (4,096 tokens); a larger vocabulary adds
``2 * vocab * hidden`` (embeddings and output head).
``llama-1b`` has TinyLlama-1.1B's shape (grouped-query attention, 4 KV heads); with a 32k vocabulary it is
1.1B parameters.

Nothing here downloads: config-built models are random-initialised from a seed, ``from_pretrained`` runs with
``local_files_only=True``. Models built on different ranks from the same seed are identical, which ZeRO-3
relies on (each rank partitions its own copy).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from laborlm.errors import ConfigError
from laborlm.training.sizes import NOMINAL_PARAMS, SIZES

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from laborlm.training.config import LoraConfig, ModelConfig

logger = logging.getLogger(__name__)

__all__ = ["NOMINAL_PARAMS", "SIZES"]  # the size family lives in training.sizes; re-exported for callers

MODEL_INFO = "laborlm_model.json"  # beside the weights: phase, step, losses, template and taxonomy names


def llama_config(
    size: str,
    *,
    vocab_size: int,
    max_positions: int,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    tie_embeddings: bool = False,
) -> Any:
    """The ``LlamaConfig`` of a family size, sized to a tokenizer (special token ids inside the vocabulary).

    ``tie_embeddings`` shares one matrix between the input embeddings and the output head (fewer parameters
    by ``vocab * hidden``), so an attention head that carries an earlier label's embedding forward raises that
    label's logit directly. It was tried for returns to an earlier occupation and measured worse at size small
    (docs/language-models.md), so it is off by default.
    """
    from transformers import LlamaConfig

    if size not in SIZES:
        raise ConfigError(f"model.size: expected one of {', '.join(SIZES)}, got {size!r}")
    shape: dict[str, Any] = dict(SIZES[size])
    return LlamaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        **shape,
    )


def parameter_count(size: str, vocab_size: int = 4096) -> int:
    """Parameters of a family size, counted on the meta device (no memory, no time, even for 1B)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(size, vocab_size=vocab_size, max_positions=2048))
    return sum(p.numel() for p in model.parameters())


def build_model(
    config: ModelConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    block_size: int,
    init_path: str | Path | None = None,
    seed: int = 0,
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """The model a phase starts from.

    ``init_path`` (a previous phase's saved model) wins; else ``config.path`` (local HF model); else a fresh
    family model whose weights depend only on ``seed`` (the global RNG is left as it was).

    Raises:
        ConfigError: nothing loadable at the path, or a tokenizer larger than the model's vocabulary.
    """
    import torch
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    model: Any
    source = init_path if init_path is not None else config.path
    if source is not None:
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source), local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"model {str(source)!r}: not a local causal LM folder or cached model id ({exc})"
            ) from None
        if len(tokenizer) > int(model.get_input_embeddings().num_embeddings):
            add_label_embeddings(model, tokenizer, source)
    else:
        assert config.size is not None
        cfg = llama_config(
            config.size,
            vocab_size=len(tokenizer),
            max_positions=config.max_positions or block_size,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_embeddings=config.tie_embeddings,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(cfg)
        if dtype is not None:
            model = model.to(dtype)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    from laborlm.llm.stay_move import install

    if install(model, tokenizer):  # a tokenizer with the stay token: two-stage (stay/move) training
        logger.info("model: stay/move loss (the stay token competes with the other labels)")
    out: PreTrainedModel = model
    return out


def add_label_embeddings(model: Any, tokenizer: PreTrainedTokenizerBase, source: str | Path) -> None:
    """Grow a pretrained model's vocabulary to the tokenizer's; each new label token starts at the mean of
    the embeddings (input and output) of the pieces the label had before (``corpus.tokenizer.extend_tokenizer``).

    Raises:
        ConfigError: the tokenizer is larger than the model and its extra tokens are not recorded label tokens.
    """
    import torch

    from laborlm.corpus.tokenizer import read_tokenizer_info

    old = int(model.get_input_embeddings().num_embeddings)
    info = read_tokenizer_info(str(getattr(tokenizer, "name_or_path", "")))
    labels = info.get("label_tokens", {})
    new = {int(v["id"]): [int(i) for i in v["pieces"]] for v in labels.values() if int(v["id"]) >= old}
    if info.get("stay_token") is not None and int(info["stay_token"]) >= old:
        new[int(info["stay_token"])] = list(range(old))  # no pieces: starts at the mean of every row
    if len(tokenizer) - old != len(new) or any(i >= old for pieces in new.values() for i in pieces):
        raise ConfigError(
            f"model {str(source)!r}: vocabulary {old} is smaller than the tokenizer's "
            f"{len(tokenizer)}, and the extra tokens are not label tokens added to its own tokenizer"
        )
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for matrix in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
            for token, pieces in new.items():
                matrix[token] = matrix[pieces].mean(dim=0)
    logger.info("model %s: %d label tokens added, embeddings initialised from their pieces", source, len(new))


def apply_lora(model: PreTrainedModel, config: LoraConfig) -> Any:
    """Wrap ``model`` in a peft LoRA ``PeftModel``: only the adapter matrices train.

    Raises:
        ConfigError: none of ``target_modules`` exists in the model.
    """
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in config.target_modules if m not in names]
    if len(missing) == len(config.target_modules):
        raise ConfigError(
            f"lora.target_modules: none of {list(config.target_modules)} is a module of this model"
        )
    peft_config = PeftLoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,  # type: ignore[arg-type]  # peft annotates int; the scale alpha / r is float
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, peft_config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    logger.info(
        "LoRA rank %d on %s: %d trainable parameters", config.rank, list(config.target_modules), trainable
    )
    return peft_model


def merge_adapter(base_path: str | Path, adapter_path: str | Path, out_dir: str | Path) -> Path:
    """Load a base model and a LoRA adapter, merge the adapter into the weights and save a plain model.

    The merged model computes the same logits as base + adapter (to float rounding), without peft.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_path), local_files_only=True)
    merged = PeftModel.from_pretrained(base, str(adapter_path), local_files_only=True).merge_and_unload()
    out_dir = Path(out_dir)
    merged.save_pretrained(str(out_dir))
    return out_dir


def is_adapter(folder: str | Path) -> bool:
    """Whether a saved model folder holds a peft adapter rather than full weights."""
    return (Path(folder) / "adapter_config.json").is_file()


def read_model_info(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MODEL_INFO
    return json.loads(path.read_text()) if path.is_file() else {}


def write_model_info(folder: str | Path, info: Mapping[str, Any]) -> None:
    (Path(folder) / MODEL_INFO).write_text(json.dumps(dict(info), indent=2, default=str) + "\n")
