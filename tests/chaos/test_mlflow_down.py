"""The MLflow tracking server dies during `laborlm train` (issue 16, faults).

A real loopback server (SQLite), a real `laborlm train` on local Ray (one DDP worker, a tiny Llama, pretrain
phase only); the server is killed once the run has logged its first metrics.

* down to the end: the command exits 0, the checkpoint and the model folder are complete, one warning names
  the unreachable server and what was not logged. Never a traceback.
* back before the end (restarted on the same port and store): the records kept during the outage are sent,
  so the metric history has no hole and the run ends FINISHED (checked on the tracker rank 0 uses, step by
  step, so that the test does not race the training's speed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from laborlm.tracking.server import MlflowServer, start_mlflow_server

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
STEPS = 40


def _train(tmp_path: Path, uri: str) -> tuple[subprocess.Popen[bytes], Path]:
    cmd = [
        sys.executable,
        "-m",
        "laborlm",
        "train",
        "jobs/train_tiny.yaml",
        f"out_dir={tmp_path / 'run'}",
        f"tracking.tracking_uri={uri}",
        "tracking.experiment=chaos",
        "finetune.enabled=false",
        "strategy.num_workers=1",
        "strategy.cpus_per_worker=1",
        "block_size=64",
        "tokenizer_vocab_size=512",
        "pretrain.synth_people=150",
        f"pretrain.max_steps={STEPS}",
        "pretrain.warmup_steps=1",
        "pretrain.eval_every_steps=10",
        "pretrain.checkpoint_every_steps=10",
        "pretrain.log_every_steps=2",
        "pretrain.eval_blocks=4",
        "pretrain.eval_at_start=false",
    ]
    log = tmp_path / "train.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), log


def _first_metric_logged(server: MlflowServer) -> bool:
    """Whether any run of the experiment holds a train/loss point yet (read straight from the server's DB)."""
    import sqlite3

    db = server.backend_uri.removeprefix("sqlite:///")
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from metrics where key = 'train/loss'").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def _wait_for_metrics(server: MlflowServer, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while not _first_metric_logged(server):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "training logged no metric in time:\n" + log.read_text()[-3000:]
        time.sleep(0.3)


def _model_intact(tmp_path: Path) -> dict[str, object]:
    model = tmp_path / "run" / "pretrain" / "model"
    info = (
        json.loads((model / "laborlm_model.json").read_text())
        if (model / "laborlm_model.json").is_file()
        else {}
    )
    assert (model / "config.json").is_file() and list(model.glob("*.safetensors")), list(model.iterdir())
    assert info.get("completed") and info.get("final_step") == STEPS, info
    return info


@pytest.mark.slow_chaos  # 70-140 s on 2 shared cores: `pytest -m chaos`
def test_training_outlives_a_tracking_server_that_stays_down(tmp_path: Path) -> None:
    server = start_mlflow_server(tmp_path / "mlflow")
    try:
        proc, log = _train(tmp_path, server.uri)
        _wait_for_metrics(server, proc, log)
        server.stop(timeout=10)  # mid-training, for good
        rc = proc.wait(timeout=480)
    finally:
        server.stop()
    text = log.read_text()
    assert rc == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    _model_intact(tmp_path)
    assert f"MLflow at {server.uri} unreachable" in text
    assert "records not logged" in text or "not tracked" in text


def test_records_kept_during_an_outage_are_sent_when_the_server_returns(tmp_path: Path) -> None:
    """The same outage seen from rank 0's tracker, step by step (no race with a training run's speed): the
    server is stopped between two logging windows and restarted on the same port and store."""
    from mlflow.tracking import MlflowClient

    from laborlm.tracking.mlflow_tracker import TrackingConfig, open_run

    folder = tmp_path / "mlflow"
    server = start_mlflow_server(folder)
    port = server.port
    try:
        run = open_run(TrackingConfig(tracking_uri=server.uri, experiment="chaos"), tmp_path, "outage")
        run.retry_interval_s = 0.0  # try at every window (training's default is every 10 s)
        run.log_params({"lr": 0.1})
        run.log_metrics({"train/loss": 3.0}, step=1)
        server.stop(timeout=10)
        start = time.monotonic()
        for step in (2, 3, 4):  # nobody listens: kept, and quickly (no minutes of client retries)
            run.log_metrics({"train/loss": 3.0 - step / 10}, step=step)
        run.log_dict({"note": "during the outage"}, "outage.json")
        assert run.pending == 4 and time.monotonic() - start < 10
        server = start_mlflow_server(folder, port=port)  # same store, same address
        run.log_metrics({"train/loss": 2.0}, step=5)  # the backlog goes first, in order
        run.finish()
        assert run.pending == 0
        client = MlflowClient(tracking_uri=server.uri)
        history = client.get_metric_history(str(run.run_id), "train/loss")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]
        assert client.get_run(str(run.run_id)).info.status == "FINISHED"
        assert "outage.json" in [a.path for a in client.list_artifacts(str(run.run_id))]
    finally:
        server.stop()
