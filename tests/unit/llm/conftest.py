"""Fixtures of the LLM scoring tests: the tiny world is built once per session (llm_world.py)."""

from __future__ import annotations

import pytest
from llm_world import TinyWorld, build_world

from torch_threads import one_torch_thread  # noqa: F401  (autouse in this package)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return build_world(tmp_path_factory.mktemp("llm"))
