"""CAREER: a GPT-style causal transformer over occupations and covariates (Section 2.3, Appendices C and G).

    h_t^(1)  = sqrt(D) e_y(y_{t-1}) + sum_c e_c(x_tc) + PE(t)             Eq. 12 (PE: sinusoidal, fixed)
    h~_t     = LayerNorm(h_t + Dropout(MultiHeadCausalAttention(h)_t))   Eqs. 13-16, then a layer norm
    h_t^(l+1)= LayerNorm(h~_t + Dropout(FFN(h~_t)))                     Eq. 17, FFN = Linear-GELU-Linear

This is the post-norm layout of GPT-1 that Appendix G describes and CAREER ran (fairseq's
``transformer_lm_gpt``): each update is followed by a layer norm, so the last layer's output, the career
representation ``h_t``, is itself layer-normalised (the "final" norm after the last network update).
Dropout 0.1 acts on the attention weights, after each sublayer and on the summed input embeddings.
Scaling the occupation embedding by sqrt(D) follows fairseq (embeddings start at N(0, 1/D)), so jobs are not
drowned by the unit-scale positional signal. Attention is causal, so ``h_t`` depends only on steps
``<= t``; the two-stage head (Eq. 18) sits in ``layers.OccupationNetwork``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from laborlm.errors import ConfigError
from laborlm.models.encoding import CareerBatch
from laborlm.models.layers import CovariateEmbedding, OccupationEmbedding


@dataclass(frozen=True)
class CareerConfig:
    kind: Literal["career"] = "career"
    layers: int = 4  # L transformer layers
    dim: int = 64  # D, the representation size
    ffn_dim: int = 256  # hidden units of each layer's feed-forward network
    heads: int = 2  # attention heads A; D must be divisible by A
    dropout: float = 0.1  # on input embeddings and after the attention and feed-forward updates
    attention_dropout: float = 0.1  # on the attention weights
    two_stage: bool = True  # stay logit + moves (Eq. 18); False: one softmax over K

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")


# Appendix G: the best non-pretrained architecture on NLSY79, and the pretrained one (~5.6M parameters).
CAREER_SMALL = CareerConfig(layers=4, dim=64, ffn_dim=256, heads=2)
CAREER_PRETRAINED = CareerConfig(layers=12, dim=192, ffn_dim=768, heads=3)
CAREER_TINY = CareerConfig(layers=2, dim=32, ffn_dim=64, heads=2)  # tests and smoke runs


def sinusoidal_positions(position: torch.Tensor, dim: int) -> torch.Tensor:
    """``[..., dim]`` fixed encodings (Vaswani et al. 2017): sin on even, cos on odd features.

    PE(t, 2i) = sin(t / 10000^(2i/D)), PE(t, 2i+1) = cos(t / 10000^(2i/D)). Fixed rather than learned, so
    careers longer than any seen in training still get an encoding (Appendix C).
    """
    half = torch.arange(0, dim, 2, device=position.device, dtype=torch.float32)
    angle = position.unsqueeze(-1).float() / torch.pow(10000.0, half / dim)  # [..., ceil(D/2)]
    out = torch.empty(*position.shape, dim, device=position.device)
    out[..., 0::2] = torch.sin(angle)
    out[..., 1::2] = torch.cos(angle[..., : dim // 2])
    return out


class CausalSelfAttention(nn.Module):
    """Multi-head attention over steps ``t' <= t`` (Eqs. 13-15) followed by the output map M (Eq. 16)."""

    def __init__(self, config: CareerConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim)  # Q_a, K_a, V_a of all heads at once
        self.out = nn.Linear(config.dim, config.dim)  # M
        self.attention_dropout = config.attention_dropout

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, T, D = h.shape
        # [B, T, 3D] -> 3 x [B, A, T, D/A]
        q, k, v = self.qkv(h).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(D/A)) over t' <= t, dropout on the weights, then the weighted sum of values.
        b = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.attention_dropout if self.training else 0.0
        )
        g = b.transpose(1, 2).reshape(B, T, D)  # concatenate the heads (Eq. 15)
        out: torch.Tensor = self.out(g)
        return out


class TransformerLayer(nn.Module):
    def __init__(self, config: CareerConfig) -> None:
        super().__init__()
        self.attention = CausalSelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.dim)
        self.ffn = nn.Sequential(
            nn.Linear(config.dim, config.ffn_dim), nn.GELU(), nn.Linear(config.ffn_dim, config.dim)
        )
        self.ffn_norm = nn.LayerNorm(config.dim)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.attention_norm(h + self.dropout(self.attention(h)))  # Eq. 16, then LayerNorm
        out: torch.Tensor = self.ffn_norm(h + self.dropout(self.ffn(h)))  # Eq. 17, then LayerNorm
        return out


class CareerTransformer(nn.Module):
    """The representation ``h_t^(L)`` of CAREER; wrap in ``OccupationNetwork`` for the two-stage head."""

    def __init__(self, config: CareerConfig, n_occupations: int) -> None:
        super().__init__()
        self.dim = config.dim
        self.job = OccupationEmbedding(n_occupations, config.dim)
        self.covariates = CovariateEmbedding(config.dim)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.layers))
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=config.dim**-0.5)

    def forward(self, batch: CareerBatch) -> torch.Tensor:
        h: torch.Tensor = (
            math.sqrt(self.dim) * self.job(batch.prev)
            + self.covariates(batch.covariates)
            + sinusoidal_positions(batch.position, self.dim)
        )
        h = self.dropout(h)
        for layer in self.layers:
            h = layer(h)
        return h
