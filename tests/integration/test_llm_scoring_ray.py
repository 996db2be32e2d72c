"""Scoring a panel over Ray Data actors gives the in-process scores, rows in panel order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from laborlm.llm.distributed import RayDataOccupationModel
from laborlm.llm.model import LlmOccupationModel
from unit.llm.llm_world import build_world

# Slow: an actor pool starts (each actor imports torch and transformers), ~40-60 s on 2 shared cores.
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.slow]


def test_ray_data_scoring_matches_in_process(tmp_path: Path) -> None:
    world = build_world(tmp_path / "world", train_steps=5)
    model = LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy)
    # From a saved folder, two actors, several batches each, through the NextOccupationModel interface.
    # Batches group people differently than in-process, so float32 rounding differs (not the method).
    model.save(tmp_path / "m")
    loaded = RayDataOccupationModel(LlmOccupationModel.load(tmp_path / "m"), num_workers=2, batch_size=3)
    np.testing.assert_allclose(loaded.log_probs(world.test), model.log_probs(world.test), atol=1e-5)
    # (The in-memory path, a pickled model in the object store, and the actor's hidden-state output are
    # unit-tested without Ray: tests/unit/llm/test_llm_scoring.py. Each actor pool costs ~15 s to start.)
