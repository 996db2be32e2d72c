from __future__ import annotations

import math

import torch

from laborlm.models.two_stage import NO_PREVIOUS, stay_probability, two_stage_log_probs


def test_hand_computed_three_occupations() -> None:
    """K = 3, previous job 1, stay logit 0 (P(stay) = 1/2), move scores (ln 1, ln 5, ln 3).

    P(y=1) = 1/2; the move mass 1/2 is split over jobs 0 and 2 in proportion 1 : 3, so
    P(y=0) = 1/2 * 1/4 = 0.125 and P(y=2) = 1/2 * 3/4 = 0.375. The score of job 1 (ln 5) is ignored.
    """
    lp = two_stage_log_probs(
        torch.tensor([0.0]), torch.tensor([[0.0, math.log(5.0), math.log(3.0)]]), torch.tensor([1])
    )
    assert torch.allclose(lp.exp(), torch.tensor([[0.125, 0.5, 0.375]]))


def test_stay_logit_and_first_year() -> None:
    s = torch.tensor([math.log(3.0), 5.0])  # P(stay) = 3/4 for row 0; row 1 is a first year
    m = torch.tensor([[0.0, 0.0, math.log(2.0)], [0.0, math.log(2.0), math.log(5.0)]])
    prev = torch.tensor([0, NO_PREVIOUS])
    p = two_stage_log_probs(s, m, prev).exp()
    assert torch.allclose(p[0], torch.tensor([0.75, 0.25 * 1 / 3, 0.25 * 2 / 3]))
    assert torch.allclose(p[1], torch.tensor([1 / 8, 2 / 8, 5 / 8]))  # plain softmax, stay logit unused
    assert torch.allclose(stay_probability(p.log(), prev)[0], torch.tensor(0.75))
    assert torch.isnan(stay_probability(p.log(), prev)[1])


def test_rows_sum_to_one_and_gradients_flow() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 6, generator=g, requires_grad=True)
    m = torch.randn(4, 6, 10, generator=g, requires_grad=True)
    prev = torch.randint(-1, 10, (4, 6), generator=g)
    lp = two_stage_log_probs(s, m, prev)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(4, 6), atol=1e-6)
    lp.gather(-1, torch.zeros(4, 6, 1, dtype=torch.long)).sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(m.grad).all()
