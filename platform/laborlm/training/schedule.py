"""Learning-rate schedules: the one home of every schedule both training loops use. Pure functions of the step,
so a resumed run gets the same rate as an uninterrupted one.

``inverse_sqrt`` is fairseq's ``inverse_sqrt`` scheduler (as CAREER trained), after ``updates`` updates:

* warm-up (``updates < warmup_steps``): ``warmup_init + updates * (peak - warmup_init) / warmup_steps``;
* then ``peak * sqrt(warmup_steps) / sqrt(updates)``: ``peak`` at the end of warm-up, halving every 4x more steps;
* without warm-up, ``peak / sqrt(max(updates, 1))``.

The two loops count the update differently, and each keeps its numbers through ``warmup_offset``:

* ``models.fitting`` (CAREER): the update taking step ``s`` (0-based) uses fairseq's rate after ``s`` updates
  (``warmup_offset=0``), starting from ``warmup_init_lr`` (1e-7) exactly as fairseq does;
* the language-model loop (``lr_factor``): ``warmup_offset=1`` with ``warmup_init=0``: the update taking step
  ``s`` uses the rate after ``s + 1`` updates during warm-up, i.e. ``(s + 1) / warmup_steps``, never zero (the
  first update already moves the weights) and exactly the peak at the last warm-up step; after warm-up it is
  ``sqrt(warmup_steps / s)`` (the offset applies to warm-up only, so steps ``W - 1`` and ``W`` both take the
  peak), and without warm-up ``1 / sqrt(s + 1)``.

``lr_factor(step, ...)`` is the language-model loop's multiplier of the peak rate for the update that *takes*
step ``step`` (0-based), for ``torch.optim.lr_scheduler.LambdaLR``:

* warm-up (all kinds): ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (as above);
* ``cosine``: from 1 down to ``min_lr_ratio`` along half a cosine over the steps after warm-up; the last
  step (``max_steps - 1``) gets ``min_lr_ratio``;
* ``inverse_sqrt``: ``inverse_sqrt(step, warmup_offset=1)`` (above);
* ``constant``: 1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable


def linear_warmup(
    updates: int, *, warmup_steps: int, peak: float = 1.0, warmup_init: float = 0.0, warmup_offset: int = 0
) -> float:
    """The warm-up of every schedule: linear from ``warmup_init`` (after 0 updates) to ``peak`` (after
    ``warmup_steps``), evaluated after ``updates + warmup_offset`` updates."""
    return warmup_init + (updates + warmup_offset) * (peak - warmup_init) / warmup_steps


def inverse_sqrt(
    updates: int, *, warmup_steps: int, peak: float = 1.0, warmup_init: float = 0.0, warmup_offset: int = 0
) -> float:
    """fairseq's ``inverse_sqrt`` learning rate after ``updates`` updates; see the module docstring.

    Args:
        warmup_offset: added to ``updates`` during warm-up only (and without warm-up): 0 is fairseq's own
            counting; 1 is the language-model loop's (never a zero rate on the first update).
    """
    if warmup_steps > 0 and updates < warmup_steps:
        return linear_warmup(
            updates,
            warmup_steps=warmup_steps,
            peak=peak,
            warmup_init=warmup_init,
            warmup_offset=warmup_offset,
        )
    if warmup_steps == 0:
        return peak / math.sqrt(max(updates + warmup_offset, 1))
    # peak * sqrt(W) / sqrt(updates): peak at the end of warm-up, then decaying as 1 / sqrt(updates).
    return peak * math.sqrt(warmup_steps / updates)


def lr_factor(step: int, *, kind: str, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based); see the module docstring."""
    if kind == "inverse_sqrt":
        return inverse_sqrt(step, warmup_steps=warmup_steps, warmup_offset=1)
    if warmup_steps > 0 and step < warmup_steps:
        return linear_warmup(step, warmup_steps=warmup_steps, warmup_offset=1)  # (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        span = max_steps - 1 - warmup_steps  # steps after warm-up, the last one included
        progress = min(1.0, (step - warmup_steps) / span) if span > 0 else 1.0
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}")


def lr_lambda(*, kind: str, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> Callable[[int], float]:
    """``lr_factor`` with the phase's settings bound, for ``LambdaLR`` (a partial: its state_dict stays plain)."""
    lr_factor(0, kind=kind, warmup_steps=warmup_steps, max_steps=max_steps, min_lr_ratio=min_lr_ratio)
    return functools.partial(
        lr_factor, kind=kind, warmup_steps=warmup_steps, max_steps=max_steps, min_lr_ratio=min_lr_ratio
    )
