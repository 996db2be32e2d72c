"""NEMO (Li et al. 2017) adapted to survey panels as CAREER did (Appendix G): an LSTM over the career.

The input at step t is the embedding of the previous job plus the embeddings of the covariates of year t,
the same way CAREER brings covariates in; the company-prediction objective of the original is dropped.
CAREER tried a CAREER-sized LSTM and NEMO's own smaller one and kept the smaller: 2 layers, 200 hidden
units. A linear head maps the top layer's hidden state to scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from laborlm.models.encoding import CareerBatch
from laborlm.models.layers import CovariateEmbedding, OccupationEmbedding


@dataclass(frozen=True)
class LstmConfig:
    kind: Literal["lstm"] = "lstm"
    hidden: int = 200  # hidden units per layer, also the embedding size (NEMO's smaller architecture)
    layers: int = 2  # stacked LSTM layers
    dropout: float = 0.1  # on the inputs, between layers and on the output
    two_stage: bool = True  # stay logit + moves (Table 8); False: one softmax over K (Figure 2a)


class NemoLstm(nn.Module):
    def __init__(self, config: LstmConfig, n_occupations: int) -> None:
        super().__init__()
        self.dim = config.hidden
        self.job = OccupationEmbedding(n_occupations, config.hidden)
        self.covariates = CovariateEmbedding(config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.hidden,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )

    def forward(self, batch: CareerBatch) -> torch.Tensor:
        x = self.dropout(self.job(batch.prev) + self.covariates(batch.covariates))
        # Careers are right-padded and the LSTM runs forward in time, so padding never reaches a real step.
        h, _ = self.lstm(x)
        out: torch.Tensor = self.dropout(h)
        return out
