"""Markov regression: a multinomial logit over CAREER's hand-built history features (Appendices A and G).

    score_k = b_k + A[y_{t-1}, k] + B[y_{t-2}, k] + sum_c E_c[x_tc, k]
              + g_k 1{gap > 1} + d_k 1{education changed} + u_k * tenure / s + v_k * position / s

over the features of Appendix G: the most recent job (a beginning-of-career row for a first year), the job
before it, the year, a dummy for more than one year since the previous observation, education, a dummy for
a change in education, region, gender, race, the consecutive observations in the current job (``tenure``), the
observations so far (``position``), and an intercept ``b``. Both count observed years (waves), as
``encoding`` does for every model, so on a biennial or irregular survey they are not calendar years; the
gap dummy carries the spacing. An embedding table with one column per score *is* a one-hot
design matrix times a coefficient matrix, so the regression is a sum of embedding lookups; it trains with the
same loop as the neural models (CAREER fitted it by SGD too). The two-stage variant adds one score column,
the stay logit, so every feature also shifts the probability of staying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from laborlm.models.encoding import CareerBatch, covariate_column
from laborlm.models.layers import CovariateEmbedding, OccupationEmbedding

_GAP = covariate_column("gap")
_GAP_OVER_ONE_YEAR = (
    2  # index of the "2 years" bucket in encoding.GAP_BUCKETS; higher buckets are longer gaps
)


@dataclass(frozen=True)
class RegressionConfig:
    kind: Literal["regression"] = "regression"
    two_stage: bool = True  # stay logit + moves (Table 8); False: one softmax over K (Figure 2a)
    continuous_scale: float = 10.0  # tenure and years observed enter divided by this (a reparametrisation
    # that keeps their coefficients on the scale of the one-hot terms, so one learning rate suits both)


class MarkovRegression(nn.Module):
    """The regression's linear predictor: ``[B, T, K (+1)]`` scores. Use headless (see ``layers``)."""

    def __init__(self, config: RegressionConfig, n_occupations: int) -> None:
        super().__init__()
        self.dim = n_occupations + int(config.two_stage)
        self.scale = config.continuous_scale
        self.recent_job = OccupationEmbedding(n_occupations, self.dim)
        self.prior_job = OccupationEmbedding(n_occupations, self.dim)  # row K: no job two observations back
        self.covariates = CovariateEmbedding(self.dim, ("year", "education", "region", "gender", "race"))
        self.gap_over_one_year = nn.Parameter(torch.zeros(self.dim))
        self.education_changed = nn.Parameter(torch.zeros(self.dim))
        self.continuous = nn.Parameter(torch.zeros(2, self.dim))  # tenure, years observed
        self.intercept = nn.Parameter(torch.zeros(self.dim))
        # Every parameter has the scores on its last axis (what ``layers.transfer_state`` relies on), and all
        # start at zero: uniform probabilities, as a logit fitted by gradient descent conventionally starts.
        for p in self.parameters():
            nn.init.zeros_(p)

    def forward(self, batch: CareerBatch) -> torch.Tensor:
        gap_over_one = (batch.covariates[..., _GAP] >= _GAP_OVER_ONE_YEAR).unsqueeze(-1)
        continuous = torch.stack([batch.tenure, batch.position], dim=-1).float() / self.scale
        scores: torch.Tensor = (
            self.recent_job(batch.prev)
            + self.prior_job(batch.prev2)
            + self.covariates(batch.covariates)
            + gap_over_one * self.gap_over_one_year
            + batch.education_changed.unsqueeze(-1) * self.education_changed
            + continuous @ self.continuous
            + self.intercept
        )
        return scores
