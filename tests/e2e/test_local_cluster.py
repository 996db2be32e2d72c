"""The cluster path end to end on one machine: `laborlm cluster up` (a real `ray start --head` and an MLflow
server on loopback), a shortened quickstart submitted through Ray's Job Submission API with `laborlm submit`,
its run and registered model found through MLflow's REST API, and `laborlm cluster down` leaving no process.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from laborlm.cli import main
from laborlm.cluster.local import ClusterConfig, _alive, down, read_state, started_processes, up
from laborlm.tracking.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
QUICK = [
    "survey_people=200",
    "resume_people=400",
    "test_people=5",
    "models=markov1",
    "register_as=laborlm-e2e",
    (
        "train_overrides=block_size=128,pretrain.max_steps=4,finetune.max_steps=2,pretrain.eval_every_steps=2,"
        "finetune.eval_every_steps=2,pretrain.eval_blocks=4,finetune.eval_blocks=4,pretrain.warmup_steps=1,"
        "finetune.warmup_steps=1,tokenizer_vocab_size=512"
    ),
]


def _get(uri: str, path: str, **query: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{uri}{path}?{urllib.parse.urlencode(query)}", timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _post(uri: str, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{uri}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_quickstart_submitted_to_a_local_cluster_lands_in_its_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cluster"
    state = up(
        ClusterConfig(
            folder=folder,
            ray_port=free_port(),
            dashboard_port=free_port(),
            mlflow_port=free_port(),
            client_port=free_port(),
            head_cpus=2,
        )
    )
    try:
        assert state.mlflow_uri is not None and state.mlflow_uri.startswith("http://127.0.0.1:")
        monkeypatch.chdir(REPO)
        monkeypatch.setenv(
            "MLFLOW_TRACKING_URI", state.mlflow_uri
        )  # forwarded to the job by `laborlm submit`
        code = main(
            [
                "submit",
                "jobs/quickstart.yaml",
                f"out_dir={tmp_path / 'qs'}",
                *QUICK,
                "--address",
                state.dashboard_url,
                "--timeout",
                "1200",
            ]
        )  # job logs: captured stdout
        assert code == 0

        experiment = _get(
            state.mlflow_uri, "/api/2.0/mlflow/experiments/get-by-name", experiment_name="laborlm"
        )
        exp_id = experiment["experiment"]["experiment_id"]  # type: ignore[index]
        runs = _post(
            state.mlflow_uri, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id], "max_results": 100}
        )
        names = {r["info"]["run_name"] for r in runs["runs"]}  # type: ignore[index, union-attr]
        assert any(n.startswith("train-") for n in names)  # the language model's training run
        metrics = {m["key"]: m["value"] for r in runs["runs"] for m in r["data"].get("metrics", [])}  # type: ignore[index, union-attr]
        assert any(k.endswith("test/perplexity") for k in metrics)
        alias = _get(
            state.mlflow_uri, "/api/2.0/mlflow/registered-models/alias", name="laborlm-e2e", alias="champion"
        )
        assert alias["model_version"]["name"] == "laborlm-e2e"  # type: ignore[index]
    finally:
        ours = started_processes(state)
        assert main(["cluster", "down", "--folder", str(folder)]) == 0
    assert read_state(folder) is None
    assert not [p for p in ours if _alive(p)]  # nothing it started survives
    assert not started_processes(state)
    down(folder)  # idempotent
