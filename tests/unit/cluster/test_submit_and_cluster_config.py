"""`laborlm submit` checks jobs before they reach a cluster; credentials never reach logs; cluster configs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from laborlm.cluster.local import ClusterConfig, down, status
from laborlm.cluster.submit import check_job, runtime_env, submit
from laborlm.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def test_every_runnable_job_yaml_loads_as_its_kind() -> None:
    kinds = {check_job(path, []) for path in sorted((REPO / "jobs").glob("*.yaml"))}
    assert {
        "train",
        "quickstart",
        "sweep",
        "benchmark_llm",
        "synth",
        "build_corpus",
        "benchmark_careers",
    } <= kinds


def test_a_bad_override_fails_before_submission_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="pretrain.max_steps"):
        check_job(REPO / "jobs" / "train_tiny.yaml", ["pretrain.max_steps=many"])
    with pytest.raises(ConfigError, match="no such job file"):
        check_job(REPO / "jobs" / "nope.yaml", [])


def test_runtime_env_forwards_named_variables_without_logging_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    pins = tmp_path / "constraints.txt"
    pins.write_text("# pinned\ntorch==2.13.0\nray==2.60.0\n")
    with caplog.at_level(logging.DEBUG):
        env = runtime_env(REPO, pip=pins, env_names=["AWS_SECRET_ACCESS_KEY"])
    assert env["env_vars"] == {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
    }
    assert env["pip"]["packages"] == ["torch==2.13.0", "ray==2.60.0"]
    assert {".venv", "runs", ".git"} <= set(env["excludes"])
    assert "s3cr3t-value" not in caplog.text
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        runtime_env(REPO, env_names=["NOT_SET_ANYWHERE"])


def test_a_job_file_outside_the_uploaded_directory_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "train.yaml"
    job.write_text((REPO / "jobs" / "train_tiny.yaml").read_text())
    with pytest.raises(ConfigError, match="inside the working directory"):
        submit(job, [], address="http://127.0.0.1:1", working_dir=REPO, wait=False)


def test_cluster_config_checks_ports_and_counts() -> None:
    with pytest.raises(ConfigError) as info:
        ClusterConfig(ray_port=0, mlflow_port=70000, workers=-1)
    assert "ray_port" in str(info.value) and "mlflow_port" in str(info.value) and "workers" in str(info.value)


def test_status_and_down_of_a_folder_without_a_cluster(tmp_path: Path) -> None:
    assert status(tmp_path)["running"] is False
    assert down(tmp_path) == []
