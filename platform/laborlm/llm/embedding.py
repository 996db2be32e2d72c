"""The embedding occupation model (LABOR-LLM's later version): the LM's hidden state feeds a two-stage head.

    model = EmbeddingOccupationModel(lm, tokenizer, load_template("labor-llm"), taxonomy)
    model.fit(train, valid)              # head only, on the survey's train split; valid for early stopping
    model.log_probs(test)                # [n_rows, K], a proper distribution by construction

Instead of reading occupation probabilities off title tokens, the language model is used as a feature
extractor: ``h_t`` is its last hidden state at year t's prediction point, the last token of the prompt
(``"... 1987 (bachelors):"``), which is where the model's own next-token distribution for the title is
computed. A linear two-stage head on ``h_t`` (stay logit + K move logits, combined by
``models.two_stage.two_stage_log_probs``, the module CAREER uses) gives ``p(y_t | history)``. So the model
spends no mass outside the valid labels, knows which job would be a "stay", and has cost independent of
how titles tokenize: one pass per person (``LlmScorer.hidden_states``), no candidate scoring at all.

The LM stays frozen, so its features are computed once and the head is fitted on a fixed ``[n, D]`` matrix
with its own small loop (minibatch AdamW, early stopping on validation perplexity, best epoch kept) rather
than ``models.fitting``, whose Ray Train loop is built around networks that read whole careers. Features are
standardised with the training split's mean and scale, saved with the head.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from laborlm.config import build, to_dict
from laborlm.errors import CheckpointError, ConfigError, InputDataError
from laborlm.llm.model import META_FILE, load_bundle, save_bundle
from laborlm.llm.scoring import LlmScorer, ScoringConfig
from laborlm.models.two_stage import two_stage_log_probs
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from laborlm.corpus.template import Template

logger = logging.getLogger(__name__)

HEAD_FILE = "head.safetensors"


@dataclass(frozen=True)
class EmbeddingHeadConfig:
    lr: float = 1e-2  # AdamW learning rate of the linear head
    weight_decay: float = 0.01
    batch_size: int = 512  # person-years per step
    max_epochs: int = 200
    patience: int | None = 10  # epochs without a better validation perplexity before stopping; None: never
    seed: int = 0  # initialisation and batch order

    def __post_init__(self) -> None:
        problems = []
        if self.lr <= 0 or self.weight_decay < 0:
            problems.append("lr must be > 0 and weight_decay >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or (self.patience is not None and self.patience < 1):
            problems.append("batch_size, max_epochs and patience must be >= 1")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class HeadFit:
    epochs: int  # epochs run
    best_epoch: int  # 1-based epoch whose weights were kept (the last one without validation)
    train_perplexity: float  # of the kept weights
    valid_perplexity: float | None


class TwoStageHead(nn.Module):
    """Standardise ``h``, then a linear map to K move logits and one stay logit (CAREER Eqs. 1, 2, 18)."""

    mean: torch.Tensor  # [D] training-split mean of h (a buffer: saved with the head)
    scale: torch.Tensor  # [D] training-split standard deviation of h

    def __init__(self, dim: int, n_occupations: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, n_occupations + 1)
        nn.init.normal_(
            self.linear.weight, std=dim**-0.5
        )  # unit-scale initial scores, as layers.OccupationNetwork
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def forward(
        self, h: torch.Tensor, prev: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        scores = self.linear((h - self.mean) / self.scale).to(dtype)
        return two_stage_log_probs(scores[..., -1], scores[..., :-1], prev)


class EmbeddingOccupationModel:
    """Frozen LM features + trained two-stage head; implements ``NextOccupationModel``."""

    kind = "embedding"

    def __init__(
        self,
        lm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        template: Template,
        taxonomy: Taxonomy,
        *,
        name: str = "llm-embedding",
        head: EmbeddingHeadConfig = EmbeddingHeadConfig(),
        scoring: ScoringConfig | None = None,
        num_workers: int | None = None,
        batch_size: int = 32,
    ) -> None:
        self.name = name
        self.taxonomy = taxonomy
        self.config = head
        # Labels are never scored here, so by default their tokenization is not checked.
        self.scorer = LlmScorer(
            lm, tokenizer, template, taxonomy, scoring or ScoringConfig(check_boundaries=False)
        )
        self.num_workers = num_workers  # None: features in-process; n: n Ray Data actors
        self.batch_size = batch_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(head.seed)
            self.head = TwoStageHead(int(lm.config.hidden_size), len(taxonomy))
        self.last_fit: HeadFit | None = None

    def features(self, panel: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``[n, D]`` float32 hidden states, ``[n]`` previous occupation (-1: first year), ``[n]`` target."""
        arrays = panel_arrays(panel, self.taxonomy)
        if self.num_workers is None:
            hidden = self.scorer.hidden_states(self.scorer.encode_panel(panel))
        else:
            from laborlm.llm.distributed import score_panel

            hidden = score_panel(
                panel,
                self._portable(),
                num_workers=self.num_workers,
                batch_size=self.batch_size,
                output="hidden",
            )
        return hidden, arrays.prev, arrays.occ

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Fit the head on ``train`` from its current weights; keep the epoch with the best ``valid``
        perplexity.

        Raises:
            InputDataError: the training panel is empty.
        """
        if train.num_rows == 0:
            raise InputDataError("<panel table>", None, None, "the training panel has no rows")
        cfg = self.config
        x, prev, y = (torch.as_tensor(a) for a in self.features(train))
        self.head.mean.copy_(x.mean(0))
        self.head.scale.copy_(x.std(0, unbiased=False).clamp(min=1e-6))
        held = (
            tuple(torch.as_tensor(a) for a in self.features(valid))
            if valid is not None and valid.num_rows
            else None
        )
        optimizer = torch.optim.AdamW(self.head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        generator = torch.Generator().manual_seed(cfg.seed)
        best_state, best_ppl, best_epoch, since_best, epoch = None, math.inf, 0, 0, 0
        for epoch in range(1, cfg.max_epochs + 1):
            self.head.train()
            order = torch.randperm(len(y), generator=generator)
            for rows in torch.split(order, cfg.batch_size):
                nll = -self.head(x[rows], prev[rows]).gather(-1, y[rows, None]).mean()
                optimizer.zero_grad(set_to_none=True)
                nll.backward()
                optimizer.step()
            if held is None:
                best_epoch = epoch
                continue
            ppl = self._perplexity(*held)
            if ppl < best_ppl:
                best_state = {k: v.detach().clone() for k, v in self.head.state_dict().items()}
                best_ppl, best_epoch, since_best = ppl, epoch, 0
            else:
                since_best += 1
                if cfg.patience is not None and since_best >= cfg.patience:
                    break
        if best_state is not None:
            self.head.load_state_dict(best_state)
        self.last_fit = HeadFit(
            epoch, best_epoch, self._perplexity(x, prev, y), None if held is None else best_ppl
        )
        logger.info(
            "%s: head fitted in %d epochs (best %d): train perplexity %.3f, valid %s",
            self.name,
            epoch,
            best_epoch,
            self.last_fit.train_perplexity,
            "-" if held is None else f"{best_ppl:.3f}",
        )

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` float64 log-probabilities (normalised in float64), rows as in ``panel``."""
        x, prev, _ = self.features(panel)
        self.head.eval()
        with torch.no_grad():
            out: np.ndarray = self.head(
                torch.as_tensor(x), torch.as_tensor(prev), dtype=torch.float64
            ).numpy()
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        save_bundle(
            self,
            path,
            {"kind": self.kind, "head": to_dict(self.config), "scoring": to_dict(self.scorer.config)},
        )
        save_file({k: v.detach().contiguous() for k, v in self.head.state_dict().items()}, path / HEAD_FILE)

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> EmbeddingOccupationModel:
        """Rebuild a saved model (LM, tokenizer, template, taxonomy and the fitted head).

        Raises:
            CheckpointError: not a saved embedding model, or its files disagree with its metadata.
        """
        path = Path(path)
        meta, lm, tokenizer, template, taxonomy = load_bundle(path, cls.kind)
        model = cls(
            lm,
            tokenizer,
            template,
            taxonomy,
            name=meta["name"],
            head=build(EmbeddingHeadConfig, meta["head"], source=str(path / META_FILE)),
            scoring=build(ScoringConfig, meta["scoring"], source=str(path / META_FILE)),
            **kwargs,
        )
        try:
            model.head.load_state_dict(load_file(path / HEAD_FILE))
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: cannot load the head: {exc}") from exc
        return model

    def _perplexity(self, x: torch.Tensor, prev: torch.Tensor, y: torch.Tensor) -> float:
        self.head.eval()
        with torch.no_grad():
            nll = -self.head(x, prev, dtype=torch.float64).gather(-1, y[:, None]).mean()
        return math.exp(float(nll))

    def _portable(self) -> Any:
        """What Ray actors need to compute features: the LM wrapped as a scoring model (no head)."""
        from laborlm.llm.model import LlmOccupationModel

        return LlmOccupationModel(
            self.scorer.model,
            self.scorer.tokenizer,
            self.scorer.template,
            self.taxonomy,
            name=self.name,
            config=self.scorer.config,
        )
