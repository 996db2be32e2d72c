"""A killed worker: ZeRO-3 + LoRA on 2 CPU workers, rank 1 exits hard after step 3 (once, via a marker file).

Ray Train's FailureConfig restarts the worker group; every rank restores its ZeRO-3 shard, optimizer and
scheduler from the step-2 checkpoint and skips the micro-batches it had consumed. The run must end at the
configured step count with a finite loss, and the LoRA adapter saved under ZeRO-3 must be full-size and
non-zero (gathered before saving), and merge into a plain model.

The failure is injected from here, not from the library: ``run_training`` takes the loop function its workers
run, and this test hands it ``run_phase_loop`` in a session whose train shard kills the worker when the loop
asks for the first micro-batch of step 4.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray.cloudpickle
from safetensors.torch import load_file
from test_train_workflow import shared_data

from laborlm.config import load_config
from laborlm.training import TrainConfig
from laborlm.training.loop import PhaseJob, run_phase_loop
from laborlm.training.session import STATE_FILE, WorkerSession
from laborlm.training.workflow import run_training

# A worker-group restart costs a second Ray Train start-up: allow for a loaded machine beyond the suite's 300 s.
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow, pytest.mark.timeout(900)]

# Ray workers cannot import this test module: ship the wrapped loop and session by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]

logger = logging.getLogger(__name__)


def _registered(run_folder: Path) -> bool:
    """Ray Train's controller has recorded a checkpoint of the run in its snapshot.

    A report reaches the controller when it next polls the workers; a worker that dies first takes its queued
    report with it, and the group would restart from the checkpoint before. Waiting for the snapshot makes the
    failure exercise the resume it means to, on a loaded machine too.
    """
    try:
        snapshot = json.loads((run_folder / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(snapshot.get("latest_checkpoint_result"))


class _KillingShard:
    """A train shard that ends this worker's process when batch ``kill_before`` is asked for (1-based)."""

    def __init__(self, inner: Any, kill: Callable[[], None], kill_before: int) -> None:
        self.inner, self.kill, self.kill_before, self.served = inner, kill, kill_before, 0

    def iter_torch_batches(self, **kwargs: Any) -> Iterator[Any]:
        for batch in self.inner.iter_torch_batches(**kwargs):
            self.served += 1
            if self.served == self.kill_before:
                self.kill()
            yield batch


class _KillingSession:
    """``session`` whose train shard kills rank ``rank`` once, after ``step`` optimiser steps."""

    def __init__(
        self, session: WorkerSession, *, step: int, accum: int, rank: int, marker: Path, run_folder: Path
    ) -> None:
        self._session, self._step, self._accum = session, step, accum
        self._rank, self._marker, self._run_folder = rank, marker, run_folder
        self.rank, self.world_size, self.device = session.rank, session.world_size, session.device
        self.prepare_model, self.restore, self.report = session.prepare_model, session.restore, session.report

    def dataset_shard(self, name: str) -> Any:
        shard = self._session.dataset_shard(name)
        if name != "train" or self._session.rank != self._rank or self._marker.exists():
            return shard
        return _KillingShard(shard, self._kill, self._step * self._accum + 1)

    def _kill(self) -> None:
        deadline = time.monotonic() + 300
        while not _registered(self._run_folder) and time.monotonic() < deadline:
            time.sleep(0.2)
        self._marker.write_text(f"killed rank {self._rank} after step {self._step}\n")
        logger.warning("injected failure: rank %d exits after step %d", self._rank, self._step)
        os._exit(1)  # a killed worker, not an exception


def _loop_killing_a_worker(
    session: WorkerSession, job: PhaseJob, *, step: int, rank: int, marker: Path, run_folder: Path
) -> None:
    """``run_phase_loop`` in a session that kills worker ``rank`` after ``step`` (once)."""
    killing = _KillingSession(
        session, step=step, accum=job.config.grad_accum_steps, rank=rank, marker=marker, run_folder=run_folder
    )
    run_phase_loop(killing, job)


def test_killed_worker_resumes_and_finishes_at_the_same_step(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    overrides = [
        *shared_data(tmp_path_factory),
        f"out_dir={tmp_path / 'run'}",
        "finetune.enabled=false",
        "strategy.kind=zero3",
        "pretrain.lora=true",
        "lora.rank=4",
        "pretrain.max_steps=4",
        "pretrain.warmup_steps=1",
        "pretrain.lr=1e-2",
        "pretrain.eval_every_steps=2",
        "pretrain.checkpoint_every_steps=2",
        "pretrain.log_every_steps=2",
        "pretrain.eval_blocks=16",
        "pretrain.eval_at_start=false",
        "checkpoint.max_failures=1",
        "tracking.enabled=false",
    ]
    config = load_config(TrainConfig, None, overrides)
    marker = tmp_path / "killed.txt"
    run_folder = tmp_path / "run" / "ray" / f"{config.default_run_name()}-pretrain"  # the default storage
    loop = functools.partial(_loop_killing_a_worker, step=3, rank=1, marker=marker, run_folder=run_folder)
    result = run_training(config, loop=lambda name: loop)
    phase = result.phases["pretrain"]

    assert marker.read_text().startswith("killed rank 1 after step 3")  # the failure really happened
    assert phase.checkpoint is not None
    state = json.loads((Path(phase.checkpoint) / STATE_FILE).read_text())["state"]
    assert state["step"] == 4 and state["resumes"] == 1  # restarted once, from the step-2 checkpoint
    assert state["batches_in_epoch"] == 4 or state["epoch"] > 0  # data position continued past the skip
    assert phase.metrics["train/step"] == 4 and math.isfinite(phase.metrics["train/loss"])

    adapter = load_file(str(phase.model_dir / "adapter_model.safetensors"))
    assert adapter and all(t.numel() > 0 for t in adapter.values())  # not the empty ZeRO-3 save
    a = next(t for k, t in adapter.items() if k.endswith("q_proj.lora_A.weight"))
    assert tuple(a.shape) == (4, 64)
    assert any(float(t.abs().sum()) > 0 for k, t in adapter.items() if "lora_B" in k)
    assert (phase.init_dir / "model.safetensors").is_file()  # merged into the seed-built base
