"""One autouse fixture shared by the test packages that run tiny torch models in-process.

Import it into a package's conftest (``from torch_threads import one_torch_thread``) to make it autouse there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and do not slow to a crawl when another process takes a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
