from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from markov_panels import Chain, make_chain


@pytest.fixture(scope="session")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not slow to a crawl when another process takes a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
