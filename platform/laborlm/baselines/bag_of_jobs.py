"""Bag-of-jobs: the most recent job plus the average of all earlier jobs (CAREER Appendix A, Eq. 11).

    h_t = alpha(y_{t-1}) + mean_{s <= t-2} rho(y_s)                     (last job, earlier jobs)
        + sum_c e_c(x_tc) + mean_{s < t} sum_{c dynamic} e'_c(x_sc)     (covariates now, earlier)

The history enters only through two embeddings, so unlike CAREER the model cannot tell the order of earlier
jobs apart or let them interact. Covariates are embedded likewise: the values of the target year plus the
average of earlier values of the time-varying ones (for a static covariate the average would repeat its one
value). A linear head maps ``h_t`` to scores. Eq. 11 gives each term its own coefficient matrix; a shared
head over the sum is as expressive whenever ``D >= K``, because each embedding can then reach any score
vector (CAREER found results insensitive to D between 256 and 2048 and used 1024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from laborlm.models.encoding import DYNAMIC_COVARIATES, CareerBatch
from laborlm.models.layers import CovariateEmbedding, OccupationEmbedding, causal_mean


@dataclass(frozen=True)
class BagOfJobsConfig:
    kind: Literal["bag_of_jobs"] = "bag_of_jobs"
    dim: int = 256  # representation dimension D (CAREER: 1024; smaller here so CPU runs stay quick)
    two_stage: bool = True  # stay logit + moves (Table 8); False: one softmax over K (Figure 2a)


class BagOfJobs(nn.Module):
    def __init__(self, config: BagOfJobsConfig, n_occupations: int) -> None:
        super().__init__()
        self.dim = config.dim
        self.recent_job = OccupationEmbedding(n_occupations, config.dim)  # alpha
        self.earlier_jobs = OccupationEmbedding(n_occupations, config.dim)  # rho
        self.covariates = CovariateEmbedding(config.dim)
        self.earlier_covariates = CovariateEmbedding(config.dim, DYNAMIC_COVARIATES)
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=config.dim**-0.5)

    def forward(self, batch: CareerBatch) -> torch.Tensor:
        # y_s for s <= t-2 are the targets two or more steps back; padding only ever follows a career.
        earlier_jobs = causal_mean(self.earlier_jobs(batch.target), lag=2)
        earlier_covariates = causal_mean(self.earlier_covariates(batch.covariates), lag=1)
        h: torch.Tensor = (
            self.recent_job(batch.prev)
            + earlier_jobs
            + self.covariates(batch.covariates)
            + earlier_covariates
        )
        return h
