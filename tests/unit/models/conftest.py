from __future__ import annotations

import pytest

from markov_panels import Chain, make_chain
from torch_threads import one_torch_thread  # noqa: F401  (autouse in this package)


@pytest.fixture(scope="session")
def chain() -> Chain:
    return make_chain()
