"""Learning-rate schedules: warm-up, cosine, inverse square root, hand-computed values and fairseq's formula."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from laborlm.training.schedule import inverse_sqrt, lr_factor, lr_lambda


def test_warmup_is_linear_and_reaches_one_at_its_last_step() -> None:
    f = [lr_factor(s, kind="cosine", warmup_steps=4, max_steps=20) for s in range(4)]
    assert f == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_goes_from_one_to_the_floor_at_the_last_step() -> None:
    kw = {"kind": "cosine", "warmup_steps": 2, "max_steps": 12, "min_lr_ratio": 0.1}
    assert lr_factor(2, **kw) == pytest.approx(1.0)
    # Half-way through the 9 post-warm-up steps (step 2 .. 11): the mean of 1 and the floor.
    assert lr_factor(2 + 4.5, **kw) == pytest.approx(0.55)  # type: ignore[arg-type]
    assert lr_factor(11, **kw) == pytest.approx(0.1)
    assert lr_factor(50, **kw) == pytest.approx(0.1)  # beyond max_steps: stays at the floor
    values = [lr_factor(s, **kw) for s in range(2, 12)]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_inverse_sqrt_halves_every_four_times_more_steps() -> None:
    kw = {"kind": "inverse_sqrt", "warmup_steps": 10, "max_steps": 1000}
    assert lr_factor(10, **kw) == pytest.approx(1.0)
    assert lr_factor(40, **kw) == pytest.approx(0.5)
    assert lr_factor(160, **kw) == pytest.approx(0.25)
    assert lr_factor(3, kind="inverse_sqrt", warmup_steps=0, max_steps=10) == pytest.approx(1 / math.sqrt(4))


def test_constant_and_unknown() -> None:
    assert lr_factor(99, kind="constant", warmup_steps=5, max_steps=100) == 1.0
    with pytest.raises(ValueError):
        lr_lambda(kind="linear", warmup_steps=0, max_steps=10, min_lr_ratio=0.0)


def test_lambda_lr_uses_the_factor_of_each_step_and_resumes_from_its_state() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    fn = lr_lambda(kind="cosine", warmup_steps=2, max_steps=6, min_lr_ratio=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    used = []
    for _ in range(3):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([2.0 * fn(s) for s in range(3)])
    state = sched.state_dict()
    # Resume as the DDP engine does: optimizer state (holding the current lr), then the scheduler's step count.
    opt2 = torch.optim.SGD([p], lr=2.0)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, fn)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == pytest.approx(2.0 * fn(3))
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(2.0 * fn(4))


def _fairseq(updates: int, *, lr: float, warmup: int, warmup_init_lr: float) -> float:
    """fairseq's inverse_sqrt after ``updates`` updates, written out from its documentation: linear warm-up
    ``warmup_init_lr + updates * (lr - warmup_init_lr) / warmup``, then ``lr * sqrt(warmup) / sqrt(updates)``."""
    if updates < warmup:
        return warmup_init_lr + updates * (lr - warmup_init_lr) / warmup
    return lr * math.sqrt(warmup) / math.sqrt(updates)


@pytest.mark.parametrize(
    ("lr", "warmup", "warmup_init_lr"), [(5e-4, 500, 1e-7), (1e-3, 4, 0.0), (2.0, 1, 0.5)]
)
def test_inverse_sqrt_is_fairseqs_formula(lr: float, warmup: int, warmup_init_lr: float) -> None:
    for updates in [*range(2 * warmup + 3), 10 * warmup, 1000 * warmup]:
        assert inverse_sqrt(
            updates, warmup_steps=warmup, peak=lr, warmup_init=warmup_init_lr
        ) == pytest.approx(_fairseq(updates, lr=lr, warmup=warmup, warmup_init_lr=warmup_init_lr), rel=1e-12)


def test_inverse_sqrt_without_warmup_decays_from_the_first_update() -> None:
    # models.fitting (fairseq's counting): the update taking step s uses 1 / sqrt(max(s, 1)).
    assert [inverse_sqrt(s, warmup_steps=0, peak=2.0) for s in (0, 1, 4)] == pytest.approx([2.0, 2.0, 1.0])
    # The language-model loop (offset 1): 1 / sqrt(s + 1).
    assert [inverse_sqrt(s, warmup_steps=0, warmup_offset=1) for s in (0, 1, 3)] == pytest.approx(
        [1, 0.5**0.5, 0.5]
    )


def test_language_model_factors_are_unchanged_by_the_shared_schedule() -> None:
    """The numbers lr_factor gave before the two loops shared ``inverse_sqrt``: (s + 1) / W during warm-up,
    then sqrt(W / s); without warm-up 1 / sqrt(s + 1)."""
    for warmup in (0, 1, 3, 10):
        for step in range(40):
            if warmup and step < warmup:
                old = (step + 1) / warmup
            else:
                old = math.sqrt(warmup / step) if warmup else 1 / math.sqrt(step + 1)
            assert lr_factor(step, kind="inverse_sqrt", warmup_steps=warmup, max_steps=40) == pytest.approx(
                old
            )
            # And during warm-up the language-model loop is fairseq's formula one update ahead, from zero.
            if warmup and step < warmup:
                assert old == pytest.approx(_fairseq(step + 1, lr=1.0, warmup=warmup, warmup_init_lr=0.0))
