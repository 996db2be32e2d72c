"""``kind: train``: the typed config of a language-model training run (pretrain and/or fine-tune).

    laborlm train jobs/train_tiny.yaml pretrain.max_steps=100 strategy.kind=zero2

The dataclass defaults are the embedded defaults: a ~1M-parameter Llama-style model on 2 CPU workers with
plain DDP, phase (a) on a synthetic resume corpus and phase (b) on a synthetic PSID corpus, tracked in a
local SQLite MLflow store. YAML files only override them (``laborlm.config``: strict, every problem at once).
Cross-field rules live in each ``__post_init__`` and raise ``ConfigError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from laborlm.config import default_run_name
from laborlm.errors import ConfigError
from laborlm.tracking.mlflow_tracker import TrackingConfig
from laborlm.training.sizes import SIZES

PHASES = ("pretrain", "finetune")
Schedule = Literal["cosine", "inverse_sqrt", "constant"]


@dataclass(frozen=True)
class ModelConfig:
    """Which causal LM: a named Llama-style size built from a config (no download) or a local HF model."""

    size: str | None = "llama-1m"  # training.sizes.SIZES (llama-1m ... llama-1b); null: load `path`
    path: str | None = None  # HF causal LM folder or already-cached model id (never downloaded)
    max_positions: int | None = None  # context length of a config-built model; null: block_size (RoPE has no
    #                                   position parameters, so this never changes the parameter count)
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    tie_embeddings: bool = False  # a config-built model's output head shares the input embedding matrix; a
    #                               loaded model (path) keeps its own choice

    def __post_init__(self) -> None:
        problems = []
        if (self.size is None) == (self.path is None):
            problems.append("exactly one of size and path must be set")
        if self.size is not None and self.size not in SIZES:
            problems.append(f"size: expected one of {', '.join(SIZES)}, got {self.size!r}")
        if self.max_positions is not None and self.max_positions < 2:
            problems.append(f"max_positions: must be >= 2, got {self.max_positions}")
        if self.tie_embeddings and self.path is not None:
            problems.append(
                "tie_embeddings: applies to a model built from a size; a loaded model (path) keeps its own "
                "config's tie_word_embeddings"
            )
        if problems:
            raise ConfigError(problems)

    @property
    def name(self) -> str:
        """Short model name for run names: the size, or the last component of the path."""
        return self.size if self.size is not None else Path(str(self.path)).name or "model"


@dataclass(frozen=True)
class LoraConfig:
    """peft LoRA settings, used by every phase with ``lora: true``."""

    rank: int = 8  # higher = more capacity and memory
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # Llama attention projections
    quantize_4bit: bool = False  # always false: training has no QLoRA; the key stays so that the config.yaml
    #                              of earlier runs (which wrote it) reads back, and true is refused, not ignored

    def __post_init__(self) -> None:
        problems = []
        if self.quantize_4bit:
            problems.append(
                "quantize_4bit: QLoRA training is not implemented (LoRA only); "
                "`laborlm benchmark hardware --qlora` measures a 4-bit base"
            )
        if self.rank < 1:
            problems.append(f"rank: must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            problems.append(f"alpha: must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            problems.append("target_modules: at least one module name is required")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class OptimConfig:
    weight_decay: float = 0.1  # AdamW's decoupled decay, on matrices only (not norms or biases)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0  # clip the global gradient norm; null: no clipping
    impl: Literal["torch", "deepspeed"] = (
        "torch"  # torch: torch.optim.AdamW (nothing to compile; any strategy);
    )
    #   deepspeed: FusedAdam on GPU, DeepSpeedCPUAdam with offload (JIT-compiled ops; ZeRO strategies only)

    def __post_init__(self) -> None:
        problems = []
        if self.weight_decay < 0:
            problems.append(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas: two values in [0, 1) expected, got {list(self.betas)}")
        if self.eps <= 0:
            problems.append(f"eps: must be > 0, got {self.eps}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            problems.append(f"max_grad_norm: must be > 0 or null, got {self.max_grad_norm}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class StrategyConfig:
    """How the workers share the model: plain DDP, or DeepSpeed ZeRO stage 2 / 3."""

    kind: Literal["ddp", "zero2", "zero3"] = "ddp"
    offload: bool = (
        False  # ZeRO-3 only: optimizer state and parameters in CPU memory (zero3_offload template)
    )
    deepspeed_config: Path | None = (
        None  # ZeRO JSON template whose "auto" fields are filled from this config;
    )
    #                                       null: the built-in template (= jobs/deepspeed/<kind>[_offload].json)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 where the GPU has it, else fp32
    num_workers: int = 2  # Ray Train workers (one GPU each with use_gpu)
    use_gpu: bool = False
    cpus_per_worker: float = (
        0.5  # CPUs reserved per worker; below 1 leaves room for Ray Data's packing tasks on a 2-core machine
    )
    placement: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = (
        "PACK"  # Ray placement of the workers; STRICT_SPREAD:
    )
    #                                                                one worker per node (multi-node tests)

    def __post_init__(self) -> None:
        problems = []
        if self.offload and self.kind != "zero3":
            problems.append(f"offload: needs kind zero3, got {self.kind!r}")
        if self.deepspeed_config is not None and self.kind == "ddp":
            problems.append("deepspeed_config: only used with kind zero2 or zero3")
        if self.precision == "fp16" and (self.kind == "ddp" or not self.use_gpu):
            problems.append(
                "precision: fp16 needs a ZeRO strategy on GPU (DeepSpeed's loss scaling); use bf16"
            )
        if self.num_workers < 1:
            problems.append(f"num_workers: must be >= 1, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            problems.append(f"cpus_per_worker: must be > 0, got {self.cpus_per_worker}")
        if problems:
            raise ConfigError(problems)

    @property
    def deepspeed(self) -> bool:
        return self.kind != "ddp"


@dataclass(frozen=True)
class CheckpointingConfig:
    """Where Ray Train keeps checkpoints, and how often a failed worker group is restarted from them."""

    storage_path: str | None = None  # a folder or an fsspec URI (s3://..., gs://...); null: <out_dir>/ray
    keep: int = 2  # newest checkpoints kept per phase (each also carries the best model so far)
    max_failures: int = 2  # FailureConfig(max_failures): restarts from the latest checkpoint

    def __post_init__(self) -> None:
        problems = []
        if self.keep < 1:
            problems.append(f"keep: must be >= 1, got {self.keep}")
        if self.max_failures < -1:
            problems.append(f"max_failures: must be >= -1 (-1: unlimited), got {self.max_failures}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class PhaseConfig:
    """One training phase. Defaults describe phase (a): pretraining on a synthetic resume corpus."""

    enabled: bool = True
    corpus: Path | None = (
        None  # a built corpus folder; null: <out_dir>/data/<phase>/corpus (needs synthesize)
    )
    synthesize: str | None = "resumes"  # synthetic preset whose panel and corpus are made when the corpus is
    #                                     missing (resumes, psid, nlsy79, nlsy97); null: the corpus must exist
    synth_people: int = 2000  # people in that synthetic panel
    template: str = "labor-llm"  # corpus template when the corpus is built here
    data_fraction: float = (
        1.0  # share of the corpus's train people used (nested subsets; data-scaling sweeps)
    )
    init: Literal["model", "previous"] = "model"  # model: the model section (fresh or pretrained weights);
    #                                               previous: phase (a)'s best model (finetune only)
    lora: bool = False  # train a LoRA adapter (lora section) instead of every weight
    max_steps: int = 200  # optimiser steps
    lr: float = 3e-3  # peak learning rate
    schedule: Schedule = "cosine"  # after warm-up: cosine to min_lr_ratio * lr, lr / sqrt(step), or flat
    warmup_steps: int = 20  # linear warm-up from lr / warmup_steps
    min_lr_ratio: float = 0.1  # cosine floor, as a fraction of lr
    eval_every_steps: int | None = 50  # validation (and best-model selection) every N steps; null: at the end
    eval_blocks: int | None = 256  # validation blocks over all workers; null: the whole valid split
    eval_at_start: bool = (
        True  # also evaluate before the first step, so "did validation loss fall" is visible
    )
    occupation_eval_people: int | None = 200  # valid persons whose occupation perplexity is scored at each
    #   evaluation (training.occupation_eval; with label tokens ~1 s for 200 PSID persons); null: off
    select_on: Literal["occupation_perplexity", "loss"] = "occupation_perplexity"  # what picks the best model
    #   (and early-stops); occupation_perplexity needs occupation_eval_people, else valid loss is used
    early_stopping_patience: int | None = (
        None  # stop after N evaluations without a better best model; null: never
    )
    checkpoint_every_steps: int | None = 50  # null: only at the end
    log_every_steps: int = 10  # train loss, lr and tokens/s to MLflow

    def __post_init__(self) -> None:
        problems = []
        if self.synthesize is not None and self.synthesize not in ("psid", "nlsy79", "nlsy97", "resumes"):
            problems.append(
                f"synthesize: expected psid, nlsy79, nlsy97, resumes or null, got {self.synthesize!r}"
            )
        if self.enabled and self.corpus is None and self.synthesize is None:
            problems.append("corpus: a corpus folder is required when synthesize is null")
        if self.synth_people < 10:
            problems.append(f"synth_people: must be >= 10, got {self.synth_people}")
        if not 0.0 < self.data_fraction <= 1.0:
            problems.append(f"data_fraction: must be in (0, 1], got {self.data_fraction}")
        if self.max_steps < 1:
            problems.append(f"max_steps: must be >= 1, got {self.max_steps}")
        if self.lr <= 0:
            problems.append(f"lr: must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps: must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        for name in (
            "eval_every_steps",
            "eval_blocks",
            "checkpoint_every_steps",
            "occupation_eval_people",
            "early_stopping_patience",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name}: must be >= 1 or null, got {value}")
        if self.log_every_steps < 1:
            problems.append(f"log_every_steps: must be >= 1, got {self.log_every_steps}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class FinetuneConfig(PhaseConfig):
    """Phase (b): fine-tune on a survey corpus from phase (a)'s best model. Only the defaults differ."""

    synthesize: str | None = "psid"
    synth_people: int = 1000
    init: Literal["model", "previous"] = "previous"
    max_steps: int = 100
    lr: float = 1e-3
    warmup_steps: int = 10


@dataclass(frozen=True)
class TrainConfig:
    """``kind: train``. Every field has a default; ``laborlm train`` with no YAML runs the tiny CPU job."""

    out_dir: Path = Path("runs/train")  # models, tokenizer, synthetic data, MLflow store (local default)
    run_name: str | None = None  # null: train-<model>-s<seed>-<config hash>; same name + storage resumes
    seed: int = 0  # the one seed: initialisation (same on every rank), dropout (offset by rank)
    tokenizer: str | None = (
        None  # tokenizer folder or cached model id; null: a byte-level BPE trained on every
    )
    #                               phase's train split (or, with model.path, the model's own plus label tokens)
    tokenizer_vocab_size: int = (
        4096  # BPE merges when the tokenizer is trained here (label tokens come on top)
    )
    tokenizer_label_tokens: bool = (
        True  # every occupation label (titles or codes, special states included) is
    )
    #   one added token (corpus.tokenizer); false: titles stay multi-token, as an off-the-shelf LLM reads them
    stay_move: bool | None = None  # two-stage training: a stay token competes with the other labels
    #   (llm.stay_move); null: on exactly when tokenizer_label_tokens is (it needs single-token labels)
    block_size: int = 64  # tokens per packed training block
    pack_whole_documents: bool = False  # a career shorter than a block is never cut across two (its later
    #   years would be trained without their history, which scoring always has); the rest is padding
    micro_batch_size: int = 8  # blocks per worker per forward pass
    grad_accum_steps: int = 1  # micro-batches per optimiser step; global batch = micro * accum * workers
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    checkpoint: CheckpointingConfig = field(default_factory=CheckpointingConfig)
    pretrain: PhaseConfig = field(default_factory=PhaseConfig)  # phase (a)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # phase (b)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.block_size < 2:
            problems.append(f"block_size: must be >= 2, got {self.block_size}")
        if self.micro_batch_size < 1 or self.grad_accum_steps < 1:
            problems.append("micro_batch_size and grad_accum_steps: must be >= 1")
        if not (self.pretrain.enabled or self.finetune.enabled):
            problems.append("pretrain.enabled / finetune.enabled: at least one phase must run")
        if self.pretrain.init == "previous":
            problems.append("pretrain.init: 'previous' has no previous phase; use 'model'")
        if self.finetune.enabled and self.finetune.init == "previous" and not self.pretrain.enabled:
            problems.append(
                "finetune.init: 'previous' needs pretrain.enabled (or use 'model' with model.path)"
            )
        if self.optim.impl == "deepspeed" and not self.strategy.deepspeed:
            problems.append("optim.impl: 'deepspeed' optimizers need strategy.kind zero2 or zero3")
        if self.model.max_positions is not None and self.model.max_positions < self.block_size:
            problems.append(f"model.max_positions: must be >= block_size ({self.block_size})")
        if self.stay_move and not self.tokenizer_label_tokens:
            problems.append(
                "stay_move: needs tokenizer_label_tokens (a stay competes with single-token labels)"
            )
        if problems:
            raise ConfigError(problems)

    @property
    def uses_stay_move(self) -> bool:
        """Whether the tokenizer gets the stay token and the model the stay/move loss (``stay_move``)."""
        return self.tokenizer_label_tokens if self.stay_move is None else self.stay_move

    def phases(self) -> list[tuple[str, PhaseConfig]]:
        """The enabled phases, in order."""
        return [(name, getattr(self, name)) for name in PHASES if getattr(self, name).enabled]

    def default_run_name(self) -> str:
        """Deterministic and readable: ``train-<model>-s<seed>-<hash6>``; the same config resumes the same run."""
        return self.run_name or default_run_name("train", self.model.name, self.seed, self)
