"""Multi-node on one machine: a Ray head and a second Ray node (`ray start --address` on loopback), a DeepSpeed
ZeRO-3 run with one training worker on each node (STRICT_SPREAD), checkpoints on a shared storage path; the
second node is killed mid-run, a replacement node joins (what an autoscaler does), and the run resumes from its
last checkpoint to the configured step: the code path of a multi-node GPU cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from laborlm.cluster.local import ClusterConfig, _process_table, add_node, down, up
from laborlm.tracking.server import free_port
from laborlm.training.session import STATE_FILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

STEPS = 8


def _checkpoints(storage: Path) -> list[Path]:
    """Ray Train's checkpoint folders (not its checkpoint_manager_snapshot.json beside them)."""
    return [p for p in storage.glob("*/checkpoint_*") if p.is_dir()]


def _registered(storage: Path) -> bool:
    """Ray Train's controller has recorded a checkpoint (a folder on storage alone is not yet resumable)."""
    for snapshot in storage.glob("*/checkpoint_manager_snapshot.json"):
        try:
            if json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                return True
        except (OSError, ValueError):
            continue
    return False


def _kill_node(pgid: int) -> None:
    """SIGKILL the node's `ray start` group and every descendant (its raylet and workers): a lost machine."""
    table = _process_table()
    doomed = {pid for pid, (_, group) in table.items() if group == pgid}
    frontier = set(doomed)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier and pid not in doomed}
        doomed |= frontier
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_zero3_across_two_nodes_survives_losing_one(tmp_path: Path) -> None:
    folder = tmp_path / "cluster"
    state = up(
        ClusterConfig(
            folder=folder,
            ray_port=free_port(),
            dashboard_port=free_port(),
            client_port=free_port(),
            head_cpus=2,
            workers=1,
            worker_cpus=2,
            mlflow=False,
        )
    )
    storage = tmp_path / "shared-storage"
    try:
        cmd = [
            sys.executable,
            "-m",
            "laborlm",
            "train",
            "--address",
            state.ray_address,
            "jobs/train_tiny.yaml",
            f"out_dir={tmp_path / 'run'}",
            f"checkpoint.storage_path={storage}",
            "checkpoint.max_failures=3",
            "strategy.kind=zero3",
            "strategy.num_workers=2",
            "strategy.cpus_per_worker=1",
            "strategy.placement=STRICT_SPREAD",
            "finetune.enabled=false",
            "tracking.enabled=false",
            "block_size=64",
            "tokenizer_vocab_size=512",
            "pretrain.synth_people=120",
            f"pretrain.max_steps={STEPS}",
            "pretrain.warmup_steps=1",
            "pretrain.eval_every_steps=2",
            "pretrain.checkpoint_every_steps=2",
            "pretrain.log_every_steps=2",
            "pretrain.eval_blocks=8",
            "pretrain.eval_at_start=false",
        ]
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        log = tmp_path / "driver.log"
        driver = subprocess.Popen(
            cmd,
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 900
        while not _registered(storage):
            assert driver.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.5)
        _kill_node(state.groups["node-1"])  # the second machine is gone, mid-run
        add_node(state, cpus=2, name="node-2")  # and a new one joins
        assert driver.wait(timeout=1200) == 0, log.read_text()[-4000:]
    finally:
        down(folder)

    checkpoints = sorted(_checkpoints(storage), key=lambda p: p.stat().st_mtime)
    saved = json.loads((checkpoints[-1] / STATE_FILE).read_text())
    assert saved["world_size"] == 2 and saved["strategy"] == "zero3"
    assert saved["state"]["step"] == STEPS
    assert saved["state"]["resumes"] >= 1  # restored from the shared checkpoint after the node was lost
