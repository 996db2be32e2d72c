"""The shared training session without Ray: seeds, all-reduce outside a process group, the checkpoint record
and its identity checks, numbered checkpoint folders and the in-process session's reports."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from laborlm.errors import CheckpointError
from laborlm.training.session import (
    STATE_FILE,
    CheckpointFolder,
    InProcessSession,
    MetricsWindow,
    all_reduce,
    read_state,
    seed_for,
    write_state,
)


def test_seed_for_is_a_deterministic_child_per_key_path() -> None:
    assert seed_for(7, 1, 0) == seed_for(7, 1, 0)
    assert len({seed_for(7), seed_for(7, 0), seed_for(7, 1), seed_for(7, 1, 0), seed_for(8, 1)}) == 5


def test_all_reduce_without_a_process_group_returns_the_values() -> None:
    values = torch.tensor([1.5, 2.0], dtype=torch.float64)
    assert torch.equal(all_reduce(values), values)
    assert torch.equal(all_reduce(values, op="max"), values)


def test_state_record_round_trips_and_refuses_another_run(tmp_path: Path) -> None:
    write_state(tmp_path, {"format": "f/1", "run_name": "a", "state": {"step": 3, "epoch": 1}})
    assert read_state(tmp_path, {"format": "f/1", "run_name": "a"})["state"] == {"step": 3, "epoch": 1}
    with pytest.raises(CheckpointError, match="run_name='a', this run 'b'"):
        read_state(tmp_path, {"run_name": "b"})
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_state(tmp_path, {})
    with pytest.raises(CheckpointError, match="unreadable"):
        read_state(tmp_path / "missing", {})


def test_checkpoint_folder_numbers_keeps_the_newest_and_the_session_reports(tmp_path: Path) -> None:
    session = InProcessSession(CheckpointFolder(tmp_path / "run", keep=2), use_gpu=False)
    with session.restore() as folder:
        assert folder is None
    for step in range(3):
        session.report({"train/step": step}, lambda f, s=step: write_state(f, {"step": s}))
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["checkpoint_000001", "checkpoint_000002"]
    assert session.last_metrics == {"train/step": 2}
    with session.restore() as folder:
        assert folder == session.last_checkpoint and read_state(folder, {"step": 2})
    session.report({"train/step": 3})  # metrics only: no new checkpoint
    assert session.last_metrics == {"train/step": 3} and session.folder.latest() == session.last_checkpoint


def test_a_half_written_checkpoint_left_by_a_killed_run_is_replaced(tmp_path: Path) -> None:
    folder = CheckpointFolder(tmp_path, keep=2)
    write_state(folder.write(lambda f: write_state(f, {"step": 0})), {"step": 0})
    stale = tmp_path / ".partial_000001"  # a SIGKILL during the next write left this
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    written = folder.write(lambda f: write_state(f, {"step": 1}))
    assert written.name == "checkpoint_000001" and read_state(written, {"step": 1})
    assert not (written / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000000", "checkpoint_000001"]


def test_metrics_window_means_and_throughput_without_a_process_group() -> None:
    window = MetricsWindow()
    assert window.mean_loss is None
    window.add(3.0, 2, 100)
    window.add(1.0, 2, 60)
    window.seconds = 2.0
    total = window.reduced()
    assert total == MetricsWindow(4.0, 4, 160, 2.0)
    assert total.mean_loss == 1.0 and total.tokens_per_s == 80.0
