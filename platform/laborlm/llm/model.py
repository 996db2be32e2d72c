"""``LlmOccupationModel``: a causal language model as a next-occupation model (LABOR-LLM's direct scoring).

    model = LlmOccupationModel.from_pretrained("runs/ft/model", "runs/tokenizer", "labor-llm", taxonomy)
    evaluate_model(model, test)              # the shared harness reads log_probs: renormalised over K labels
    model.score(test).summary()              # paper's raw perplexity, renormalised one, mass outside labels
    model.save(path); LlmOccupationModel.load(path)

``log_probs`` returns the distribution renormalised over the K valid labels, because the harness and every
comparison table need a proper distribution over the taxonomy; ``raw_log_probs`` / ``score`` give the
paper's unnormalised product probabilities and the mass that leaks outside valid titles.

The language model is trained by the training engine (``laborlm.training``), not here: ``fit`` is a no-op,
like the oracle's, so a comparison that calls ``fit`` on every model works unchanged.

A saved model is a folder that reproduces ``log_probs`` on its own: ``model/`` (``save_pretrained``),
``tokenizer/``, ``template.yaml`` (the exact spec, a user template included), ``taxonomy.csv`` and
``laborlm_llm.json`` (format, template name and fingerprint, taxonomy fingerprint, dtype, scoring config).
Loading never downloads and never unpickles.

The model always scores in this process. To batch people over Ray Data actors, the caller wraps it:
``llm.distributed.on_ray_data(model, num_workers=4)`` (the caller, not the model, decides to go distributed,
so this module never imports Ray or ``llm.distributed``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch

from laborlm.config import build, to_dict
from laborlm.corpus.template import Template, load_template
from laborlm.corpus.tokenizer import load_tokenizer
from laborlm.errors import CheckpointError
from laborlm.llm.scoring import LlmScorer, LlmScores, ScoringConfig
from laborlm.occupations.taxonomy import Taxonomy

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

FORMAT = "laborlm.llm/1"
META_FILE = "laborlm_llm.json"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
TEMPLATE_FILE = "template.yaml"
TAXONOMY_FILE = "taxonomy.csv"


class LlmOccupationModel:
    """Direct scoring of every taxonomy label by a causal LM; implements ``NextOccupationModel``."""

    kind = "scoring"

    def __init__(
        self,
        lm: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        template: Template,
        taxonomy: Taxonomy,
        *,
        name: str = "llm",
        config: ScoringConfig | None = None,
    ) -> None:
        self.name = name
        self.taxonomy = taxonomy
        self.scorer = LlmScorer(lm, tokenizer, template, taxonomy, config or ScoringConfig())

    @property
    def lm(self) -> PreTrainedModel:
        return self.scorer.model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.scorer.tokenizer

    @property
    def template(self) -> Template:
        return self.scorer.template

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        tokenizer_dir: str | Path,
        template: str | Path | Template,
        taxonomy: Taxonomy,
        **kwargs: Any,
    ) -> LlmOccupationModel:
        """Wrap a local HF causal LM folder (``save_pretrained``) and tokenizer; never downloads."""
        return cls(
            _load_lm(Path(model_dir), None),
            load_tokenizer(tokenizer_dir),
            _template(template),
            taxonomy,
            **kwargs,
        )

    def fit(self, train: pa.Table, valid: pa.Table | None = None) -> None:
        """Nothing to estimate here: the LM is fine-tuned by ``laborlm.training`` before it is wrapped."""
        logger.debug("%s: fit() is a no-op (the language model is trained by laborlm.training)", self.name)

    def score(self, panel: pa.Table) -> LlmScores:
        """Raw label log-probabilities of every row (panel order) with the observed targets."""
        return self.scorer.score_panel(panel)

    def raw_log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` log p_raw: the paper's product of token probabilities, not renormalised."""
        return self.score(panel).raw

    def log_probs(self, panel: pa.Table) -> np.ndarray:
        """``[n_rows, K]`` float64 log-probabilities renormalised over the K labels, rows as in ``panel``."""
        return self.score(panel).normalized

    def save(self, path: Path) -> None:
        path = Path(path)
        save_bundle(self, path, {"kind": self.kind, "scoring": to_dict(self.scorer.config)})

    @classmethod
    def load(cls, path: Path, **kwargs: Any) -> LlmOccupationModel:
        """Rebuild a saved model.

        Raises:
            CheckpointError: not a saved LLM occupation model, another kind, or a template / taxonomy that no
                longer matches its recorded fingerprint.
        """
        path = Path(path)
        meta, lm, tokenizer, template, taxonomy = load_bundle(path, cls.kind)
        config = build(ScoringConfig, meta["scoring"], source=str(path / META_FILE))
        return cls(lm, tokenizer, template, taxonomy, name=meta["name"], config=config, **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle as config + weights: HF models carry local-function hooks that do not survive pickling
        (``output_hidden_states`` silently breaks), and Ray ships models to actors by pickling."""
        lm = self.lm
        return {
            "name": self.name,
            "config": self.scorer.config,
            "template": self.template,
            "taxonomy": self.taxonomy,
            "tokenizer": self.tokenizer,
            "lm_class": type(lm),
            "lm_config": lm.config,
            "lm_state": {k: v.detach().cpu() for k, v in lm.state_dict().items()},
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        lm = state["lm_class"](state["lm_config"])
        lm.load_state_dict(state["lm_state"])
        lm.eval()
        self.__init__(  # type: ignore[misc]
            lm,
            state["tokenizer"],
            state["template"],
            state["taxonomy"],
            name=state["name"],
            config=state["config"],
        )

    def with_scoring(self, **changes: Any) -> LlmOccupationModel:
        """The same model with other scoring batch sizes (results are unchanged up to float rounding)."""
        return LlmOccupationModel(
            self.lm,
            self.tokenizer,
            self.template,
            self.taxonomy,
            name=self.name,
            config=replace(self.scorer.config, **changes),
        )


# --- the saved folder, shared with the embedding model ---------------------------------------------------


def save_bundle(model: Any, path: Path, extra: dict[str, Any]) -> None:
    """Write the LM, tokenizer, template, taxonomy and metadata of ``model`` (with ``scorer``, ``name``)."""
    scorer: LlmScorer = model.scorer
    path.mkdir(parents=True, exist_ok=True)
    scorer.model.save_pretrained(str(path / MODEL_DIR))
    scorer.tokenizer.save_pretrained(str(path / TOKENIZER_DIR))
    (path / TEMPLATE_FILE).write_text(scorer.template.to_yaml(), encoding="utf-8")
    model.taxonomy.to_csv(path / TAXONOMY_FILE)
    meta = {
        "format": FORMAT,
        "name": model.name,
        "template": scorer.template.name,
        "template_fingerprint": scorer.template.fingerprint(),
        "taxonomy": model.taxonomy.name,
        "taxonomy_fingerprint": model.taxonomy.fingerprint(),
        "dtype": str(next(scorer.model.parameters()).dtype).removeprefix("torch."),
        **extra,
    }
    (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def load_bundle(
    path: Path, kind: str
) -> tuple[dict[str, Any], PreTrainedModel, PreTrainedTokenizerBase, Template, Taxonomy]:
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a saved LLM occupation model: {exc}") from exc
    if meta.get("format") != FORMAT or meta.get("kind") != kind:
        raise CheckpointError(
            f"{path}: format {meta.get('format')!r} kind {meta.get('kind')!r}, "
            f"expected {FORMAT!r} kind {kind!r}"
        )
    template = load_template(path / TEMPLATE_FILE)
    taxonomy = Taxonomy.from_csv(path / TAXONOMY_FILE)
    if template.fingerprint() != meta["template_fingerprint"]:
        raise CheckpointError(
            f"{path}: template.yaml no longer matches fingerprint {meta['template_fingerprint']}"
        )
    if taxonomy.fingerprint() != meta["taxonomy_fingerprint"]:
        raise CheckpointError(
            f"{path}: taxonomy.csv no longer matches fingerprint {meta['taxonomy_fingerprint']}"
        )
    lm = _load_lm(path / MODEL_DIR, getattr(torch, meta["dtype"]))
    return meta, lm, load_tokenizer(path / TOKENIZER_DIR), template, taxonomy


def _load_lm(path: Path, dtype: torch.dtype | None) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    try:
        lm = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype or "auto")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load a causal language model: {exc}") from exc
    lm.eval()  # type: ignore[no-untyped-call]
    return lm


def _template(template: str | Path | Template) -> Template:
    return template if isinstance(template, Template) else load_template(template)
