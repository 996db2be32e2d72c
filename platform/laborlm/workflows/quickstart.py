"""The main job on the embedded defaults: ``laborlm quickstart`` (no YAML needed).

The whole LaborLM pipeline, small, on local Ray and a loopback MLflow server that it starts and stops:

1. synthesise a survey (PSID preset) and a resume corpus with their exact oracles; validate both (rejects
   files, row accounting) and describe them beside CAREER's Table 7;
2. render both as LABOR-LLM resume-like texts (Ray Data corpus build);
3. pretrain a tiny Llama-style language model on the resume texts and fine-tune it on the survey texts
   (Ray Train, 2 CPU workers; ``RECIPES``: label tokens, best model by valid occupation perplexity);
4. fit the unigram floor, the Markov baselines and CAREER (survey only, and pretrained on resumes then
   fine-tuned), and the embedding model on the fine-tuned LM beside the same head on a random LM (control);
5. score every model on the survey's test persons with the shared harness, against the oracle (language
   models on Ray Data actors);
6. register the fine-tuned language model in the MLflow model registry (alias ``candidate``, then
   ``champion``) and write the report.

``--size`` scales the data, the language model and its training steps up together.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from laborlm.readers import RejectWriter, read_panel
from laborlm.stats import CAREER_TABLE7, format_stats, panel_stats
from laborlm.training.config import FinetuneConfig, ModelConfig, PhaseConfig, TrainConfig

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

Size = Literal["tiny", "small", "medium"]


@dataclass(frozen=True)
class SizePreset:
    survey_people: int
    resume_people: int
    model: str  # training.models.SIZES
    career: str  # CAREER architecture in the models registry
    test_people: int | None  # test persons every model is scored on


SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(3000, 20000, "llama-1m", "career-small", 150),  # ~15 min on 2 cores
    "small": SizePreset(12338, 100000, "llama-10m", "career-small", 1000),  # about an hour on 2 cores
    "medium": SizePreset(12338, 1000000, "llama-50m", "career-pretrained", None),  # GPUs
}


def _recipe(model: str, pretrain_steps: int, finetune_steps: int, *, lr: float, pretrain_eval_every: int,
            finetune_eval_every: int) -> TrainConfig:
    """A size's language-model recipe, found by measurement (README "A recipe that converges on 2 CPU cores").

    block_size 256 holds a whole PSID career text (~70-120 tokens with label tokens) and more, so the LM is
    trained on the contexts it is scored on. Time goes to pretraining on resumes (it taught the tiny model
    the most per step: 1,500 resume steps before 500 survey steps gave valid 14.8, against 17.7 for 500 then
    1,000); both phases keep their best model by valid occupation perplexity, and fine-tuning on the small
    survey stops early once it stops improving (it overfits after ~10 epochs).
    """
    common: dict[str, Any] = {"lr": lr, "schedule": "cosine", "min_lr_ratio": 0.1, "eval_blocks": 64, "log_every_steps": 50}
    return TrainConfig(
        model=ModelConfig(size=model), block_size=256, micro_batch_size=4,
        pretrain=PhaseConfig(max_steps=pretrain_steps, warmup_steps=50, eval_every_steps=pretrain_eval_every,
                             checkpoint_every_steps=pretrain_eval_every, occupation_eval_people=100, **common),
        finetune=FinetuneConfig(max_steps=finetune_steps, warmup_steps=20, eval_every_steps=finetune_eval_every,
                                checkpoint_every_steps=5 * finetune_eval_every, occupation_eval_people=200,
                                early_stopping_patience=4, **common),
    )


RECIPES: dict[str, TrainConfig] = {
    "tiny": _recipe("llama-1m", 1500, 600, lr=1e-2, pretrain_eval_every=250, finetune_eval_every=50),
    "small": _recipe("llama-10m", 4000, 1500, lr=3e-3, pretrain_eval_every=500, finetune_eval_every=100),
    "medium": _recipe("llama-50m", 20000, 5000, lr=6e-4, pretrain_eval_every=1000, finetune_eval_every=250),
}


@dataclass(frozen=True)
class QuickstartConfig:
    out_dir: Path = Path("runs/quickstart")  # everything the run writes goes under here
    size: Size = "tiny"  # scales data, language model and steps together (SIZES)
    seed: int = 0  # one seed for data, splits and training
    survey: str = "psid"  # survey preset: psid, nlsy79 or nlsy97
    survey_people: int | None = None  # null: the size's
    resume_people: int | None = None  # null: the size's
    test_people: int | None = None  # null: the size's; 0: the whole test split
    workers: int = 2  # Ray Data / Ray Train CPU workers
    train_overrides: tuple[str, ...] = ()  # dotted overrides of the training config, e.g. "finetune.lora=true"
    mlflow_server: bool = True  # start (and stop) a loopback MLflow server over <out_dir>/mlflow.db
    tracking_uri: str | None = None  # use this tracking server instead of starting one (else MLFLOW_TRACKING_URI)
    register_as: str | None = "laborlm-quickstart"  # registered model name; null: do not register
    models: tuple[str, ...] = field(default=("unigram", "markov1", "markov2", "two_stage", "two_stage+pretrain"))
    embedding_rows: bool = True  # the embedding model and its random-LM control (two head fits, ~1 min)
    # registry names for the occupation-model rows; "two_stage" / "two_stage+pretrain" mean the size's CAREER

    @property
    def preset(self) -> SizePreset:
        return SIZES[self.size]


def run_quickstart(cfg: QuickstartConfig) -> str:
    """Run the pipeline and return the Markdown report it also writes to ``out_dir/report.md``."""
    from laborlm.tracking.server import mlflow_server

    out = cfg.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    tracking_uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")  # a cluster's shared server
    if tracking_uri or not cfg.mlflow_server:
        return _run(cfg, out, tracking_uri, tracking_uri or f"sqlite:///{out / 'mlflow.db'}")
    with mlflow_server(out) as server:
        report = _run(cfg, out, server.uri, server.backend_uri)
    return report + (
        f"\n\nThe MLflow server used for this run is stopped; browse the runs and the registry with\n"
        f"  mlflow ui --backend-store-uri {server.backend_uri} --artifacts-destination {server.artifacts}"
    )


def _run(cfg: QuickstartConfig, out: Path, tracking_uri: str | None, store_uri: str) -> str:
    """The pipeline; ``tracking_uri`` is where runs go now, ``store_uri`` where users find them afterwards."""
    from laborlm.corpus import CorpusConfig, build_corpus
    from laborlm.tracking.mlflow_tracker import TrackingConfig
    from laborlm.training.workflow import run_training
    from laborlm.workflows.benchmark_careers import (
        CareersBenchmarkConfig,
        generate_preset_panel,
        run_careers_benchmark,
    )

    size = cfg.preset
    people = {cfg.survey: cfg.survey_people or size.survey_people, "resumes": cfg.resume_people or size.resume_people}
    steps = 6

    panels, stats = {}, {}
    for preset, n in people.items():
        logger.info("[1/%d] synthetic %s: %d people (Ray Data, %d workers)", steps, preset, n, cfg.workers)
        panels[preset] = generate_preset_panel(preset, n, cfg.seed, out, cfg.workers)
        with RejectWriter(out / f"{preset}.rejects.jsonl") as rejects:
            read = read_panel(panels[preset], rejects=rejects)
        c = read.counts
        logger.info("[1/%d] validated %s: rows in %d = kept %d + rejected %d", steps, preset, c.rows_in, c.rows_kept,
                    c.rows_rejected)
        stats[preset] = panel_stats(read.table, read.taxonomy)

    corpora = {}
    for preset, panel in panels.items():
        logger.info("[2/%d] resume-like texts of %s (labor-llm template)", steps, preset)
        corpora[preset] = out / "corpus" / preset
        build_corpus(CorpusConfig(inputs=(panel,), out_dir=corpora[preset]), num_workers=cfg.workers)

    train_cfg = training_config(cfg, corpora["resumes"], corpora[cfg.survey], out / "train", tracking_uri)
    logger.info("[3/%d] language model %s: pretrain on resumes (%d steps), fine-tune on %s (up to %d steps, "
                "early stopping on valid occupation perplexity)", steps, size.model, train_cfg.pretrain.max_steps,
                cfg.survey, train_cfg.finetune.max_steps)
    trained = run_training(train_cfg)
    logger.info("[3/%d] %s", steps, trained.line())

    read = read_panel(panels[cfg.survey])
    llms = language_model_rows(cfg, trained.phases["finetune"].init_dir, out / "train" / "tokenizer", read, train_cfg)

    logger.info("[4-5/%d] baselines and CAREER on %s train; every model scored on test against the oracle", steps,
                cfg.survey)
    models = tuple(f"{size.career}-{m}" if m.startswith(("two_stage", "one_stage")) else m for m in cfg.models)
    test_people = size.test_people if cfg.test_people is None else (cfg.test_people or None)
    careers = CareersBenchmarkConfig(
        presets=(cfg.survey,), survey_people=people[cfg.survey], resume_people=people["resumes"], data_seed=cfg.seed,
        seeds=(cfg.seed,), models=models, out_dir=out, workers=cfg.workers, test_people=test_people,
        tracking=TrackingConfig(tracking_uri=tracking_uri),
    )
    result = run_careers_benchmark(careers, extra_models=llms)

    registered = ""
    if cfg.register_as:
        from laborlm.serving.registry import promote, register_model

        logger.info("[6/%d] registering the fine-tuned language model as %s", steps, cfg.register_as)
        saved = out / "models" / "llm-finetuned"
        llms[finetuned_row(cfg)].save(saved)
        uri = tracking_uri or f"sqlite:///{out / 'mlflow.db'}"
        version = register_model(saved, cfg.register_as, tracking_uri=uri, run_id=result.run_id)
        promote(cfg.register_as, version, alias="champion", tracking_uri=uri)
        registered = (f"Registered model: `models:/{cfg.register_as}@champion` (version {version}); try\n"
                      f"`laborlm predict --model models:/{cfg.register_as}@champion --input careers.jsonl "
                      f"--tracking-uri {store_uri}`")

    report = "\n\n".join([
        f"# LaborLM quickstart ({cfg.survey}, size {cfg.size}, seed {cfg.seed})",
        "## Data (CAREER Table 7 rows)",
        format_stats(stats, reference=CAREER_TABLE7),
        f"## Next-occupation perplexity on {'the test split' if test_people is None else f'the first {test_people} test persons'}",
        result.markdown_path.read_text().strip(),
        NOT_FINE_TUNED_NOTE,
        f"Language model: {trained.line()}",
        registered,
        f"MLflow run of the comparison: {result.run_id}; outputs under {out}/",
    ])
    (out / "report.md").write_text(report + "\n")
    return report


NOT_FINE_TUNED_NOTE = (
    "The resume-pretrained language model before fine-tuning is not scored here: resumes contain none of the "
    "survey's special states (unemployed, out of labor force, in school: about a quarter of PSID person-years) "
    "nor its dataset tag, so it puts almost no mass on them; `laborlm benchmark llm` reports that arm."
)


def finetuned_row(cfg: QuickstartConfig) -> str:
    """The comparison row of the fine-tuned language model (the registered one)."""
    return f"LLM {cfg.preset.model}, fine-tuned on {cfg.survey}"


def training_config(cfg: QuickstartConfig, resumes: Path, survey: Path, out_dir: Path,
                    tracking_uri: str | None) -> TrainConfig:
    """The size's language-model recipe (``RECIPES``) on the quickstart's corpora, then ``train_overrides``."""
    from laborlm.config import apply_overrides, build, to_dict
    from laborlm.tracking.mlflow_tracker import TrackingConfig

    recipe = RECIPES[cfg.size]
    base = dataclasses.replace(
        recipe, out_dir=out_dir, seed=cfg.seed,
        strategy=dataclasses.replace(recipe.strategy, num_workers=cfg.workers),
        pretrain=dataclasses.replace(recipe.pretrain, corpus=resumes, synthesize=None),
        finetune=dataclasses.replace(recipe.finetune, corpus=survey, synthesize=None),
        tracking=TrackingConfig(tracking_uri=tracking_uri) if tracking_uri else recipe.tracking,
    )
    if not cfg.train_overrides:
        return base
    return build(TrainConfig, apply_overrides(TrainConfig, to_dict(base), list(cfg.train_overrides)),
                 source="quickstart train_overrides")


def language_model_rows(cfg: QuickstartConfig, finetuned: Path, tokenizer: Path, read: Any,
                        train_cfg: TrainConfig) -> dict[str, NextOccupationModel]:
    """The language-model rows: direct scoring of the fine-tuned LM, and (``embedding_rows``) the embedding
    model on its hidden states beside the same head on a randomly initialised LM of the same shape, the
    control that shows what the LM itself contributes (issue 14: a two-stage head alone does much of it).

    Scoring runs on ``cfg.workers`` Ray Data actors with one torch thread each.
    """
    from laborlm.corpus.tokenizer import load_tokenizer
    from laborlm.llm import EmbeddingOccupationModel, LlmOccupationModel
    from laborlm.llm.distributed import on_ray_data
    from laborlm.splits import SplitConfig, select_split
    from laborlm.training.loop import seed_for
    from laborlm.training.models import build_model

    model = cfg.preset.model
    direct = LlmOccupationModel.from_pretrained(finetuned, tokenizer, "labor-llm", read.taxonomy,
                                                name=f"{model}-finetuned")
    rows: dict[str, NextOccupationModel] = {finetuned_row(cfg): on_ray_data(direct, num_workers=cfg.workers)}
    if not cfg.embedding_rows:
        return rows
    split = SplitConfig(seed=cfg.seed)
    train, valid = (select_split(read.table, s, split) for s in ("train", "valid"))
    random_lm = build_model(train_cfg.model, load_tokenizer(tokenizer), block_size=train_cfg.block_size,
                            seed=seed_for(train_cfg.seed, 0))
    for row, lm in ((f"LLM {model} embedding + two-stage head, fine-tuned on {cfg.survey}", direct.lm),
                    (f"Control: the same head on a random {model} (no language model)", random_lm)):
        logger.info("[4-5/6] %s: fitting the head on %s train", row, cfg.survey)
        embedding = EmbeddingOccupationModel(lm, direct.tokenizer, direct.template, read.taxonomy,
                                             num_workers=cfg.workers)
        embedding.fit(train, valid)
        rows[row] = embedding
    return rows
