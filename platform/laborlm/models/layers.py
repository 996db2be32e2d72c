"""Building blocks shared by every neural occupation model: input embeddings, the output head, transfer.

Every model is an ``OccupationNetwork``: a *body* maps a ``CareerBatch`` to a per-step representation
``h_t`` (``[B, T, D]``, what wage regressions and career similarity read) and a linear *head* maps ``h_t`` to
scores. With a two-stage head the scores are ``K`` move logits plus one stay logit and the probabilities
come from ``two_stage.two_stage_log_probs`` (CAREER Eq. 18); with a one-stage head they are ``K`` logits and
a softmax. The Markov regression has no hidden layer: its body already produces the scores, so it has no
head and its "representation" is the linear predictor itself.

Inputs are embedded by two module types, so that code which must find every occupation- or
covariate-indexed parameter (``transfer_state``, for pretrain-then-fine-tune) finds them by type:
``OccupationEmbedding`` (previous occupations; row ``K`` is the beginning-of-career token) and
``CovariateEmbedding`` (one table per covariate of ``encoding.COVARIATES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from laborlm.models.encoding import COVARIATE_NAMES, CareerBatch, covariate, covariate_column
from laborlm.models.two_stage import two_stage_log_probs


class OccupationEmbedding(nn.Embedding):
    """Embedding of an occupation; ``NO_PREVIOUS`` (-1) maps to row ``K``, a beginning-of-career token."""

    def __init__(self, n_occupations: int, dim: int) -> None:
        super().__init__(n_occupations + 1, dim)
        self.begin = n_occupations

    def forward(self, occupation: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.where(occupation < 0, self.begin, occupation))


class CovariateEmbedding(nn.Module):
    """Sum of one embedding per covariate, ``sum_c e_c(x_tc)`` (CAREER Eq. 12)."""

    def __init__(self, dim: int, names: Sequence[str] = COVARIATE_NAMES) -> None:
        super().__init__()
        self.tables = nn.ModuleDict({name: nn.Embedding(covariate(name).size, dim) for name in names})
        self._columns = {name: covariate_column(name) for name in names}

    def forward(self, covariates: torch.Tensor) -> torch.Tensor:
        """``covariates``: ``[..., C]`` indices in ``COVARIATES`` order -> ``[..., dim]``."""
        tables = iter(self.tables.items())
        name, table = next(tables)
        out: torch.Tensor = table(covariates[..., self._columns[name]])
        for name, table in tables:
            out = out + table(covariates[..., self._columns[name]])
        return out


class Body(Protocol):
    """The architecture-specific part of a network: careers -> per-step representations."""

    dim: int  # size of the representation

    def __call__(self, batch: CareerBatch) -> torch.Tensor:
        """``[B, T, dim]`` representation of each step, a function of steps ``<= t`` only."""
        ...


def scores_to_log_probs(scores: torch.Tensor, prev: torch.Tensor, two_stage: bool) -> torch.Tensor:
    """``[..., K]`` log-probabilities from head scores (``[..., K + 1]`` two-stage, ``[..., K]`` one-stage).

    Two-stage: the last score is the stay logit ``eta . h_t`` (Eq. 1), the others the move logits
    ``beta_j . h_t`` (Eq. 2), combined by Eq. 18. One-stage: a softmax over all ``K`` occupations.
    """
    if two_stage:
        return two_stage_log_probs(scores[..., -1], scores[..., :-1], prev)
    return torch.log_softmax(scores, dim=-1)


class OccupationNetwork(nn.Module):
    """Body + head: ``representations`` (``[B, T, D]``), ``scores``, ``forward`` (``[B, T, K]`` log-probs)."""

    def __init__(self, body: nn.Module, n_occupations: int, two_stage: bool, head: bool = True) -> None:
        super().__init__()
        self.body = body
        self.n_occupations = n_occupations
        self.two_stage = two_stage
        n_scores = n_occupations + int(two_stage)
        dim: int = body.dim  # type: ignore[assignment]
        self.dim = dim  # size of the representation
        self.head: nn.Linear | None = nn.Linear(dim, n_scores) if head else None
        if self.head is not None:
            # CAREER's output projection init (fairseq): N(0, D^-1/2), so initial scores have unit scale.
            nn.init.normal_(self.head.weight, std=dim**-0.5)
            nn.init.zeros_(self.head.bias)
        elif dim != n_scores:
            raise ValueError(f"a headless body must output {n_scores} scores, got {dim}")

    def representations(self, batch: CareerBatch) -> torch.Tensor:
        out: torch.Tensor = self.body(batch)
        return out

    def scores(self, batch: CareerBatch) -> torch.Tensor:
        h = self.representations(batch)
        return h if self.head is None else self.head(h)

    def forward(self, batch: CareerBatch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``[B, T, K]`` log p(y_t = k | history, covariates of t), normalised in ``dtype``."""
        return scores_to_log_probs(self.scores(batch).to(dtype), batch.prev, self.two_stage)


def target_nll(log_probs: torch.Tensor, batch: CareerBatch) -> torch.Tensor:
    """``[B, T]`` negative log-likelihood of each observed occupation; 0 at padding."""
    nll = -log_probs.gather(-1, batch.target.unsqueeze(-1)).squeeze(-1)
    return nll.masked_fill(~batch.mask, 0.0)


def causal_mean(x: torch.Tensor, lag: int) -> torch.Tensor:
    """``m[:, t] = mean(x[:, s] for s <= t - lag)`` along dim 1; zeros where no such ``s`` exists.

    The running means the bag-of-jobs model averages earlier jobs and covariates with (CAREER Eq. 11).
    """
    total = torch.cumsum(x, dim=1)
    shifted = F.pad(total, (0, 0, lag, 0))[:, : x.shape[1]]  # shifted[:, t] = total[:, t - lag]
    steps = torch.arange(x.shape[1], device=x.device)
    count = (steps - lag + 1).clamp(min=1).to(x.dtype)
    return shifted / count[None, :, None]


def transfer_state(
    pretrained: OccupationNetwork,
    fresh: OccupationNetwork,
    absent_occupations: Sequence[int],
    absent_covariates: Sequence[str],
) -> dict[str, torch.Tensor]:
    """The pretrained weights, except that what pretraining never saw is taken from a fresh initialisation.

    CAREER fine-tunes a resume-pretrained model on surveys. Resumes have no special states (unemployed, out
    of the labour force, in school) and no gender or race, so the parameters indexed by those were never
    trained and are re-initialised: the rows of ``absent_occupations`` in every occupation input embedding
    and in the output head (the stay score and the beginning-of-career row are kept), and the whole
    embedding table of each absent covariate. A headless network (the regression) indexes occupations along
    the last axis of every body parameter, so those columns are re-initialised too.
    """
    state = {name: value.detach().clone() for name, value in pretrained.state_dict().items()}
    init = fresh.state_dict()
    index = torch.as_tensor(list(absent_occupations), dtype=torch.long)

    def take_fresh(name: str, axis: int) -> None:
        state[name].index_copy_(axis, index, init[name].index_select(axis, index))

    for prefix, module in fresh.named_modules():
        if isinstance(module, OccupationEmbedding):
            take_fresh(f"{prefix}.weight", 0)
        elif isinstance(module, CovariateEmbedding):
            for name in absent_covariates:
                if name in module.tables:
                    key = f"{prefix}.tables.{name}.weight"
                    state[key] = init[key].clone()
    if fresh.head is not None:
        take_fresh("head.weight", 0)
        take_fresh("head.bias", 0)
    else:
        for name, _ in fresh.body.named_parameters():
            take_fresh(f"body.{name}", -1 % init[f"body.{name}"].dim())
    return state
