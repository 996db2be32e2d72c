"""Two-stage next-occupation probabilities (CAREER Eqs. 1-3 and 18), shared by every model that uses them.

A worker either stays in the previous occupation or moves; if they move, they move to one of the *other*
occupations. With a stay logit ``s`` and move logits ``m[k]`` over the whole taxonomy:

    p(y = prev)           = sigmoid(s)
    p(y = k), k != prev   = (1 - sigmoid(s)) * exp(m[k]) / sum_{k' != prev} exp(m[k'])

so the stay event and the choice among other jobs are modelled separately and the move distribution never
wastes mass on the job being left. A first observed year has no previous occupation: it is one-stage,
``p(y = k) = softmax(m)[k]``, and ``s`` is ignored there. Everything is computed in log space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NO_PREVIOUS = -1  # ``prev`` value for a first observed year


def two_stage_log_probs(
    stay_logit: torch.Tensor, move_logits: torch.Tensor, prev: torch.Tensor
) -> torch.Tensor:
    """Log-probabilities over the taxonomy.

    Args:
        stay_logit: ``[...]`` logit of staying in the previous occupation.
        move_logits: ``[..., K]`` unnormalised scores of each occupation given a move.
        prev: ``[...]`` index of the previous occupation, or ``NO_PREVIOUS`` (-1) for a first year.

    Returns:
        ``[..., K]`` log p(y = k); each row sums to 1 in probability space.
    """
    has_prev = prev >= 0
    safe_prev = prev.clamp(min=0).unsqueeze(-1)  # [..., 1] any valid index where there is no previous job
    # Step 1: exclude the previous occupation from the move distribution (only where there is one).
    exclude = torch.zeros_like(move_logits, dtype=torch.bool).scatter(
        -1, safe_prev, True
    ) & has_prev.unsqueeze(-1)
    masked = move_logits.masked_fill(exclude, float("-inf"))
    # Step 2: normalise the moves among the other occupations: log softmax over k != prev.
    log_move = masked - torch.logsumexp(masked, dim=-1, keepdim=True)
    # Step 3: weight the move distribution by P(move) = 1 - sigmoid(s), i.e. log sigmoid(-s).
    out = log_move + F.logsigmoid(-stay_logit).unsqueeze(-1)
    # Step 4: put P(stay) = sigmoid(s) on the previous occupation.
    out = out.scatter(
        -1,
        safe_prev,
        torch.where(has_prev, F.logsigmoid(stay_logit), out.gather(-1, safe_prev).squeeze(-1)).unsqueeze(-1),
    )
    # Step 5: a first year has no stay/move split: a plain softmax over every occupation.
    first = torch.log_softmax(move_logits, dim=-1)
    return torch.where(has_prev.unsqueeze(-1), out, first)


def stay_probability(log_probs: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
    """``[...]`` P(y = prev) read off any model's log-probabilities (NaN for first years): the stay-vs-move
    score of CAREER's Table 5, defined the same way for one-stage and two-stage models."""
    has_prev = prev >= 0
    p = log_probs.gather(-1, prev.clamp(min=0).unsqueeze(-1)).squeeze(-1).exp()
    return torch.where(has_prev, p, torch.full_like(p, float("nan")))
