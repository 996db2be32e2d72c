"""MLflow's global URI is set only for a block: nothing leaks into the environment of later jobs."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from laborlm.tracking.mlflow_tracker import default_uri, mlflow_uri


def test_the_uri_and_the_environment_are_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = mlflow.get_tracking_uri()
    inside = f"sqlite:///{tmp_path / 'a.db'}"
    with mlflow_uri(inside):
        assert mlflow.get_tracking_uri() == inside and mlflow.get_registry_uri() == inside
        assert os.environ["MLFLOW_TRACKING_URI"] == inside  # mlflow writes it; subprocesses would inherit it
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert mlflow.get_tracking_uri() == before
    assert (
        default_uri(tmp_path) == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    )  # not the block's server


def test_a_cluster_environment_survives_a_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    with mlflow_uri(f"sqlite:///{tmp_path / 'b.db'}"):
        pass
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    assert default_uri(tmp_path) == "http://127.0.0.1:5000"
