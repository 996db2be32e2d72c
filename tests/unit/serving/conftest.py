"""Fixtures of the serving tests: saved models and one SQLite model registry per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from laborlm.models.registry import load_model
from torch_threads import one_torch_thread  # noqa: F401  (autouse in this package)
from unit.serving.serving_models import save_markov, save_tiny_llm


@pytest.fixture(scope="session")
def saved_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("serving_llm"))


@pytest.fixture(scope="session")
def saved_markov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_markov(tmp_path_factory.mktemp("serving_markov"))


@pytest.fixture(scope="session")
def markov(saved_markov: Path) -> Any:
    return load_model(saved_markov)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the session: creating and migrating it costs seconds, not worth per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
