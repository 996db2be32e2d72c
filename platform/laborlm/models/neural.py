"""``NeuralOccupationModel``: every neural architecture behind the ``NextOccupationModel`` interface.

    model = NeuralOccupationModel(NeuralModelConfig("career-small-two_stage", CAREER_SMALL), taxonomy)
    model.fit(train, valid)                 # in-process or Ray Train, per config.fit.num_workers
    log_probs = model.log_probs(test)       # [n_rows, K], rows aligned with the test panel
    h = model.representations(test)         # [n_rows, D], for wage regressions and similar careers
    model.save(path); NeuralOccupationModel.load(path)

Pretrain-then-fine-tune (CAREER's transfer learning): fit a model on resumes and save it; build the survey
model with the same architecture, call ``init_from_pretrained(path)`` and ``fit`` on the survey. ``fit``
always starts from the model's current weights: the seeded random initialisation, or the pretrained ones.

A saved model is a folder: ``model.safetensors`` (weights), ``config.json`` (format version, the resolved
config, taxonomy fingerprint) and ``taxonomy.csv``. Loading reads safetensors and JSON only; nothing is
unpickled.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file

from laborlm.config import build, to_dict
from laborlm.errors import CheckpointError
from laborlm.models.encoding import CareerBatch, encode_panel, iter_batches
from laborlm.models.fitting import FitResult, NeuralModelConfig, fit_network, init_network
from laborlm.models.layers import transfer_state
from laborlm.occupations.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

_FORMAT = "laborlm.neural/1"
_WEIGHTS = "model.safetensors"
_CONFIG = "config.json"
_TAXONOMY = "taxonomy.csv"
PRETRAINING_ABSENT_COVARIATES: tuple[str, ...] = ("gender", "race")  # resumes carry neither (CAREER Table 7)


class NeuralOccupationModel:
    """Regression, bag-of-jobs, NEMO or CAREER; implements ``NextOccupationModel``."""

    def __init__(self, config: NeuralModelConfig, taxonomy: Taxonomy) -> None:
        self.config = config
        self.name = config.name
        self.taxonomy = taxonomy
        self.network = init_network(config, len(taxonomy))
        self.last_fit: FitResult | None = None  # metrics and checkpoint of the latest fit

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Train from the current weights; keep those with the best validation perplexity."""
        result = fit_network(self.config, self.taxonomy, train, valid, self.network.state_dict())
        self.network.load_state_dict(result.best_state)
        self.last_fit = result

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` float64 natural-log probabilities (normalised in float64), rows as in ``panel``."""
        return self._per_row(
            panel, len(self.taxonomy), np.float64, lambda b: self.network(b, dtype=torch.float64)
        )

    def representations(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, D]`` float32 career representation ``h_t`` (the hidden state the head reads) per row."""
        return self._per_row(panel, self.network.dim, np.float32, self.network.representations)

    def _per_row(
        self, panel: pa.Table, width: int, dtype: type[np.floating], fn: Callable[[CareerBatch], torch.Tensor]
    ) -> np.ndarray:
        """Run ``fn`` (``[B, T, width]``) over deterministic batches and scatter real steps to panel rows."""
        encoded = encode_panel(panel, self.taxonomy)
        out = np.empty((encoded.n_rows, width), dtype=dtype)
        was_training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                for batch in iter_batches(encoded, self.config.fit.max_tokens):
                    # Boolean indexing keeps row-major order on both sides: [real steps, width].
                    values = fn(batch)[batch.mask]
                    out[batch.rows[batch.mask].numpy()] = values.numpy()
        finally:
            self.network.train(was_training)
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.network.state_dict().items()}, path / _WEIGHTS
        )
        self.taxonomy.to_csv(path / _TAXONOMY)
        meta = {
            "format": _FORMAT,
            "config": to_dict(self.config),
            "taxonomy": self.taxonomy.name,
            "taxonomy_fingerprint": self.taxonomy.fingerprint(),
        }
        (path / _CONFIG).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, path: Path, taxonomy: Taxonomy | None = None) -> NeuralOccupationModel:
        """Rebuild a saved model.

        Raises:
            CheckpointError: unknown format, or a taxonomy other than the one the model was saved with.
            ConfigError: the saved config does not match the current config classes.
        """
        path = Path(path)
        try:
            meta = json.loads((path / _CONFIG).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a saved neural model: {exc}") from exc
        if meta.get("format") != _FORMAT:
            raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {_FORMAT!r}")
        taxonomy = taxonomy or Taxonomy.from_csv(path / _TAXONOMY)
        if taxonomy.fingerprint() != meta["taxonomy_fingerprint"]:
            raise CheckpointError(
                f"{path}: saved with taxonomy {meta['taxonomy_fingerprint']}, "
                f"loaded with {taxonomy.fingerprint()}"
            )
        model = cls(build(NeuralModelConfig, meta["config"], source=str(path / _CONFIG)), taxonomy)
        model.network.load_state_dict(load_file(path / _WEIGHTS))
        return model

    def init_from_pretrained(
        self,
        path: Path,
        absent_occupations: Sequence[str] | None = None,
        absent_covariates: Sequence[str] = PRETRAINING_ABSENT_COVARIATES,
    ) -> None:
        """Start from a saved model pretrained on other data (resumes), as CAREER's transfer learning does.

        Everything is copied from the pretrained model except what pretraining could not learn, which keeps
        this model's own fresh initialisation: the rows of ``absent_occupations`` (default: the taxonomy's
        special states, which resumes lack) and the embeddings of ``absent_covariates`` (gender, race).

        Raises:
            CheckpointError: the pretrained model has another architecture or taxonomy.
        """
        pretrained = NeuralOccupationModel.load(path)
        if pretrained.config.network != self.config.network:
            raise CheckpointError(
                f"{path}: pretrained architecture {pretrained.config.network} "
                f"differs from {self.config.network}"
            )
        if pretrained.taxonomy != self.taxonomy:
            raise CheckpointError(
                f"{path}: pretrained on taxonomy {pretrained.taxonomy!r}, this model uses {self.taxonomy!r}"
            )
        absent = (
            self.taxonomy.special_indices.tolist()
            if absent_occupations is None
            else [self.taxonomy.index(code) for code in absent_occupations]
        )
        self.network.load_state_dict(
            transfer_state(pretrained.network, self.network, absent, absent_covariates)
        )
        logger.info(
            "%s: initialised from %s; re-initialised %d occupation(s) and covariate(s) %s",
            self.name,
            path,
            len(absent),
            ", ".join(absent_covariates) or "none",
        )
