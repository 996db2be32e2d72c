"""Fixtures of the LLM scoring tests: the tiny world is built once per session (llm_world.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from llm_world import TinyWorld, build_world


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not crawl when another process takes a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> TinyWorld:
    return build_world(tmp_path_factory.mktemp("llm"))
