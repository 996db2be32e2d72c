"""One training loop for every neural occupation model, run in-process or by Ray Train.

    result = fit_network(config, taxonomy, train, valid, initial_state)

``config.fit.num_workers`` picks how, and every way runs the same ``run_loop``:

* ``None``: in the calling process, without Ray (unit tests, notebooks);
* ``0``: Ray Train V2 local mode: ``TorchTrainer`` runs ``train_loop_per_worker`` in the driver;
* ``n >= 1``: ``TorchTrainer`` with ``n`` workers; ``ray.train.torch.prepare_model`` wraps the network in
  DistributedDataParallel (gloo on CPU, NCCL on GPU).

Optimisation follows CAREER (Appendix G): AdamW (betas 0.9/0.98, weight decay 0.01), a learning rate that
warms up linearly from 1e-7 and then decays as the inverse square root of the step, batches of at most
``max_tokens`` person-years, and the checkpoint with the best validation perplexity, with early stopping
once validation stops improving ("trained until they overfit").

Data parallelism: every rank builds the same global batches from ``(seed, epoch)`` and trains on its share
of each one's careers (``batch[rank::world]``). So every rank takes the same number of steps (DDP
all-reduces every backward pass), and scaling each rank's summed loss by ``world / global_tokens`` makes
DDP's gradient average exactly the gradient of the mean loss over the global batch: an update does not
depend on the number of workers. The panels reach workers through the object store, never a closure.

Checkpoints: every evaluation reports metrics and a checkpoint (rank 0 writes it, every rank calls
``report``): the current weights, optimiser and loop state (to resume after a killed worker, or when a run
is restarted with the same ``RunConfig(name, storage_path)``), and the best weights so far
(``best.safetensors``), so the last report always carries the best model. Weights are safetensors and the
optimiser state is read back with ``torch.load(weights_only=True)``: nothing is ever unpickled.

Where the loop runs, seeding, all-reduce, the ``state.json`` record and reports are ``training.session``'s
(shared with the language-model loop); the learning-rate schedule is ``training.schedule.inverse_sqrt``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.train
import ray.train.torch
import torch
from safetensors.torch import load_file, save_file

from laborlm.config import default_run_name, to_dict
from laborlm.errors import CheckpointError, ConfigError, InputDataError
from laborlm.models.architectures import NetworkConfig, build_network
from laborlm.models.encoding import EncodedPanel, collate, encode_panel, iter_batches, token_batches
from laborlm.models.layers import OccupationNetwork, target_nll
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import conform
from laborlm.tracking import metric_names as mn
from laborlm.training.schedule import inverse_sqrt
from laborlm.training.session import (
    CheckpointFolder,
    InProcessSession,
    MetricsWindow,
    WorkerSession,
    all_reduce,
    log_rank0,
    read_state,
    seed_for,
    train_loop_per_worker,
    write_state,
)

logger = logging.getLogger(__name__)

# Metric keys of every report (defined in tracking.metric_names; here: what they count in this loop).
TRAIN_LOSS = mn.TRAIN_LOSS  # mean NLL per person-year over the steps since the previous report, all workers
EVAL_PERPLEXITY = mn.EVAL_PERPLEXITY  # exp(mean NLL) over every validation person-year, first years included
BEST_EVAL_PERPLEXITY = mn.EVAL_BEST_PERPLEXITY  # the best eval/perplexity so far: the model fit() returns
EPOCH = mn.TRAIN_EPOCH  # completed passes over the training panel
STEP = mn.TRAIN_STEP  # optimiser steps taken
TOKENS_PER_S = mn.THROUGHPUT_TOKENS_PER_S  # training person-years per second of training time, all workers

BEST_WEIGHTS = "best.safetensors"  # in every checkpoint: the weights with the best validation perplexity
_WEIGHTS = "model.safetensors"  # the current weights, to resume from
_OPTIMIZER = "optimizer.pt"
_STATE_FORMAT = "laborlm.fit/1"

# Child-seed streams of the one top-level seed.
_INIT, _ORDER, _DROPOUT = 0, 1, 2


@dataclass(frozen=True)
class FitConfig:
    lr: float = 5e-4  # peak learning rate (CAREER: 5e-4 from scratch, 1e-4 to fine-tune a pretrained model)
    warmup_steps: int = 500  # steps of linear warm-up, then lr * sqrt(warmup_steps / step)
    warmup_init_lr: float = 1e-7  # learning rate of the first step (fairseq's --warmup-init-lr)
    weight_decay: float = 0.01  # AdamW's decoupled weight decay (every CAREER model)
    betas: tuple[float, float] = (0.9, 0.98)  # Adam betas of CAREER's fairseq runs
    max_grad_norm: float | None = 1.0  # clip the global gradient norm; None: no clipping (CAREER's setting)
    max_tokens: int = 16000  # padded person-years per global batch, over all workers (CAREER: 16,000)
    max_epochs: int = 200  # passes over the training panel, at most
    max_steps: int | None = None  # optimiser steps, at most; None: no step limit
    eval_every_steps: int | None = None  # also evaluate (and checkpoint) every N steps; None: once per epoch
    patience: int | None = (
        10  # evaluations without a better validation perplexity before stopping; None: never
    )
    num_workers: int | None = None  # None: in-process; 0: Ray Train local mode; n: n Ray Train workers
    use_gpu: bool = False  # one GPU per Ray Train worker (in-process: CUDA when available)
    storage_path: Path | None = None  # runs and checkpoints go under here; None: a temporary folder, removed
    run_name: str | None = None  # None: fit-<model>-s<seed>-<config hash>; same name + storage resumes
    checkpoints_to_keep: int = 2  # CheckpointConfig(num_to_keep)
    max_failures: int = 0  # FailureConfig(max_failures): worker restarts, each from the latest checkpoint

    def __post_init__(self) -> None:
        problems = []
        if self.lr <= 0 or self.warmup_init_lr < 0:
            problems.append("lr must be > 0 and warmup_init_lr >= 0")
        if (
            self.warmup_steps < 0
            or self.max_epochs < 1
            or self.max_tokens < 1
            or self.checkpoints_to_keep < 1
        ):
            problems.append("warmup_steps must be >= 0; max_epochs, max_tokens and checkpoints_to_keep >= 1")
        for name in ("max_steps", "eval_every_steps", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be >= 1 or null, got {value}")
        if self.num_workers is not None and self.num_workers < 0:
            problems.append(f"num_workers must be >= 0 or null, got {self.num_workers}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class NeuralModelConfig:
    name: str  # registry name, e.g. career-small-two_stage; names runs and saved models
    network: NetworkConfig  # architecture, size and head (one- or two-stage)
    fit: FitConfig = field(default_factory=FitConfig)  # optimisation, stopping and where it runs
    seed: int = 0  # the one seed: initialisation, batch order and dropout (workers offset by rank)


@dataclass(frozen=True)
class TrainingData:
    """What each worker reads; goes through the object store (``ray.put``) as one object."""

    train: pa.Table | Path  # a canonical panel, or a Parquet file holding one
    valid: pa.Table | Path | None  # for early stopping and best-checkpoint selection; None: keep the last
    initial_state: dict[str, torch.Tensor]  # the weights training starts from (random or pretrained)


@dataclass(frozen=True)
class FitResult:
    best_state: dict[str, torch.Tensor]  # weights with the best validation perplexity (the last if no valid)
    metrics: dict[str, float]  # the last report: metric keys above
    checkpoint: Path | None  # the last checkpoint folder; None when storage was temporary


def init_network(config: NeuralModelConfig, n_occupations: int) -> OccupationNetwork:
    """The network with its seeded initial weights; the global torch RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(config.seed, _INIT))
        return build_network(config.network, n_occupations)


def learning_rate(step: int, fit: FitConfig) -> float:
    """Learning rate of the update taking step ``step`` (0-based): fairseq's ``inverse_sqrt`` after ``step``
    updates, warming up linearly from ``warmup_init_lr`` (CAREER's setting), then ``lr * sqrt(W / step)``."""
    return inverse_sqrt(step, warmup_steps=fit.warmup_steps, peak=fit.lr, warmup_init=fit.warmup_init_lr)


# --- driver ---------------------------------------------------------------------------------------------


def fit_network(
    config: NeuralModelConfig,
    taxonomy: Taxonomy,
    train: pa.Table | Path,
    valid: pa.Table | Path | None,
    initial_state: dict[str, torch.Tensor],
) -> FitResult:
    """Train from ``initial_state`` on ``train``; select and early-stop on ``valid``.

    Raises:
        InputDataError: the training panel is empty.
        CheckpointError: resuming from a checkpoint of another architecture, taxonomy or data set.
        ray.train.TrainingFailedError: a Ray Train worker failed more than ``fit.max_failures`` times.
    """
    fit = config.fit
    data = TrainingData(train, valid, {k: v.detach().cpu() for k, v in initial_state.items()})
    run_name = fit.run_name or default_run_name("fit", config.name, config.seed, config)
    with _storage_root(fit.storage_path) as storage:
        if fit.num_workers is None:
            session = InProcessSession(
                CheckpointFolder(storage / run_name, fit.checkpoints_to_keep), fit.use_gpu
            )
            run_loop(session, config, taxonomy, data)
            metrics, checkpoint = session.last_metrics, session.last_checkpoint
        else:
            metrics, checkpoint = _fit_with_ray_train(config, taxonomy, data, storage, run_name)
        best = load_file(checkpoint / BEST_WEIGHTS)
    logger.info("fit %s: %s", run_name, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
    return FitResult(best, metrics, checkpoint if fit.storage_path is not None else None)


@contextlib.contextmanager
def _storage_root(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path = Path(path).resolve()  # Ray Train needs an absolute storage path
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="laborlm-fit-") as tmp:
        yield Path(tmp)


def _fit_with_ray_train(
    config: NeuralModelConfig, taxonomy: Taxonomy, data: TrainingData, storage: Path, run_name: str
) -> tuple[dict[str, float], Path]:
    fit = config.fit
    assert fit.num_workers is not None
    local_mode = fit.num_workers == 0
    trainer = ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "loop": run_loop,
            # Local mode runs the loop in this process; workers fetch the panels from the object store.
            "args": [config, taxonomy, data if local_mode else ray.put(data)],
            "use_gpu": fit.use_gpu,
            # Local mode keeps checkpoints where the loop writes them (Ray neither copies nor restores them).
            "local_checkpoints": str(storage / run_name) if local_mode else None,
            "checkpoints_to_keep": fit.checkpoints_to_keep,
        },
        scaling_config=ray.train.ScalingConfig(num_workers=fit.num_workers, use_gpu=fit.use_gpu),
        run_config=ray.train.RunConfig(
            name=run_name,
            storage_path=str(storage),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=fit.checkpoints_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=fit.max_failures),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None or result.metrics is None:
        raise CheckpointError(f"Ray Train run {run_name} reported no checkpoint")
    return dict(result.metrics), Path(result.checkpoint.path)


# --- the loop ---------------------------------------------------------------------------------------------


@dataclass
class _LoopState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of the current epoch already trained on
    step: int = 0  # optimiser steps taken
    best_perplexity: float = math.inf
    evaluations_since_best: int = 0

    def finished(self, fit: FitConfig) -> bool:
        return (
            self.epoch >= fit.max_epochs
            or (fit.max_steps is not None and self.step >= fit.max_steps)
            or (fit.patience is not None and self.evaluations_since_best >= fit.patience)
        )


def run_loop(
    session: WorkerSession, config: NeuralModelConfig, taxonomy: Taxonomy, data: TrainingData
) -> None:
    """Train until ``max_epochs``, ``max_steps`` or patience runs out, reporting at every evaluation.

    The loop function of ``training.session.train_loop_per_worker`` (Ray Train) and of in-process fits.
    """
    fit = config.fit
    rank, world, device = session.rank, session.world_size, session.device
    train = encode_panel(_read_panel(data.train), taxonomy)
    if train.n_rows == 0:
        raise InputDataError(_name(data.train), None, None, "the training panel has no rows")
    valid = encode_panel(_read_panel(data.valid), taxonomy) if data.valid is not None else None
    if valid is not None and valid.n_rows == 0:
        raise InputDataError(
            _name(data.valid), None, None, "the validation panel has no rows (pass None to fit without one)"
        )
    identity = {
        "format": _STATE_FORMAT,
        "network": to_dict(config.network),
        "taxonomy_fingerprint": taxonomy.fingerprint(),
        "train_fingerprint": train.fingerprint(),
        "valid_fingerprint": valid.fingerprint() if valid is not None else None,
    }
    net = build_network(config.network, len(taxonomy))
    net.load_state_dict(data.initial_state)
    model = session.prepare_model(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=fit.lr, betas=fit.betas, weight_decay=fit.weight_decay)
    state, best = _LoopState(), _cpu_copy(net.state_dict())
    with session.restore() as folder:
        if folder is not None:
            state, best = _read_checkpoint(folder, net, optimizer, identity)
            log_rank0(rank, "resumed from %s at epoch %d, step %d", folder, state.epoch, state.step)

    progress = MetricsWindow()  # since the last report: summed NLL over person-years
    reported = False
    model.train()
    while not state.finished(fit):
        batches = token_batches(
            train.lengths, fit.max_tokens, np.random.default_rng(seed_for(config.seed, _ORDER, state.epoch))
        )
        for persons in batches[state.batch_in_epoch :]:
            started = time.perf_counter()
            batch = collate(train, persons[rank::world]).to(device)
            # Dropout masks: different on every rank, and the same again when a run resumes at this step.
            torch.manual_seed(seed_for(config.seed, _DROPOUT, rank, state.step))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(state.step, fit)
            nll = target_nll(model(batch), batch).sum()
            # DDP averages gradients over ranks; world / global_tokens turns that into the gradient of the
            # mean NLL over the whole global batch.
            (nll * (world / int(train.lengths[persons].sum()))).backward()  # type: ignore[no-untyped-call]
            if fit.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(net.parameters(), fit.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.batch_in_epoch += 1
            progress.add(nll.item(), batch.n_tokens, batch.n_tokens)
            progress.seconds += time.perf_counter() - started
            if state.batch_in_epoch == len(batches):
                state.epoch += 1
                state.batch_in_epoch = 0
            due = fit.eval_every_steps is not None and state.step % fit.eval_every_steps == 0
            if state.batch_in_epoch == 0 or due or state.finished(fit):
                best = _evaluate_and_report(
                    net, optimizer, valid, state, progress, best, session, fit, identity
                )
                progress = MetricsWindow()
                reported = True
                if state.finished(fit):
                    break
    if not reported:
        # A restarted run with nothing left to do still hands back its checkpoint (and best model).
        _evaluate_and_report(net, optimizer, valid, state, progress, best, session, fit, identity)


def _evaluate_and_report(
    net: OccupationNetwork,
    optimizer: torch.optim.Optimizer,
    valid: EncodedPanel | None,
    state: _LoopState,
    progress: MetricsWindow,
    best: dict[str, torch.Tensor],
    session: WorkerSession,
    fit: FitConfig,
    identity: dict[str, Any],
) -> dict[str, torch.Tensor]:
    """Validate, update the best weights and patience, report; returns the (possibly new) best weights."""
    total = progress.reduced(session.device)  # all workers
    metrics: dict[str, float] = {EPOCH: state.epoch, STEP: state.step}
    if total.mean_loss is not None:
        metrics[TRAIN_LOSS] = total.mean_loss  # NLL per person-year
        metrics[TOKENS_PER_S] = total.tokens_per_s
    if valid is None:
        best = _cpu_copy(net.state_dict())
    else:
        nll, count = _sum(session, *_validation_nll(net, valid, session, fit.max_tokens))
        perplexity = math.exp(nll / count)  # denominator: every validation person-year, first years included
        if perplexity < state.best_perplexity:
            state.best_perplexity, state.evaluations_since_best = perplexity, 0
            best = _cpu_copy(net.state_dict())
        else:
            state.evaluations_since_best += 1
        metrics[EVAL_PERPLEXITY] = perplexity
        metrics[BEST_EVAL_PERPLEXITY] = state.best_perplexity
    log_rank0(
        session.rank,
        "epoch %d step %d: %s",
        state.epoch,
        state.step,
        ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()),
    )
    # Rank 0 writes the checkpoint; every rank reports (a collective).
    write = functools.partial(
        _write_checkpoint, net=net, optimizer=optimizer, state=state, best=best, identity=identity
    )
    session.report(metrics, write if session.rank == 0 else None)
    return best


def _write_checkpoint(
    folder: Path,
    *,
    net: OccupationNetwork,
    optimizer: torch.optim.Optimizer,
    state: _LoopState,
    best: dict[str, torch.Tensor],
    identity: dict[str, Any],
) -> None:
    save_file(_cpu_copy(net.state_dict()), folder / _WEIGHTS)
    save_file(best, folder / BEST_WEIGHTS)
    torch.save(optimizer.state_dict(), folder / _OPTIMIZER)
    record = {**identity, **vars(state)}
    record["best_perplexity"] = (
        None if math.isinf(state.best_perplexity) else state.best_perplexity
    )  # JSON has no inf
    write_state(folder, record)


def _validation_nll(
    net: OccupationNetwork, valid: EncodedPanel, session: WorkerSession, max_tokens: int
) -> tuple[float, int]:
    """This rank's share of the validation NLL (summed) and of its person-years; the unwrapped network runs
    it, so no DDP collective is involved however many batches each rank has."""
    net.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in iter_batches(
            valid, max_tokens, np.arange(valid.n_people)[session.rank :: session.world_size]
        ):
            batch = batch.to(session.device)
            total += float(target_nll(net(batch, dtype=torch.float64), batch).sum())
            count += batch.n_tokens
    net.train()
    return total, count


def _sum(session: WorkerSession, *values: float) -> list[float]:
    """``values`` summed over the workers (``training.session.all_reduce``), as floats."""
    out: list[float] = all_reduce(torch.tensor(values, dtype=torch.float64), session.device).tolist()
    return out


def _read_checkpoint(
    folder: Path, net: OccupationNetwork, optimizer: torch.optim.Optimizer, identity: dict[str, Any]
) -> tuple[_LoopState, dict[str, torch.Tensor]]:
    """Load weights and optimiser state into ``net`` / ``optimizer``; return the loop state and best weights.

    Raises:
        CheckpointError: the checkpoint is incomplete or belongs to another architecture, taxonomy or data.
    """
    saved = read_state(folder, identity)
    try:
        net.load_state_dict(load_file(folder / _WEIGHTS))
        optimizer.load_state_dict(torch.load(folder / _OPTIMIZER, weights_only=True))
        best = load_file(folder / BEST_WEIGHTS)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot resume from checkpoint: {exc}") from exc
    state = _LoopState(
        epoch=saved["epoch"],
        batch_in_epoch=saved["batch_in_epoch"],
        step=saved["step"],
        best_perplexity=math.inf if saved["best_perplexity"] is None else saved["best_perplexity"],
        evaluations_since_best=saved["evaluations_since_best"],
    )
    return state, best


def _name(source: pa.Table | Path | None) -> str:
    return str(source) if isinstance(source, Path) else "<panel table>"


def _read_panel(source: pa.Table | Path) -> pa.Table:
    return source if isinstance(source, pa.Table) else conform(pq.read_table(source))


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
