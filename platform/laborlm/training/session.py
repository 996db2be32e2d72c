"""The one training session both loops run in: seeding, all-reduce, checkpoints in and out, reports.

Two loops train models in LaborLM: ``models.fitting.run_loop`` (CAREER and the neural baselines, in-process
or on Ray Train) and ``training.loop.run_phase_loop`` (language models, DDP or DeepSpeed on Ray Train). What
they share lives here, once:

* ``seed_for``: children of the one top-level seed (``numpy.random.SeedSequence``), e.g. per stream and rank;
* ``all_reduce``: sum (or max) a small float64 vector over the workers; a no-op outside a process group;
* the checkpoint protocol: ``state.json`` (``write_state`` / ``read_state``) records the loop state, including
  the data position (epoch and batches consumed in it), and an identity (format, run, data fingerprints...)
  that a resume must match, else ``CheckpointError``. A loop restores by skipping exactly the consumed
  batches, so the step counter and the data position continue together;
* ``WorkerSession``: where a loop runs and how its reports leave it. ``RayTrainSession`` (a Ray Train
  worker: ``ray.train.get_checkpoint`` / ``report``; ``report`` is a collective, every rank calls it) and
  ``InProcessSession`` (no Ray; numbered checkpoint folders). A loop receives its session, which is also the
  seam tests wrap (a session that kills its worker after some step, say) without test code in the loop;
* ``train_loop_per_worker``: what Ray Train runs on every worker; it builds the worker's ``RayTrainSession``
  and calls the loop function named in ``train_loop_config``.

Learning-rate schedules have their own pure module, ``training.schedule``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn

from laborlm.errors import CheckpointError

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"  # in every checkpoint: the loop state and the identity a resume must match

WriteCheckpoint = Callable[[Path], None]  # fills a checkpoint folder


def seed_for(seed: int, *keys: int) -> int:
    """A child of the top-level seed (``numpy.random.SeedSequence``), e.g. ``(seed, stream, rank, step)``."""
    return int(np.random.SeedSequence(seed, spawn_key=keys).generate_state(1)[0])


def all_reduce(
    values: torch.Tensor, device: torch.device | str = "cpu", op: Literal["sum", "max"] = "sum"
) -> torch.Tensor:
    """``values`` summed (or maxed) over every worker, returned on the CPU; unchanged without a process group.

    A collective: every rank calls it, in the same order. Callers pass float64 so that sums of many token
    counts and losses stay exact enough to compare runs with different worker counts.
    """
    if dist.is_available() and dist.is_initialized():
        values = values.to(device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return values.cpu()


@dataclass
class MetricsWindow:
    """Training totals on this rank since the window opened (a log interval, or the steps since a report).

    ``reduced`` sums them over the workers, so ``train/loss`` and throughput always mean all workers' figures,
    whichever rank logs or reports them.
    """

    loss_sum: float = (
        0.0  # summed loss terms: micro-batch mean losses (LM loop) or per-person-year NLLs (careers)
    )
    loss_terms: int = 0  # how many terms ``loss_sum`` holds: the denominator of the mean loss
    tokens: int = 0  # training tokens (careers: person-years) seen, for throughput
    seconds: float = 0.0  # training time on this rank

    def add(self, loss_sum: float, loss_terms: int, tokens: int) -> None:
        self.loss_sum += loss_sum
        self.loss_terms += loss_terms
        self.tokens += tokens

    def reduced(self, device: torch.device | str = "cpu") -> MetricsWindow:
        """The window summed over every worker (a collective); ``seconds`` stays this rank's wall time."""
        sums = all_reduce(
            torch.tensor([self.loss_sum, self.loss_terms, self.tokens], dtype=torch.float64), device
        )
        return MetricsWindow(float(sums[0]), int(sums[1]), int(sums[2]), self.seconds)

    @property
    def mean_loss(self) -> float | None:
        return self.loss_sum / self.loss_terms if self.loss_terms else None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)


def log_rank0(rank: int, message: str, *args: object) -> None:
    """Per-step chatter from rank 0 only; other ranks log warnings through their module logger as usual."""
    if rank == 0:
        logger.info(message, *args)


# --- the checkpoint record --------------------------------------------------------------------------------


def write_state(folder: Path, record: Mapping[str, Any]) -> None:
    """Write ``state.json``: the identity of the run and its loop state (JSON: no pickles in checkpoints)."""
    (folder / STATE_FILE).write_text(json.dumps(record, indent=2))


def read_state(folder: Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's ``state.json``, after checking it records every ``expected`` key with the same value.

    Raises:
        CheckpointError: the record is missing or unreadable, or belongs to another run, format, architecture
            or data set (resuming it would silently mix two trainings).
    """
    try:
        saved: dict[str, Any] = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: unreadable {STATE_FILE}: {exc}") from None
    for key, value in expected.items():
        if saved.get(key) != value:
            raise CheckpointError(
                f"{folder}: checkpoint has {key}={saved.get(key)!r}, this run {value!r}; "
                "use another run_name or storage_path to start afresh"
            )
    return saved


class CheckpointFolder:
    """``checkpoint_000000``, ``checkpoint_000001``, ... in a run folder, keeping the newest ``keep``.

    Used where Ray Train does not keep checkpoints: in-process runs and Ray Train's local mode.
    """

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep

    def _all(self) -> list[Path]:
        # Only our own numbering: Ray Train's timestamped checkpoint_<date> folders may share the run folder.
        found = self.root.glob("checkpoint_*") if self.root.is_dir() else []
        return sorted(p for p in found if re.fullmatch(r"checkpoint_\d{6}", p.name))

    def latest(self) -> Path | None:
        found = self._all()
        return found[-1] if found else None

    def write(self, write: WriteCheckpoint) -> Path:
        found = self._all()
        index = int(found[-1].name.split("_")[1]) + 1 if found else 0
        final = self.root / f"checkpoint_{index:06d}"
        # Renamed when complete: a crash never leaves half a checkpoint. A process killed mid-write leaves its
        # .partial_ folder behind, numbered as the next checkpoint, so the resumed run writes over it.
        partial = self.root / f".partial_{index:06d}"
        if partial.exists():
            logger.warning("%s: removing a half-written checkpoint left by a killed run", partial)
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        write(partial)
        partial.rename(final)
        for old in self._all()[: -self.keep]:
            shutil.rmtree(old)
        return final


# --- where a loop runs ------------------------------------------------------------------------------------


class WorkerSession(Protocol):
    """What a training loop needs from where it runs: identity, device, data, checkpoints in and out."""

    rank: int
    world_size: int
    device: torch.device

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model on this worker's device, wrapped for data parallelism where there are several workers."""
        ...

    def dataset_shard(self, name: str) -> Any:
        """This worker's shard of a Ray dataset given to the trainer (``iter_torch_batches``)."""
        ...

    def restore(self) -> contextlib.AbstractContextManager[Path | None]:
        """The latest checkpoint folder to resume from (None: start afresh), valid inside the context."""
        ...

    def report(self, metrics: dict[str, float], write: WriteCheckpoint | None = None) -> None:
        """Hand ``metrics`` (and, where ``write`` fills a folder, a checkpoint) to the runner; every rank calls
        it at the same points. Ranks that save nothing pass ``write=None``."""
        ...


class InProcessSession:
    """One process, no Ray: checkpoints go to a ``CheckpointFolder``; the last report is kept for the caller."""

    rank = 0
    world_size = 1

    def __init__(self, folder: CheckpointFolder, use_gpu: bool) -> None:
        self.folder = folder
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.last_metrics: dict[str, float] = {}
        self.last_checkpoint = Path()

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def dataset_shard(self, name: str) -> Any:
        raise NotImplementedError(f"an in-process session has no Ray dataset {name!r}")

    def restore(self) -> contextlib.AbstractContextManager[Path | None]:
        return contextlib.nullcontext(self.folder.latest())

    def report(self, metrics: dict[str, float], write: WriteCheckpoint | None = None) -> None:
        if write is not None:
            self.last_checkpoint = self.folder.write(write)
        self.last_metrics = metrics


class RayTrainSession:
    """A Ray Train worker (or the driver in local mode, ``num_workers=0``).

    Args:
        local_folder: local mode only: where checkpoints are kept (Ray neither copies nor restores them there).
        use_gpu: train on this worker's GPU; otherwise the CPU, even where local mode sees the driver's GPU.
    """

    def __init__(self, local_folder: CheckpointFolder | None = None, use_gpu: bool = False) -> None:
        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
        self.local_folder = local_folder

    def prepare_model(self, model: nn.Module) -> nn.Module:
        # Moved here rather than by prepare_model, which would use Ray's device choice (see __init__).
        prepared: nn.Module = ray.train.torch.prepare_model(model.to(self.device), move_to_device=False)
        return prepared

    def dataset_shard(self, name: str) -> Any:
        return ray.train.get_dataset_shard(name)

    @contextlib.contextmanager
    def restore(self) -> Iterator[Path | None]:
        # A restarted worker group, or a re-run with the same RunConfig(name, storage_path), gets the latest.
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                yield Path(folder)
        else:
            yield self.local_folder.latest() if self.local_folder is not None else None

    def report(self, metrics: dict[str, float], write: WriteCheckpoint | None = None) -> None:
        if write is None:
            ray.train.report(metrics, checkpoint=None)
        elif self.local_folder is not None:
            ray.train.report(
                metrics, checkpoint=ray.train.Checkpoint.from_directory(self.local_folder.write(write))
            )
        else:
            # Every writing rank fills its own folder; Ray merges them (ZeRO shards: one per rank). A rank whose
            # folder stays empty (DDP ranks other than 0) reports without a checkpoint.
            with tempfile.TemporaryDirectory(prefix="laborlm-ckpt-") as tmp:
                write(Path(tmp))
                has_files = any(Path(tmp).iterdir())
                ray.train.report(
                    metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp) if has_files else None
                )


LoopFunction = Callable[..., None]  # loop(session, *args): trains in the session it is given


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """What Ray Train runs on every worker (in local mode, in the driver).

    ``loop_config``: ``loop`` (a module-level function ``loop(session, *args)``), ``args`` (its arguments;
    object refs are fetched from the object store), ``use_gpu`` and, in local mode, ``local_checkpoints``
    (a folder) and ``checkpoints_to_keep``.
    """
    folder = loop_config.get("local_checkpoints")
    local = CheckpointFolder(Path(folder), loop_config.get("checkpoints_to_keep", 1)) if folder else None
    session = RayTrainSession(local, bool(loop_config.get("use_gpu", False)))
    args = [ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in loop_config.get("args", ())]
    loop: LoopFunction = loop_config["loop"]
    loop(session, *args)
