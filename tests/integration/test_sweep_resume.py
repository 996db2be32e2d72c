"""Kill a sweep's driver (and its local Ray) after the first trial finished; the rerun finishes only the rest.

The sweep runs as `python -m laborlm sweep` in its own session so that SIGKILL to the process group is what a
dead driver machine looks like: no cleanup, the MLflow parent run left RUNNING, a trial possibly mid-training.
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
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

TRAIN = [
    "block_size=128",
    "micro_batch_size=4",
    "pretrain.max_steps=6",
    "finetune.max_steps=4",
    "pretrain.eval_every_steps=3",
    "finetune.eval_every_steps=2",
    "pretrain.checkpoint_every_steps=3",
    "finetune.checkpoint_every_steps=2",
    "pretrain.warmup_steps=1",
    "finetune.warmup_steps=1",
    "pretrain.eval_blocks=8",
    "finetune.eval_blocks=8",
]


def _sweep(tmp_path: Path) -> tuple[list[str], Path]:
    config = tmp_path / "sweep.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kind": "sweep",
                "name": "tiny",
                "out_dir": str(tmp_path / "runs"),
                "survey_people": 200,
                "resume_people": 400,
                "data_fractions": [0.5, 1.0],
                "models": ["llama-200k"],
                "valid_people": 5,
                "test_people": 10,
                "max_concurrent_trials": 1,
                "pretrain_epochs": None,
                "tokenizer_vocab_size": 512,
                "train_overrides": TRAIN,
            }
        )
    )
    return [sys.executable, "-m", "laborlm", "-q", "sweep", str(config)], tmp_path / "runs" / "tiny"


def test_a_killed_sweep_driver_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    command, folder = _sweep(tmp_path)
    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 900
    while not list(folder.glob("trials/*/result.json")):
        assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    finished_first = [p.parent.name for p in folder.glob("trials/*/result.json")]
    assert len(finished_first) == 1  # one trial at a time: the second had not finished
    parent_before = json.loads((folder / "prepared.json").read_text())["parent_run_id"]

    again = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    rows = [json.loads(line) for line in (folder / "trials.jsonl").read_text().splitlines()]
    assert sorted(r["data_fraction"] for r in rows) == [0.5, 1.0]
    attempts = (folder / "trials" / finished_first[0] / "attempts.log").read_text().splitlines()
    assert len(attempts) == 1  # the finished trial was not run again
    assert "Trials:" in (folder / "scaling.md").read_text() and (folder / "scaling_data.png").is_file()

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    parents = [r for r in runs if r.info.run_name == "sweep-tiny"]
    assert [p.info.run_id for p in parents] == [parent_before]  # the same parent run, reopened
    assert parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_before]
    assert len(children) == 2  # one training run per trial: the interrupted one was reopened, not duplicated
    for child in children:
        assert child.data.metrics["test/perplexity"] > child.data.metrics["test/oracle_perplexity"]
        assert (
            child.data.metrics["model/non_embedding_parameters"] > 0 and child.data.metrics["train/flops"] > 0
        )
    assert {a.path for a in client.list_artifacts(parent_before, "report")} >= {
        "report/scaling.html",
        "report/scaling.md",
    }
