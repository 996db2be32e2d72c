"""The per-worker training loop of one phase: setup -> restore -> train -> evaluate/save -> report.

``run_phase_loop(session, job)`` runs on every Ray Train worker (``training.session.train_loop_per_worker``
builds the worker's ``RayTrainSession`` and calls it). Each worker streams its shard of the packed
blocks (``session.dataset_shard("train").iter_torch_batches``; Ray Data splits the stream with
``equal=True``, so every rank gets the same number of blocks and takes the same number of steps, which DDP
and ZeRO collectives need) and trains one of two engines behind the ``Engine`` protocol (``make_engine``
picks by ``strategy.kind``; the hardware benchmark times the same engines):

* ``_DdpEngine``: ``ray.train.torch.prepare_model`` (DDP over gloo or NCCL), torch AdamW, ``no_sync`` for
  the accumulated micro-batches, gradient clipping, bf16 autocast where chosen;
* ``_DeepSpeedEngine``: ``deepspeed.initialize`` with a ZeRO-2/3 config filled from the training config; the
  optimizer (torch AdamW by default) and the LR schedule are passed in; DeepSpeed accumulates and clips.

Steps, not epochs, bound a phase; the shard is re-read epoch after epoch. Evaluation on the valid split every
``eval_every_steps`` all-reduces the token-weighted loss; when it improves, the model is exported (adapter
or full weights; under ZeRO-3 gathered parameter by parameter, so a LoRA adapter never saves empty) into a
rank-0 folder that every checkpoint carries as ``model/``: the last checkpoint always holds the best model.

Checkpoints (every ``checkpoint_every_steps`` and at the end): every rank writes into a temporary folder and
reports it (``WorkerSession.report``: ``ray.train.report(metrics, checkpoint)``); Ray merges the folders.
DDP: rank 0 writes the trainable weights, optimizer and scheduler. DeepSpeed: every rank writes its ZeRO shard (``engine.save_checkpoint``),
optimizer and scheduler included. ``state.json`` holds the step counter and the data position (epoch and
micro-batches consumed in it): a restarted worker group (``FailureConfig``) or a re-run with the same
``RunConfig(name, storage_path)`` gets the latest checkpoint from ``session.restore()``, restores
everything and skips the consumed micro-batches. Which blocks land on which rank is decided by Ray Data's
streaming split at run time, so the skipped blocks are the same *number*, not necessarily the same blocks.

Metrics (keys in ``tracking.metric_names``) have one meaning whoever logs them: ``train/loss`` and throughput
are summed over every worker (``training.session.MetricsWindow``), in the log and in the reports alike.

Rank 0 alone writes to MLflow: params at start, train loss / lr / tokens per second every
``log_every_steps``, validation loss at each evaluation, and the final model as artifacts. Nothing from the
data goes there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import ray.train.torch
import ray.util
import torch
from safetensors.torch import load_file, save_file

from laborlm.config import flatten, to_dict
from laborlm.errors import CheckpointError, LaborLMError
from laborlm.paths import PLACEMENT_GROUP_FILE
from laborlm.tracking import metric_names as mn
from laborlm.training.config import PhaseConfig, TrainConfig
from laborlm.training.deepspeed import fill_deepspeed_config, load_template
from laborlm.training.models import apply_lora, build_model, write_model_info
from laborlm.training.occupation_eval import OccupationEvalSpec, OccupationEvaluator
from laborlm.training.schedule import lr_lambda
from laborlm.training.session import (
    MetricsWindow,
    WorkerSession,
    all_reduce,
    read_state,
    seed_for,
    write_state,
)

logger = logging.getLogger(__name__)

# Keys of Ray Train reports beyond the ones used by name below (all defined in tracking.metric_names).
STEP = mn.TRAIN_STEP  # optimiser steps taken in this phase
EPOCH = mn.TRAIN_EPOCH  # completed passes over the train split
VALID_BEST_LOSS = (
    mn.VALID_BEST_LOSS
)  # the lowest valid/loss so far (selection may be on occupation perplexity)
BEST_STEP = mn.VALID_BEST_STEP  # the step of the model the checkpoint's model/ holds
STOPPED_EARLY = mn.TRAIN_STOPPED_EARLY  # 1.0 when early stopping ended the phase before max_steps
INITIAL_VALID_LOSS = mn.VALID_INITIAL_LOSS  # before the first step (eval_at_start)

MODEL_DIR = "model"  # in every checkpoint: the best model so far, ready for from_pretrained
_STATE_FORMAT = "laborlm.train/1"
_TRAINABLE = "trainable.safetensors"
_OPTIMIZER = "optimizer.pt"
_SCHEDULER = "scheduler.pt"
_DS_TAG = "ds"
IGNORE_INDEX = -100


@dataclass(frozen=True)
class PhaseJob:
    """Everything a worker needs for one phase; small and picklable (shipped in ``train_loop_config``)."""

    config: TrainConfig
    phase: str  # pretrain | finetune
    run_name: str  # the Ray Train run (and MLflow run) of this phase
    tokenizer: str  # tokenizer folder
    init_path: str | None  # weights to start from (a previous phase's model); None: config.model
    has_valid: bool  # the corpus has a valid split (else the last model is the best)
    model_info: dict[str, Any] = field(
        default_factory=dict
    )  # template, taxonomy, corpus: into laborlm_model.json
    occupation_eval: OccupationEvalSpec | None = None  # valid persons scored at each evaluation (None: off)
    taxonomy_file: str | None = None  # the corpus's taxonomy.csv, copied next to the exported model
    template_file: str | None = None  # the corpus's template.yaml, likewise (a user template loads from it)
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None  # None: no tracking

    @property
    def settings(self) -> PhaseConfig:
        phase: PhaseConfig = getattr(self.config, self.phase)
        return phase


@dataclass
class LoopState:
    """Where the phase stands; ``state.json`` of every checkpoint."""

    step: int = 0  # optimiser steps taken
    epoch: int = 0  # completed passes over this rank's shard
    batches_in_epoch: int = 0  # micro-batches of the current epoch consumed (skipped on resume)
    tokens: int = 0  # real (unpadded) training tokens seen, all ranks
    best_valid_loss: float | None = None  # the lowest valid loss seen (whichever model was selected)
    initial_valid_loss: float | None = None
    last_valid_loss: float | None = None
    best_score: float | None = None  # the selection metric of the best model (occupation perplexity or loss)
    best_step: int | None = None  # the step of the best model (the one model/ holds)
    best_metrics: dict[str, float] = field(default_factory=dict)  # the valid metrics of the best model
    evals_since_best: int = 0  # evaluations since the best model improved (early stopping)
    stopped_early: bool = False  # the phase ended before max_steps (early_stopping_patience)
    resumes: int = 0  # times this phase was restored from a checkpoint (worker-group restarts and re-runs)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the GPU supports it, else fp32 (CPU bf16 is slower than fp32 for these models)."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "auto":
        return "bf16" if cuda_bf16 else "fp32"
    if precision == "bf16" and device.type == "cuda" and not cuda_bf16:
        raise LaborLMError("strategy.precision: bf16 requested but this GPU does not support it")
    if precision == "fp16" and device.type != "cuda":
        raise LaborLMError(
            "strategy.precision: fp16 needs a GPU (DeepSpeed refuses it on CPU); use bf16 or fp32"
        )
    return precision


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: decay on matrices, none on norms and biases (GPT-2/Llama practice)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


# --- engines ----------------------------------------------------------------------------------------------


class _DdpEngine:
    """Plain data parallelism: every rank holds the whole model and optimizer."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        phase: PhaseConfig,
        device: torch.device,
        precision: str,
    ) -> None:
        self.module: Any = model.to(device)
        self.model: Any = ray.train.torch.prepare_model(self.module, move_to_device=False)
        self.optimizer = torch.optim.AdamW(
            decay_groups(self.module, cfg.optim.weight_decay),
            lr=phase.lr,
            betas=cfg.optim.betas,
            eps=cfg.optim.eps,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lr_lambda(
                kind=phase.schedule,
                warmup_steps=phase.warmup_steps,
                max_steps=phase.max_steps,
                min_lr_ratio=phase.min_lr_ratio,
            ),
        )
        self.accum = cfg.grad_accum_steps
        self.max_grad_norm = cfg.optim.max_grad_norm
        self.device = device
        self.dtype = torch.bfloat16 if precision == "bf16" else None
        self.partitioned = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def micro_step(self, batch: dict[str, torch.Tensor], last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; gradients are all-reduced only on the last one."""
        sync = last or not isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
        with contextlib.nullcontext() if sync else self.model.no_sync():
            with self.autocast():
                loss: torch.Tensor = self.model(**batch).loss
            (loss / self.accum).backward()  # type: ignore[no-untyped-call]
        return loss.detach().float()

    def optimizer_step(self) -> None:
        if self.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.module.parameters() if p.requires_grad], self.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_mode(self, on: bool) -> None:
        self.model.train(on)

    def after_eval(self) -> None:
        """Nothing to release: every rank holds the whole model."""

    def eval_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # The unwrapped module: no DDP collective, whatever the number of batches per rank.
        with self.autocast():
            loss: torch.Tensor = self.module(**batch).loss
        return loss.float()

    def save(self, folder: Path, rank: int) -> None:
        if rank != 0:
            return
        trainable = {
            n: p.detach().cpu().contiguous() for n, p in self.module.named_parameters() if p.requires_grad
        }
        save_file(trainable, str(folder / _TRAINABLE))
        torch.save(self.optimizer.state_dict(), folder / _OPTIMIZER)
        torch.save(self.scheduler.state_dict(), folder / _SCHEDULER)

    def export(self, *, trainable_only: bool, rank: int) -> dict[str, torch.Tensor]:
        return gathered_state(self.module, trainable_only=trainable_only, partitioned=False, rank=rank)

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        """Nothing to release beyond what garbage collection frees."""

    def load(self, folder: Path) -> None:
        """Trainable weights, optimizer and scheduler (whose step count is the schedule's position)."""
        state = load_file(str(folder / _TRAINABLE))
        missing, unexpected = self.module.load_state_dict(state, strict=False)
        trainable = {n for n, p in self.module.named_parameters() if p.requires_grad}
        if unexpected or trainable & set(missing):
            raise CheckpointError(
                f"{folder}: weights do not match the model (missing {sorted(trainable & set(missing))[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
        self.optimizer.load_state_dict(torch.load(folder / _OPTIMIZER, weights_only=True))
        self.scheduler.load_state_dict(torch.load(folder / _SCHEDULER, weights_only=True))


class _DeepSpeedEngine:
    """DeepSpeed ZeRO-2/3: optimizer state (and under ZeRO-3 the parameters) partitioned over ranks."""

    def __init__(
        self,
        model: torch.nn.Module,
        cfg: TrainConfig,
        phase: PhaseConfig,
        device: torch.device,
        precision: str,
        world_size: int,
    ) -> None:
        import deepspeed

        strategy = cfg.strategy
        hidden = int(getattr(model.config, "hidden_size", 1024))
        self.ds_config = fill_deepspeed_config(
            load_template(strategy.deepspeed_config, strategy.kind, strategy.offload),
            micro_batch_size=cfg.micro_batch_size,
            grad_accum_steps=cfg.grad_accum_steps,
            world_size=world_size,
            max_grad_norm=cfg.optim.max_grad_norm,
            precision=precision,
            hidden_size=hidden,
            torch_optimizer=cfg.optim.impl == "torch",
            source=str(strategy.deepspeed_config or f"built-in {strategy.kind} template"),
        )
        groups = decay_groups(model, cfg.optim.weight_decay)
        optimizer: torch.optim.Optimizer
        if cfg.optim.impl == "torch":
            optimizer = torch.optim.AdamW(groups, lr=phase.lr, betas=cfg.optim.betas, eps=cfg.optim.eps)
        elif strategy.offload:
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer = DeepSpeedCPUAdam(
                groups, lr=phase.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, adamw_mode=True
            )
        else:
            from deepspeed.ops.adam import FusedAdam

            optimizer = FusedAdam(
                groups, lr=phase.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, adam_w_mode=True
            )
        schedule = lr_lambda(
            kind=phase.schedule,
            warmup_steps=phase.warmup_steps,
            max_steps=phase.max_steps,
            min_lr_ratio=phase.min_lr_ratio,
        )
        # A callable: DeepSpeed builds the scheduler on its own (wrapped) optimizer and saves it with the shards.
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            config=self.ds_config,
            lr_scheduler=functools.partial(torch.optim.lr_scheduler.LambdaLR, lr_lambda=schedule),
        )
        self.module: Any = self.engine.module
        self.partitioned = strategy.kind == "zero3"
        self.lora = phase.lora
        self.accum = cfg.grad_accum_steps
        self.device = device

    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def micro_step(self, batch: dict[str, torch.Tensor], last: bool) -> torch.Tensor:
        """DeepSpeed scales by accumulation, reduces at the boundary and steps optimizer + scheduler there."""
        loss: torch.Tensor = self.engine(**batch).loss
        self.engine.backward(loss)
        self.engine.step()
        return loss.detach().float()

    def optimizer_step(self) -> None:
        """Nothing: ``engine.step()`` in ``micro_step`` already stepped at the accumulation boundary."""

    def eval_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # Under ZeRO-3 the forward gathers parameters collectively: every rank must run the same number of
        # batches, which the equal streaming split guarantees.
        loss: torch.Tensor = self.engine(**batch).loss
        return loss.float()

    def train_mode(self, on: bool) -> None:
        self.engine.train(on)

    def after_eval(self) -> None:
        """Release parameters ZeRO-3 prefetched during evaluation; a later gather would find them in flight."""
        if self.partitioned:
            self.engine.empty_partition_cache()

    def save(self, folder: Path, rank: int) -> None:
        # Every rank writes its own shard; Ray merges the rank folders into one checkpoint.
        self.engine.save_checkpoint(str(folder), tag=_DS_TAG, exclude_frozen_parameters=self.lora)

    def load(self, folder: Path) -> None:
        """This rank's shard, optimizer and scheduler, and DeepSpeed's step counters.

        ``load_checkpoint`` restores ``global_steps`` (one per accumulation boundary, overflow-skipped steps
        included) but not ``micro_steps``, which decides where the next boundary falls: set it to match.
        """
        path, _ = self.engine.load_checkpoint(str(folder), tag=_DS_TAG, load_module_strict=not self.lora)
        if path is None:
            raise CheckpointError(f"{folder}: no DeepSpeed checkpoint '{_DS_TAG}' to resume from")
        self.engine.micro_steps = self.engine.global_steps * self.accum

    def export(self, *, trainable_only: bool, rank: int) -> dict[str, torch.Tensor]:
        return gathered_state(
            self.module, trainable_only=trainable_only, partitioned=self.partitioned, rank=rank
        )

    def artifacts(self) -> dict[str, dict[str, Any]]:
        return {"deepspeed.json": self.ds_config}  # the filled ZeRO config, as run

    def close(self) -> None:
        """DeepSpeed's hooks and buffers, before another engine is built in this process."""
        self.engine.destroy()


class Engine(Protocol):
    """What the loop drives, whatever the parallelism (``_DdpEngine``: DDP; ``_DeepSpeedEngine``: ZeRO-2/3).

    One optimiser step is ``grad_accum_steps`` calls of ``micro_step`` (the last with ``last=True``) and then
    ``optimizer_step``. ``save``/``load`` cover everything a resume needs, the engine's own step counters
    included, so the loop never reaches inside an engine.
    """

    module: Any  # the unwrapped model (a transformers model, maybe peft-wrapped)
    partitioned: bool  # ZeRO-3: parameters are sliced over ranks; forward passes and exports are collectives

    def lr(self) -> float:
        """The learning rate the next optimiser step uses."""
        ...

    def micro_step(self, batch: dict[str, torch.Tensor], last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch; its (detached, float) mean loss."""
        ...

    def optimizer_step(self) -> None:
        """Clip, step optimizer and scheduler, zero the gradients (where ``micro_step`` did not already)."""
        ...

    def train_mode(self, on: bool) -> None: ...

    def eval_forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean loss of ``batch`` (no gradients are kept by the caller's ``no_grad``)."""
        ...

    def after_eval(self) -> None:
        """Release what evaluation gathered (ZeRO-3's prefetched parameters)."""
        ...

    def save(self, folder: Path, rank: int) -> None:
        """Write this rank's part of the training state (weights, optimizer, scheduler, counters)."""
        ...

    def load(self, folder: Path) -> None:
        """Restore what ``save`` wrote, the engine's own step counters included."""
        ...

    def export(self, *, trainable_only: bool, rank: int) -> dict[str, torch.Tensor]:
        """The model's weights as CPU tensors on rank 0 (a collective under ZeRO-3; empty on other ranks)."""
        ...

    def artifacts(self) -> dict[str, dict[str, Any]]:
        """Resolved engine configs worth keeping with the run (file name -> content)."""
        ...

    def close(self) -> None:
        """Release the engine's resources (hooks, buffers) before another is built in the same process."""
        ...


def make_engine(
    model: torch.nn.Module,
    config: TrainConfig,
    phase: PhaseConfig,
    device: torch.device,
    precision: str,
    world_size: int,
) -> Engine:
    """The engine ``config.strategy`` asks for, around ``model``, with ``phase``'s optimiser and schedule.

    Inside a Ray Train worker (DDP wraps the model with ``ray.train.torch.prepare_model``). Public for the
    hardware benchmark, which times the same engines on synthetic blocks.
    """
    if config.strategy.deepspeed:
        return _DeepSpeedEngine(model, config, phase, device, precision, world_size)
    return _DdpEngine(model, config, phase, device, precision)


def gathered_state(
    module: torch.nn.Module, *, trainable_only: bool, partitioned: bool, rank: int
) -> dict[str, torch.Tensor]:
    """The module's weights as CPU tensors on rank 0 (empty dict elsewhere).

    Under ZeRO-3 each rank holds a slice of every parameter (the module's own tensors are empty), which is why
    saving an adapter with ``save_pretrained`` there writes empty tensors. Here every rank gathers one
    parameter at a time (a collective: all ranks call this together, in the same order) and rank 0 copies it,
    so at most one full parameter is materialised at a time.
    """
    out: dict[str, torch.Tensor] = {}
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad or not trainable_only]
    if partitioned:
        import deepspeed

        for name, param in named:
            with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
                if rank == 0:
                    out[name] = param.detach().to("cpu", copy=True).contiguous()
    elif rank == 0:
        out = {n: p.detach().to("cpu", copy=True).contiguous() for n, p in named}
    if rank == 0 and not trainable_only:
        # Persistent buffers are in the state dict (never partitioned); RoPE's inv_freq is not persistent.
        keys = set(module.state_dict(keep_vars=True))
        out.update({n: b.detach().to("cpu", copy=True) for n, b in module.named_buffers() if n in keys})
    return out


# --- the loop ---------------------------------------------------------------------------------------------


def micro_batches(
    shard: Any, state: LoopState, batch_size: int, device: torch.device | str = "cpu", name: str = "train"
) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches forever, epoch after epoch, keeping ``state``'s data position up to date.

    On resume ``state.batches_in_epoch`` micro-batches of the current epoch were already trained on: they
    are read and skipped, so the step counter and the data position continue together. ``drop_last``: every
    micro-batch is full (ranks get equal block counts, so they drop the same number).

    Raises:
        LaborLMError: the shard has no full micro-batch (corpus too small for the workers and batch size).
    """
    skip = state.batches_in_epoch
    while True:
        seen = 0
        for batch in shard.iter_torch_batches(
            batch_size=batch_size, dtypes=torch.long, device=device, drop_last=True
        ):
            seen += 1
            if skip:
                skip -= 1
                continue
            state.batches_in_epoch += 1
            yield batch
        if seen == 0:
            raise LaborLMError(
                f"{name}: the train split gives this worker no full micro-batch of {batch_size} "
                "blocks; use a larger corpus, fewer workers or a smaller micro_batch_size"
            )
        state.epoch += 1
        state.batches_in_epoch = 0


def run_phase_loop(session: WorkerSession, job: PhaseJob) -> None:
    """One phase on one worker: the loop function ``training.workflow.run_phase`` hands to Ray Train."""
    _PhaseRun(session, job).run()


class _PhaseRun:
    def __init__(self, session: WorkerSession, job: PhaseJob) -> None:
        self.session = session
        self.job = job
        self.cfg = job.config
        self.phase = job.settings
        self.rank = session.rank
        self.world = session.world_size
        self.device = session.device
        self.best_dir = Path(tempfile.mkdtemp(prefix=f"laborlm-best-{job.phase}-"))
        self.tracker: Any = None
        self.evaluator: OccupationEvaluator | None = None
        self.throughput: float | None = None  # tokens/s of the last log window, all workers
        self.exported = False  # a best model exists (every checkpoint carries one, so True after a restore)

    def log0(self, message: str, *args: object) -> None:
        if self.rank == 0:
            logger.info(message, *args)

    # setup -> restore -> train -> save -> cleanup
    def run(self) -> None:
        try:
            self._run()
        finally:
            shutil.rmtree(self.best_dir, ignore_errors=True)

    def _setup(self) -> tuple[Any, Engine, str]:
        from laborlm.corpus.tokenizer import load_tokenizer

        cfg, job = self.cfg, self.job
        if self.device.type == "cpu" and not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # silence DeepSpeed's accelerator probe on CPU
        if self.device.type == "cpu":
            # Workers share the cores: one torch thread per reserved CPU (2 threads per process beside other
            # work measured 3-10x slower on 2 cores, issue 14).
            torch.set_num_threads(max(1, int(cfg.strategy.cpus_per_worker)))
        precision = resolve_precision(cfg.strategy.precision, self.device)
        tokenizer = load_tokenizer(job.tokenizer)
        # The same initial weights on every rank (ZeRO-3 partitions each rank's own copy) ...
        model = build_model(
            cfg.model,
            tokenizer,
            block_size=cfg.block_size,
            init_path=job.init_path,
            seed=seed_for(cfg.seed, 0),
        )
        if self.phase.lora:
            model = apply_lora(model, cfg.lora)
            base = job.init_path or cfg.model.path or cfg.model.size
            model.peft_config["default"].base_model_name_or_path = str(base)
        # ... then different dropout masks per rank.
        torch.manual_seed(seed_for(cfg.seed, 1, self.rank))
        engine = make_engine(model, cfg, self.phase, self.device, precision, self.world)
        self.log0(
            "%s: %s on %d worker(s), %s, %s parameters (%s trainable)",
            job.phase,
            cfg.strategy.kind,
            self.world,
            precision,
            f"{sum(p.numel() for p in model.parameters()):,}",
            f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}",
        )
        if job.occupation_eval is not None:
            try:
                self.evaluator = OccupationEvaluator(
                    job.occupation_eval,
                    engine.module,
                    tokenizer,
                    rank=self.rank,
                    world=self.world,
                    partitioned=engine.partitioned,
                )
            except LaborLMError as exc:  # e.g. a tokenizer that cannot score labels apart from their context
                logger.warning("%s: no occupation perplexity during training: %s", job.phase, exc)
            else:
                self.log0(
                    "%s: occupation perplexity of %d valid persons at each evaluation",
                    job.phase,
                    self.evaluator.total_people,
                )
        return tokenizer, engine, precision

    def _record_placement_group(self) -> None:
        """Write the worker group's placement group id to ``<out_dir>/<phase>/placement_group.id`` (rank 0).

        A supervisor that kills this run from outside (a Tune trial stopped by ASHA) reclaims the group's
        resources with it: Ray Train V2 leaves that placement group behind (ray-project/ray#54305).
        """
        group = ray.util.get_current_placement_group()
        if self.rank != 0 or group is None:
            return
        folder = Path(self.job.config.out_dir) / self.job.phase
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PLACEMENT_GROUP_FILE).write_text(group.id.hex())

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must record to be resumed by this run (``state.json``)."""
        identity: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "run_name": self.job.run_name,
            "phase": self.job.phase,
            "strategy": self.cfg.strategy.kind,
        }
        if self.cfg.strategy.deepspeed:
            identity["world_size"] = self.world  # ZeRO shards are per rank
        return identity

    def _restore(self, engine: Engine) -> LoopState:
        with self.session.restore() as folder:
            if folder is None:
                return LoopState()
            saved = read_state(folder, self._identity())
            engine.load(folder)
            if self.rank == 0 and (folder / MODEL_DIR).is_dir():
                shutil.copytree(folder / MODEL_DIR, self.best_dir, dirs_exist_ok=True)
            self.exported = True
        state = LoopState(**saved["state"])
        state.resumes += 1
        self.log0(
            "%s: resumed at step %d (epoch %d, %d micro-batches into it)",
            self.job.phase,
            state.step,
            state.epoch,
            state.batches_in_epoch,
        )
        return state

    def _open_tracker(self, precision: str, engine: Engine) -> None:
        job = self.job
        if self.rank != 0 or job.mlflow_run_id is None or job.tracking_uri is None:
            return
        from laborlm.tracking.mlflow_tracker import AttachedRun

        self.tracker = AttachedRun(job.tracking_uri, job.mlflow_run_id)
        params = flatten(self.cfg)
        params.update(
            {
                "phase": job.phase,
                "resolved.world_size": self.world,
                "resolved.precision": precision,
                "resolved.global_batch_blocks": self.cfg.micro_batch_size
                * self.cfg.grad_accum_steps
                * self.world,
                "resolved.init": job.init_path or self.cfg.model.path or self.cfg.model.size,
            }
        )
        self.tracker.log_params(params)
        for name, content in engine.artifacts().items():
            self.tracker.log_dict(content, name)

    def _run(self) -> None:
        job, phase = self.job, self.phase
        self._record_placement_group()
        tokenizer, engine, precision = self._setup()
        state = self._restore(engine)
        self._open_tracker(precision, engine)
        train_shard = self.session.dataset_shard("train")
        valid_shard = self.session.dataset_shard("valid") if job.has_valid else None
        reported = False

        if phase.eval_at_start and state.step == 0 and valid_shard is not None:
            loss = self._evaluate(engine, valid_shard)
            state.initial_valid_loss = state.last_valid_loss = loss
            start = {mn.VALID_LOSS: loss, INITIAL_VALID_LOSS: loss, **self._occupation_metrics(engine)}
            self._log_metrics(start, 0)
            self.log0("%s step 0: valid loss %.4f%s", job.phase, loss, _occupation_text(start))

        batches = micro_batches(train_shard, state, self.cfg.micro_batch_size, self.device, job.phase)
        window, since_report = MetricsWindow(), MetricsWindow()  # the log interval; the steps since a report
        engine.train_mode(True)
        while state.step < phase.max_steps and not state.stopped_early:
            started = time.perf_counter()
            lr = engine.lr()
            for micro in range(self.cfg.grad_accum_steps):
                batch = next(batches)
                micro_loss = engine.micro_step(batch, last=micro == self.cfg.grad_accum_steps - 1)
                tokens = int(batch["attention_mask"].sum())
                window.add(float(micro_loss), 1, tokens)
                since_report.add(float(micro_loss), 1, tokens)
            engine.optimizer_step()
            state.step += 1
            window.seconds += time.perf_counter() - started

            if state.step % phase.log_every_steps == 0 or state.step == phase.max_steps:
                self._log_window(window, lr, state)
                window = MetricsWindow()
            final = state.step == phase.max_steps
            eval_due = final or (
                phase.eval_every_steps is not None and state.step % phase.eval_every_steps == 0
            )
            ckpt_due = final or (
                phase.checkpoint_every_steps is not None and state.step % phase.checkpoint_every_steps == 0
            )
            if eval_due or ckpt_due:
                self._evaluate_and_report(
                    engine, tokenizer, valid_shard, state, since_report, eval_due, ckpt_due
                )
                since_report = MetricsWindow()
                reported = final
            patience = phase.early_stopping_patience
            if not final and patience is not None and state.evals_since_best >= patience:
                # Every rank sees the same all-reduced metrics, so every rank stops at the same step.
                state.stopped_early = True
                self.log0(
                    "%s: early stop at step %d: no better model in %d evaluations (best at step %s)",
                    job.phase,
                    state.step,
                    patience,
                    state.best_step,
                )
                reported = False  # the last checkpoint must record the stop
        if not reported:
            # A restarted group with nothing left to do still hands back its checkpoint (and best model).
            self._evaluate_and_report(engine, tokenizer, valid_shard, state, since_report, False, True)
        if self.tracker is not None:
            # The best model (adapter or full weights, tokenizer, taxonomy, template name) and the config.
            self.tracker.log_artifact(self.best_dir, MODEL_DIR)
            self.tracker.log_dict(to_dict(self.cfg), "config.yaml")

    def _evaluate(self, engine: Engine, shard: Any) -> float:
        """Token-weighted mean NLL over this phase's valid blocks, all ranks.

        Denominator: every predicted position, i.e. label positions after the first of each block that are
        not padding (HF shifts labels by one inside the loss).
        """
        engine.train_mode(False)
        total = torch.zeros(2, dtype=torch.float64)
        with torch.no_grad():
            for batch in shard.iter_torch_batches(
                batch_size=self.cfg.micro_batch_size, dtypes=torch.long, device=self.device, drop_last=False
            ):
                n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
                loss = engine.eval_forward(batch)
                total += torch.tensor([float(loss) * n, n], dtype=torch.float64)
        engine.after_eval()
        engine.train_mode(True)
        total = all_reduce(total, self.device)
        return float(total[0] / total[1]) if total[1] > 0 else math.nan

    def _selection_key(self) -> str:
        """The valid metric that picks the best model: occupation perplexity when it is measured, else loss."""
        if self.phase.select_on == "occupation_perplexity" and self.evaluator is not None:
            return mn.VALID_OCCUPATION_PERPLEXITY
        return mn.VALID_LOSS

    def _occupation_metrics(self, engine: Engine) -> dict[str, float]:
        """The ``valid/`` occupation metrics of the current model ({} when not measured); a collective."""
        if self.evaluator is None:
            return {}
        metrics = self.evaluator.evaluate(functools.partial(all_reduce, device=self.device))
        engine.after_eval()  # ZeRO-3: release what the scoring passes gathered
        return metrics

    def _log_window(self, window: MetricsWindow, lr: float, state: LoopState) -> None:
        total = window.reduced(self.device)
        state.tokens += total.tokens
        if total.mean_loss is None:
            return
        metrics = {
            mn.TRAIN_LOSS: total.mean_loss,
            mn.TRAIN_LR: lr,
            mn.THROUGHPUT_TOKENS_PER_S: total.tokens_per_s,
            EPOCH: state.epoch,
        }
        self.throughput = metrics[mn.THROUGHPUT_TOKENS_PER_S]
        self._log_metrics(metrics, state.step)
        self.log0(
            "%s step %d: loss %.4f, lr %.3g, %.0f tokens/s",
            self.job.phase,
            state.step,
            metrics[mn.TRAIN_LOSS],
            lr,
            metrics[mn.THROUGHPUT_TOKENS_PER_S],
        )

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.tracker is not None:
            self.tracker.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)}, step=step)

    def _export(self, engine: Engine, tokenizer: Any, state: LoopState) -> None:
        """Write the current model (adapter or full weights) into the rank-0 best-model folder (collective)."""
        lora = self.phase.lora
        weights = engine.export(trainable_only=lora, rank=self.rank)
        if self.rank != 0:
            return
        shutil.rmtree(self.best_dir, ignore_errors=True)
        self.best_dir.mkdir(parents=True)
        engine.module.save_pretrained(str(self.best_dir), state_dict=weights)
        tokenizer.save_pretrained(str(self.best_dir))
        for source, name in (
            (self.job.taxonomy_file, "taxonomy.csv"),
            (self.job.template_file, "template.yaml"),
        ):
            if source is None:
                continue
            if not Path(source).is_file():
                raise LaborLMError(f"{source}: missing; every built corpus has one (rebuild the corpus)")
            shutil.copy(source, self.best_dir / name)
        write_model_info(
            self.best_dir,
            {
                **self.job.model_info,
                "phase": self.job.phase,
                "run_name": self.job.run_name,
                "step": state.step,
                "valid_loss": state.last_valid_loss,
                "valid": state.best_metrics if state.best_step == state.step else {},
                "kind": "lora_adapter" if lora else "full",
                "base_model": self.job.init_path or self.cfg.model.path or self.cfg.model.size,
            },
        )

    def _evaluate_and_report(
        self,
        engine: Engine,
        tokenizer: Any,
        valid_shard: Any,
        state: LoopState,
        since_report: MetricsWindow,
        eval_due: bool,
        ckpt_due: bool,
    ) -> None:
        metrics: dict[str, float] = {STEP: state.step, EPOCH: state.epoch, mn.TRAIN_TOKENS: state.tokens}
        train_loss = since_report.reduced(self.device).mean_loss  # all workers, as in the log (a collective)
        if train_loss is not None:
            metrics[mn.TRAIN_LOSS] = train_loss
        improved = False
        if eval_due and valid_shard is not None:
            loss = self._evaluate(engine, valid_shard)
            state.last_valid_loss = loss
            valid = {
                mn.VALID_LOSS: loss,
                mn.VALID_PERPLEXITY: math.exp(min(loss, 50.0)),
                **self._occupation_metrics(engine),
            }
            metrics.update(valid)
            if not math.isnan(loss) and (state.best_valid_loss is None or loss < state.best_valid_loss):
                state.best_valid_loss = loss
            score = valid.get(self._selection_key(), math.nan)
            if not math.isnan(score) and (state.best_score is None or score < state.best_score):
                state.best_score, state.best_step, state.best_metrics = score, state.step, dict(valid)
                state.evals_since_best, improved = 0, True
            else:
                state.evals_since_best += 1
            self._log_metrics(valid, state.step)
            self.log0(
                "%s step %d: valid loss %.4f%s (best %s %.4f at step %s)",
                self.job.phase,
                state.step,
                loss,
                _occupation_text(valid),
                self._selection_key(),
                state.best_score if state.best_score is not None else math.nan,
                state.best_step,
            )
        if state.best_valid_loss is not None:
            metrics[VALID_BEST_LOSS] = state.best_valid_loss
        if state.best_step is not None:
            metrics[BEST_STEP] = state.best_step
        if mn.VALID_OCCUPATION_PERPLEXITY in state.best_metrics:
            metrics[mn.VALID_BEST_OCCUPATION_PERPLEXITY] = state.best_metrics[mn.VALID_OCCUPATION_PERPLEXITY]
        metrics[STOPPED_EARLY] = float(state.stopped_early)
        if state.initial_valid_loss is not None:
            metrics[INITIAL_VALID_LOSS] = state.initial_valid_loss
        if self.throughput is not None:
            metrics[mn.THROUGHPUT_TOKENS_PER_S] = self.throughput
        # Same decision on every rank (the export is a collective under ZeRO-3).
        if improved or (ckpt_due and (valid_shard is None or not self.exported)):
            self._export(engine, tokenizer, state)
            self.exported = True
        # Every rank writes (DeepSpeed: its own ZeRO shard); DDP ranks other than 0 leave their folder empty.
        self.session.report(
            metrics, functools.partial(self._write_checkpoint, engine, state) if ckpt_due else None
        )

    def _write_checkpoint(self, engine: Engine, state: LoopState, folder: Path) -> None:
        engine.save(folder, self.rank)
        if self.rank == 0:
            write_state(folder, {**self._identity(), "world_size": self.world, "state": asdict(state)})
            shutil.copytree(self.best_dir, folder / MODEL_DIR)


def _occupation_text(metrics: dict[str, float]) -> str:
    """``, occupation perplexity 12.3 (raw 14.1, outside 0.05)`` for the log, or nothing when not measured."""
    if mn.VALID_OCCUPATION_PERPLEXITY not in metrics:
        return ""
    return (
        f", occupation perplexity {metrics[mn.VALID_OCCUPATION_PERPLEXITY]:.2f} "
        f"(raw {metrics[mn.VALID_OCCUPATION_PERPLEXITY_RAW]:.2f}, outside mass "
        f"{metrics[mn.VALID_OUTSIDE_MASS]:.3f}, label-token loss {metrics[mn.VALID_LABEL_TOKEN_LOSS]:.3f})"
    )
