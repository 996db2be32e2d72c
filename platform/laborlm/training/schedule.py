"""Learning-rate schedules as a factor of the peak rate, per optimiser step (``torch.optim.lr_scheduler.LambdaLR``).

``lr_factor(step, ...)`` is the multiplier used for the update that *takes* step ``step`` (0-based):

* warm-up (all kinds): ``(step + 1) / warmup_steps`` for ``step < warmup_steps``: never zero, so the first
  update already moves the weights, and exactly 1 at the last warm-up step;
* ``cosine``: from 1 down to ``min_lr_ratio`` along half a cosine over the steps after warm-up; the last
  step (``max_steps - 1``) gets ``min_lr_ratio``;
* ``inverse_sqrt`` (fairseq, as CAREER trained): ``sqrt(warmup_steps / step)``: 1 at the end of warm-up,
  halving every 4x more steps; with no warm-up, ``1 / sqrt(step + 1)``;
* ``constant``: 1.

Pure functions of the step: a resumed run gets the same rate as an uninterrupted one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable


def lr_factor(step: int, *, kind: str, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based); see the module docstring."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "inverse_sqrt":
        return math.sqrt(warmup_steps / step) if warmup_steps > 0 else 1.0 / math.sqrt(step + 1)
    if kind == "cosine":
        span = max_steps - 1 - warmup_steps  # steps after warm-up, the last one included
        progress = min(1.0, (step - warmup_steps) / span) if span > 0 else 1.0
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}")


def lr_lambda(*, kind: str, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> Callable[[int], float]:
    """``lr_factor`` with the phase's settings bound, for ``LambdaLR`` (a partial: its state_dict stays plain)."""
    lr_factor(0, kind=kind, warmup_steps=warmup_steps, max_steps=max_steps, min_lr_ratio=min_lr_ratio)
    return functools.partial(lr_factor, kind=kind, warmup_steps=warmup_steps, max_steps=max_steps,
                             min_lr_ratio=min_lr_ratio)
