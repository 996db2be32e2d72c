"""Fit one registry model on a user's panel and save it as a folder every model command takes.

    laborlm fit unigram --panel runs/nlsw --out runs/nlsw-models/unigram
    laborlm fit career-small-two_stage --panel runs/nlsw --out runs/nlsw-models/career \\
        --pretrain-panel runs/resumes fit.max_epochs=10 seed=1

The model is fitted on the panel's train split (the person-level 70/10/20 split of ``split_seed``, or the
panel's own ``split`` column) with the valid split for early stopping and best-checkpoint selection, through
the same code as ``laborlm benchmark careers`` (``models.registry.create_model`` / ``fit_config``, the one
training loop of ``models.fitting``: in-process, or Ray Train workers with ``fit.num_workers``). With
``pretrain_panel`` a neural model (CAREER) is first trained on that resume panel (its own train/valid split)
and fine-tuned on the survey from those weights, as the benchmark's ``+pretrain`` rows are; the two panels
must share one taxonomy.

``embedding`` is the embedding model (``llm.embedding``): a two-stage head fitted on the hidden states of a
trained language model ``lm`` (a ``laborlm train`` ``<phase>/model`` folder, or a saved LLM scoring model) at
each prediction point; ``lm_init=random`` fits the same head on a randomly initialised LM of the same shape,
the control that shows what the language model itself contributes (report the two side by side):

    laborlm fit embedding --panel runs/nlsw --out runs/nlsw-models/embedding lm=runs/nlsw-lm-s0/finetune/model
    laborlm fit embedding --panel runs/nlsw --out runs/nlsw-models/embedding-control \
        lm=runs/nlsw-lm-s0/finetune/model lm_init=random

``out`` becomes the saved model folder itself (``laborlm evaluate --model OUT``, ``predict``, ``registry
register``, ``analyze models=OUT``) plus ``fit.json`` (the resolved config, person-years, time) and
``metrics-valid.json`` (the harness's metrics on the valid split). Everything that can be checked is checked
(config, panels, splits, taxonomies, output folder) before an MLflow run is created.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from laborlm import jsonsafe
from laborlm.config import config_hash, flatten, to_dict
from laborlm.errors import ConfigError, InputDataError
from laborlm.evaluation.harness import evaluate_model
from laborlm.evaluation.metrics import Metrics
from laborlm.models.neural import NeuralOccupationModel
from laborlm.models.registry import (
    REGISTRY,
    FitOverrides,
    create_model,
    fit_config,
    is_counted,
    taxonomy_difference,
)
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.splits import SplitConfig, select_split
from laborlm.tracking.mlflow_tracker import MlflowTracker, TrackingConfig
from laborlm.tracking.tracker import NullTracker, Tracker

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

FIT_RECORD = "fit.json"
VALID_METRICS = "metrics-valid.json"
EMBEDDING = "embedding"  # the embedding model: a head on a trained language model's hidden states (needs lm)


@dataclass(frozen=True)
class PretrainSettings:
    """Pretraining on the resume panel and the fine-tuning after it (the benchmark's ``+pretrain`` settings)."""

    lr: float = 2e-3  # resumes pretraining (CAREER: 5e-4 over 85k steps of 16k tokens)
    max_epochs: int = 8
    max_tokens: int = 2000  # bigger batches for the usually much bigger resume panel
    finetune_lr: float = 5e-4  # fine-tuning the pretrained model on the panel (CAREER: 1e-4)


@dataclass(frozen=True)
class FitJobConfig:
    model: str  # a registry name (unigram, markov1, career-small-two_stage, ...: laborlm.models.registry), or
    #   "embedding" (the head on a language model's hidden states; needs lm)
    panel: Path  # the panel to fit on (a folder from `laborlm data import`, Parquet/CSV, CAREER files)
    out: Path  # the saved model folder to write
    pretrain_panel: Path | None = None  # resumes to pretrain a neural model on first; None: no pretraining
    lm: Path | None = None  # model "embedding": the language model folder (laborlm train's <phase>/model)
    lm_init: Literal["trained", "random"] = (
        "trained"  # "random": the control, the head on a random LM of lm's shape
    )
    seed: int = 0  # initialisation, batch order and dropout of neural models
    split_seed: int = 0  # person-level 70/10/20 split (a panel's own split column wins)
    fit: FitOverrides = field(default_factory=FitOverrides)  # neural training on top of registry defaults
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        problems = []
        if self.model == EMBEDDING:
            if self.lm is None:
                problems.append(
                    "lm: the embedding model needs the language model whose hidden states it reads: "
                    "lm=DIR (a `laborlm train` <phase>/model folder)"
                )
            if self.pretrain_panel is not None:
                problems.append(
                    "pretrain_panel: the embedding model's language model is trained by `laborlm "
                    "train`; only its head is fitted here"
                )
        elif self.lm is not None or self.lm_init != "trained":
            problems.append(
                f"lm, lm_init: only for the embedding model (model=embedding), not {self.model!r}"
            )
        if self.model != EMBEDDING and self.model not in REGISTRY:
            problems.append(f"model: unknown model {self.model!r}; known: {', '.join(REGISTRY)}, {EMBEDDING}")
        elif self.model != EMBEDDING and self.pretrain_panel is not None and is_counted(self.model):
            problems.append(
                f"pretrain_panel: {self.model!r} is counted, not trained: nothing to pretrain "
                "(pretraining is for the neural models, e.g. career-small-two_stage)"
            )
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class FitJobResult:
    out: Path  # the saved model folder
    model: str
    valid: Metrics | None  # None when the panel has no valid persons
    train_person_years: int
    seconds: float
    run_id: str | None

    def line(self) -> str:
        valid = (
            f"valid perplexity {self.valid.perplexity:.3f} on {self.valid.person_years:,} person-years"
            if self.valid is not None
            else "no valid split"
        )
        return (
            f"{self.model} fitted on {self.train_person_years:,} train person-years in {self.seconds:.1f} s; "
            f"{valid}; saved to {self.out}"
        )


@dataclass(frozen=True)
class _Inputs:
    taxonomy: Taxonomy
    train: pa.Table
    valid: pa.Table | None
    resumes: pa.Table | None
    embedding: NextOccupationModel | None = (
        None  # model "embedding": the model to fit (its LM loaded, checked)
    )


def _prepare(cfg: FitJobConfig) -> _Inputs:
    """Read and check everything the fit needs; raises before anything is written or logged."""
    if cfg.out.exists() and not cfg.out.is_dir():
        raise ConfigError(f"out: {cfg.out} is a file; give a folder for the saved model")
    split = SplitConfig(seed=cfg.split_seed)
    read = read_panel(cfg.panel)
    train = select_split(read.table, "train", split)
    valid = select_split(read.table, "valid", split)
    if train.num_rows == 0:
        raise InputDataError(
            str(cfg.panel),
            None,
            "split",
            f"no person in the train split (of {read.table.num_rows} person-years; split seed {cfg.split_seed})",
        )
    if valid.num_rows == 0:
        logger.warning(
            "%s: no person in the valid split; %s keeps its last weights instead of the best",
            cfg.panel,
            cfg.model,
        )
    resumes = None
    if cfg.pretrain_panel is not None:
        pre = read_panel(cfg.pretrain_panel)
        diff = taxonomy_difference(
            read.taxonomy, pre.taxonomy, f"panel {cfg.panel}", f"pretrain panel {cfg.pretrain_panel}"
        )
        if diff is not None:
            raise ConfigError(f"pretrain_panel: the taxonomies must agree: {diff}")
        if pre.taxonomy != read.taxonomy:
            # The same codes with other titles or groups: CAREER reads codes only, so score the resumes in the
            # panel's taxonomy, which the fine-tuned model keeps.
            pre = read_panel(cfg.pretrain_panel, taxonomy=read.taxonomy)
        resumes = pre.table
        if select_split(resumes, "train", split).num_rows == 0:
            raise InputDataError(str(cfg.pretrain_panel), None, "split", "no person in the train split")
    embedding = _embedding_model(cfg, read.taxonomy) if cfg.model == EMBEDDING else None
    return _Inputs(read.taxonomy, train, valid if valid.num_rows else None, resumes, embedding)


def _embedding_model(cfg: FitJobConfig, taxonomy: Taxonomy) -> NextOccupationModel:
    """The embedding model on ``cfg.lm`` (or, ``lm_init=random``, on a random LM of its shape), head unfitted.

    Raises:
        ConfigError: ``lm`` is not a language model folder, or its occupation codes are not the panel's.
    """
    from laborlm.errors import CheckpointError
    from laborlm.llm import EmbeddingOccupationModel, LlmOccupationModel
    from laborlm.llm.embedding import EmbeddingHeadConfig
    from laborlm.models.registry import load_model

    assert cfg.lm is not None  # checked by the config
    try:
        scorer = load_model(cfg.lm)
    except CheckpointError as exc:
        raise ConfigError(f"lm: {exc}") from exc
    if not isinstance(scorer, LlmOccupationModel):
        raise ConfigError(
            f"lm: {cfg.lm} holds a {type(scorer).__name__}, not a language model; give a `laborlm "
            "train` <phase>/model folder"
        )
    diff = taxonomy_difference(taxonomy, scorer.taxonomy, f"panel {cfg.panel}", f"lm {cfg.lm}")
    if diff is not None:
        raise ConfigError(f"lm: the language model's occupation codes must be the panel's: {diff}")
    lm = scorer.lm if cfg.lm_init == "trained" else random_lm_like(scorer.lm, cfg.seed)
    name = f"embedding-{Path(cfg.lm).parent.parent.name or 'lm'}" + (
        "-random-lm" if cfg.lm_init == "random" else ""
    )
    # The LM's own taxonomy (the same codes, checked above): the template writes the titles it was trained on.
    return EmbeddingOccupationModel(
        lm,
        scorer.tokenizer,
        scorer.template,
        scorer.taxonomy,
        name=name,
        head=EmbeddingHeadConfig(seed=cfg.seed),
    )


def random_lm_like(lm: PreTrainedModel, seed: int) -> PreTrainedModel:
    """A randomly initialised causal LM of ``lm``'s architecture and vocabulary (the embedding model's control).

    The same head on its hidden states measures what the head and the template alone achieve, so the gap to
    the trained LM's row is what the language model contributes (issue 14). Deterministic in ``seed``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(lm.config)  # type: ignore[no-untyped-call]
    return model.eval()  # type: ignore[no-any-return]


def _pretrained(cfg: FitJobConfig, inputs: _Inputs, folder: Path) -> Path:
    """Train the model on the resume panel (its own train / valid split) and save it into ``folder``."""
    assert inputs.resumes is not None
    split = SplitConfig(seed=cfg.split_seed)
    p = cfg.pretrain
    fit = fit_config(cfg.model, cfg.fit, lr=p.lr, epochs=p.max_epochs, max_tokens=p.max_tokens)
    model = create_model(cfg.model, inputs.taxonomy, fit=fit, seed=cfg.seed)
    train, valid = (select_split(inputs.resumes, s, split) for s in ("train", "valid"))
    logger.info("pretraining %s (seed %d) on %d resume person-years", cfg.model, cfg.seed, train.num_rows)
    model.fit(train, valid if valid.num_rows else None)
    model.save(folder)
    return folder


def _tracker(cfg: FitJobConfig) -> Tracker:
    if not cfg.tracking.enabled:
        return NullTracker()
    # The store goes beside the model folder, not into it: models fitted side by side share one store, and
    # the folder registers (`laborlm registry register`) without a database inside.
    return MlflowTracker(
        cfg.tracking,
        run_name=f"fit-{cfg.model}-s{cfg.seed}-{config_hash(cfg, 6)}",
        run_dir=cfg.out.resolve().parent,
        tags={"laborlm.kind": "fit"},
    )


def run_fit(cfg: FitJobConfig) -> FitJobResult:
    """Fit ``cfg.model`` on the panel's train split (valid for early stopping) and save it into ``cfg.out``.

    Raises:
        ConfigError: a bad output folder, or a pretraining panel whose taxonomy differs (naming the codes).
        InputDataError: an unreadable panel, or no person in its train split.
    """
    inputs = _prepare(cfg)
    started = time.monotonic()
    cfg.out.mkdir(parents=True, exist_ok=True)
    tracker = _tracker(cfg)
    try:
        tracker.log_params({k: v for k, v in flatten(cfg).items() if not k.startswith("tracking.")})
        finetune_lr = cfg.pretrain.finetune_lr if cfg.pretrain_panel is not None else None
        model = inputs.embedding or create_model(
            cfg.model, inputs.taxonomy, fit=fit_config(cfg.model, cfg.fit, lr=finetune_lr), seed=cfg.seed
        )
        with tempfile.TemporaryDirectory(prefix="laborlm-pretrained-") as tmp:
            if cfg.pretrain_panel is not None:
                assert isinstance(model, NeuralOccupationModel)  # counted models were refused by the config
                model.init_from_pretrained(_pretrained(cfg, inputs, Path(tmp) / "model"))
            model.fit(inputs.train, inputs.valid)
        valid = evaluate_model(model, inputs.valid) if inputs.valid is not None else None
        if valid is not None and math.isnan(valid.perplexity):
            raise InputDataError(
                str(cfg.panel), None, None, f"{cfg.model} gives NaN probabilities on the valid split"
            )
        model.save(cfg.out)
        seconds = time.monotonic() - started
        record: dict[str, Any] = {
            "model": cfg.model,
            "config": to_dict(cfg),
            "train_person_years": inputs.train.num_rows,
            "valid_person_years": inputs.valid.num_rows if inputs.valid is not None else 0,
            "pretrain_person_years": inputs.resumes.num_rows if inputs.resumes is not None else None,
            "seconds": round(seconds, 3),
            "mlflow_run_id": getattr(tracker, "run_id", None),
        }
        (cfg.out / FIT_RECORD).write_text(jsonsafe.dumps(record, indent=2) + "\n")
        tracker.log_artifact(cfg.out / FIT_RECORD)
        if valid is not None:
            (cfg.out / VALID_METRICS).write_text(jsonsafe.dumps(valid.to_json(), indent=2) + "\n")
            tracker.log_metrics(valid.flat("valid"))
            tracker.log_artifact(cfg.out / VALID_METRICS)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    result = FitJobResult(
        cfg.out, cfg.model, valid, inputs.train.num_rows, seconds, getattr(tracker, "run_id", None)
    )
    logger.info("%s", result.line())
    return result
