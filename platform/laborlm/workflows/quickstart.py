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

``--size`` scales the data and training steps up (``small``, ~36 minutes on 2 cores) and the model too
(``medium``, GPUs).

On a user's data (``laborlm quickstart survey_panel=DIR [resume_panel=DIR]``) step 1 reads and checks the
user's canonical panels instead of synthesising (``workflows.panels``), the table's column is the panel's
folder name, the oracle row appears only where the panel carries ``oracle_logp``, and without a resume panel
nothing is pretrained (the LM trains on the survey alone; CAREER's ``+pretrain`` rows are left out). Each step
is a named function (``prepare_data`` ... ``register_finetuned``) and the rows are looked up by their labels.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from laborlm.errors import ConfigError
from laborlm.readers import RejectWriter, read_panel
from laborlm.stats import CAREER_TABLE7, format_stats, panel_stats
from laborlm.training.config import FinetuneConfig, ModelConfig, PhaseConfig, TrainConfig
from laborlm.workflows.panels import (
    SURVEY_PRESETS,
    PreparedPanels,
    panel_problems,
    prepare_panels,
    preset_problems,
)

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

PRETRAINED_SUFFIX = (
    "+pretrain"  # benchmark_careers' name suffix (not imported: that module loads every model)
)
Size = Literal["tiny", "small", "medium"]


@dataclass(frozen=True)
class SizePreset:
    survey_people: int
    resume_people: int
    model: str  # training.models.SIZES
    career: str  # CAREER architecture in the models registry
    test_people: int | None  # test persons every model is scored on


SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(3000, 20000, "llama-1m", "career-small", 150),  # ~9 min on 2 idle cores
    # small: PSID's size in CAREER's Table 7, five times the resumes; the model stays llama-1m, the size that
    # is compute-optimal for half an hour of 2 CPU cores (~80 GFLOP/s measured: C = 6ND ~ 1.4e14 with
    # D ~ 20N gives N ~ 1M), so data and steps grow and the model does not (llama-10m would need ~4 hours)
    "small": SizePreset(12338, 100000, "llama-1m", "career-small", 1000),  # ~36 min on 2 idle cores
    "medium": SizePreset(12338, 1000000, "llama-50m", "career-pretrained", None),  # GPUs
}


def _recipe(
    model: str,
    pretrain_steps: int,
    finetune_steps: int,
    *,
    lr: float,
    pretrain_eval_every: int,
    finetune_eval_every: int,
    finetune_patience: int | None = 4,
) -> TrainConfig:
    """A size's language-model recipe, found by measurement (README "A recipe that converges on 2 CPU cores").

    block_size 256 holds a whole PSID career text (~70-120 tokens with label tokens) and more, so the LM is
    trained on the contexts it is scored on. Time goes to pretraining on resumes (it taught the tiny model
    the most per step: 1,500 resume steps before 500 survey steps gave valid 14.8, against 17.7 for 500 then
    1,000); both phases keep their best model by valid occupation perplexity, and fine-tuning on the small
    survey stops early once it stops improving (it overfits after ~10 epochs). ``small`` runs its survey phase
    to the cap instead (``finetune_patience=None``, still keeping the best model): with seed 1, patience 4
    stopped it at step 2,100 of 3,000, before the cosine schedule annealed, and the LM scored 9.12 on its
    held-out persons against 8.82 run to the cap; with seed 0 it ran to the cap either way.
    """
    common: dict[str, Any] = {
        "lr": lr,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
        "eval_blocks": 64,
        "log_every_steps": 50,
    }
    return TrainConfig(
        model=ModelConfig(size=model),
        block_size=256,
        micro_batch_size=4,
        pretrain=PhaseConfig(
            max_steps=pretrain_steps,
            warmup_steps=50,
            eval_every_steps=pretrain_eval_every,
            checkpoint_every_steps=pretrain_eval_every,
            occupation_eval_people=100,
            **common,
        ),
        finetune=FinetuneConfig(
            max_steps=finetune_steps,
            warmup_steps=20,
            eval_every_steps=finetune_eval_every,
            checkpoint_every_steps=5 * finetune_eval_every,
            occupation_eval_people=200,
            early_stopping_patience=finetune_patience,
            **common,
        ),
    )


RECIPES: dict[str, TrainConfig] = {
    "tiny": _recipe("llama-1m", 1500, 600, lr=1e-2, pretrain_eval_every=250, finetune_eval_every=50),
    "small": _recipe(
        "llama-1m",
        8000,
        3000,
        lr=1e-2,
        pretrain_eval_every=500,
        finetune_eval_every=100,
        finetune_patience=None,
    ),
    "medium": _recipe("llama-50m", 20000, 5000, lr=6e-4, pretrain_eval_every=1000, finetune_eval_every=250),
}


@dataclass(frozen=True)
class QuickstartConfig:
    out_dir: Path = Path("runs/quickstart")  # everything the run writes goes under here
    size: Size = "tiny"  # scales data, language model and steps together (SIZES)
    seed: int = 0  # one seed for data, splits and training
    survey: str = "psid"  # survey preset: psid, nlsy79 or nlsy97 (unless survey_panel is given)
    survey_panel: Path | None = (
        None  # a user's canonical panel instead of the preset (laborlm data import folder)
    )
    resume_panel: Path | None = (
        None  # a user's resume panel to pretrain on; with survey_panel and without it,
    )
    #   nothing is pretrained (survey only)
    survey_people: int | None = None  # null: the size's (synthetic survey only)
    resume_people: int | None = None  # null: the size's (synthetic resumes only)
    test_people: int | None = None  # null: the size's; 0: the whole test split
    workers: int = 2  # Ray Data / Ray Train CPU workers
    train_overrides: tuple[
        str, ...
    ] = ()  # dotted overrides of the training config, e.g. "finetune.lora=true"
    mlflow_server: bool = True  # start (and stop) a loopback MLflow server over <out_dir>/mlflow.db
    tracking_uri: str | None = (
        None  # use this tracking server instead of starting one (else MLFLOW_TRACKING_URI)
    )
    register_as: str | None = "laborlm-quickstart"  # registered model name; null: do not register
    models: tuple[str, ...] = field(
        default=("unigram", "markov1", "markov2", "two_stage", "two_stage+pretrain")
    )
    # registry names for the occupation-model rows; "two_stage" / "two_stage+pretrain" mean the size's CAREER
    embedding_rows: bool = True  # the embedding model and its random-LM control (two head fits, ~1 min)

    def __post_init__(self) -> None:
        # Names versus paths, and that the paths are panels: checked when the config is loaded, so before the
        # command line starts Ray or the quickstart creates anything (workflows.panels).
        problems = preset_problems("survey", self.survey, known=SURVEY_PRESETS, path_key="survey_panel")
        problems += panel_problems(
            "survey_panel",
            self.survey_panel,
            preset_hint="for a synthetic survey give survey=NAME and leave survey_panel unset",
        )
        problems += panel_problems(
            "resume_panel",
            self.resume_panel,
            preset_hint="leave resume_panel unset to pretrain on the synthetic resumes",
        )
        for override in self.train_overrides:
            if "=" not in override:
                problems.append(f"train_overrides: expected key=value, got {override!r}")
        if problems:
            raise ConfigError(problems)

    @property
    def preset(self) -> SizePreset:
        return SIZES[self.size]

    @property
    def pretrains(self) -> bool:
        """Whether anything is pretrained on resumes: the synthetic ones, unless the survey is the user's."""
        return self.survey_panel is None or self.resume_panel is not None


@dataclass(frozen=True)
class QuickstartData:
    """Step 1's output: the panels, and their CAREER Table 7 rows by name."""

    panels: PreparedPanels
    stats: dict[str, Any]  # panel name -> panel_stats

    @property
    def survey(self) -> str:
        """The survey's name: the preset, or the user's panel's folder name (its column in the table)."""
        return self.panels.survey_name


STEPS = 6  # for the log lines "[step/STEPS]"


def run_quickstart(cfg: QuickstartConfig) -> str:
    """Run the pipeline and return the Markdown report it also writes to ``out_dir/report.md``.

    A user's panels are read and checked (splits, taxonomies) before the MLflow server starts or anything is
    written.
    """
    from laborlm.tracking.server import mlflow_server

    out = cfg.out_dir.resolve()
    panels = prepare_data(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    tracking_uri = cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")  # a cluster's shared server
    if tracking_uri or not cfg.mlflow_server:
        return _run(cfg, out, panels, tracking_uri, tracking_uri or f"sqlite:///{out / 'mlflow.db'}")
    with mlflow_server(out) as server:
        report = _run(cfg, out, panels, server.uri, server.backend_uri)
    return report + (
        f"\n\nThe MLflow server used for this run is stopped; browse the runs and the registry with\n"
        f"  mlflow ui --backend-store-uri {server.backend_uri} --artifacts-destination {server.artifacts}"
    )


def _run(
    cfg: QuickstartConfig, out: Path, panels: PreparedPanels, tracking_uri: str | None, store_uri: str
) -> str:
    """The pipeline; ``tracking_uri`` is where runs go now, ``store_uri`` where users find them afterwards."""
    data = describe_data(panels, out)
    corpora = build_corpora(cfg, data, out)
    trained, train_cfg = train_language_model(cfg, data, corpora, out, tracking_uri)
    llms = language_model_rows(
        cfg, trained.phases["finetune"].init_dir, out / "train" / "tokenizer", panels, train_cfg
    )
    result, test_people = compare_models(cfg, data, llms, out, tracking_uri)
    finetuned = llms[finetuned_row(train_cfg.model.size or cfg.preset.model, data.survey)]
    registered = register_finetuned(cfg, finetuned, result.run_id, out, tracking_uri, store_uri)
    source = "your panel" if panels.user_survey else "synthetic"
    scored = "the test split" if test_people is None else f"the first {test_people} test persons"
    report = "\n\n".join(
        [
            f"# LaborLM quickstart ({data.survey}, {source}; size {cfg.size}, seed {cfg.seed})",
            "## Data (CAREER Table 7 rows)",
            format_stats(data.stats, reference=CAREER_TABLE7),
            f"## Next-occupation perplexity on {scored}",
            result.markdown_path.read_text().strip(),
            NOT_FINE_TUNED_NOTE if cfg.pretrains else SURVEY_ONLY_NOTE,
            f"Language model: {trained.line()}",
            registered,
            f"MLflow run of the comparison: {result.run_id}; outputs under {out}/",
        ]
    )
    (out / "report.md").write_text(report + "\n")
    return report


def prepare_data(cfg: QuickstartConfig, out: Path) -> PreparedPanels:
    """Step 1a: the survey and resume panels: generated from the presets, or the user's, read and checked."""
    size = cfg.preset
    if cfg.survey_panel is None:
        logger.info(
            "[1/%d] synthetic %s (%d people) and resumes (%d) (Ray Data, %d workers)",
            STEPS,
            cfg.survey,
            cfg.survey_people or size.survey_people,
            cfg.resume_people or size.resume_people,
            cfg.workers,
        )
    return prepare_panels(
        survey=cfg.survey,
        survey_panel=cfg.survey_panel,
        survey_people=cfg.survey_people or size.survey_people,
        resumes=cfg.pretrains,
        resume_panel=cfg.resume_panel,
        resume_people=cfg.resume_people or size.resume_people,
        seed=cfg.seed,
        out=out,
        workers=cfg.workers,
        # CAREER's "+pretrain" rows read the resumes in the survey's codes
        same_codes=cfg.pretrains and any(m.endswith(PRETRAINED_SUFFIX) for m in cfg.models),
    )


def describe_data(panels: PreparedPanels, out: Path) -> QuickstartData:
    """Step 1b: validate each panel with a rejects file (row accounting) and describe it (CAREER Table 7)."""
    stats = {}
    named = {panels.survey_name: panels.survey} | ({"resumes": panels.resumes} if panels.resumes else {})
    for name, path in named.items():
        with RejectWriter(out / f"{name}.rejects.jsonl") as rejects:
            read = read_panel(path, rejects=rejects)
        c = read.counts
        logger.info(
            "[1/%d] validated %s: rows in %d = kept %d + rejected %d",
            STEPS,
            name,
            c.rows_in,
            c.rows_kept,
            c.rows_rejected,
        )
        stats[name] = panel_stats(read.table, read.taxonomy)
    return QuickstartData(panels, stats)


def build_corpora(cfg: QuickstartConfig, data: QuickstartData, out: Path) -> dict[str, Path]:
    """Step 2: LABOR-LLM resume-like texts of each panel, keyed ``survey`` and (when pretraining) ``resumes``."""
    from laborlm.corpus import CorpusConfig, build_corpus

    inputs = {"survey": (data.survey, data.panels.survey)}
    if data.panels.resumes is not None:
        inputs["resumes"] = ("resumes", data.panels.resumes)
    corpora = {}
    for key, (name, panel) in inputs.items():
        logger.info("[2/%d] resume-like texts of %s (labor-llm template)", STEPS, name)
        corpora[key] = out / "corpus" / name
        build_corpus(
            CorpusConfig(inputs=(panel,), out_dir=corpora[key], split=data.panels.split),
            num_workers=cfg.workers,
        )
    return corpora


def train_language_model(
    cfg: QuickstartConfig, data: QuickstartData, corpora: dict[str, Path], out: Path, tracking_uri: str | None
) -> tuple[Any, TrainConfig]:
    """Step 3: pretrain on the resumes (when there are any) and fine-tune on the survey (Ray Train)."""
    from laborlm.training.workflow import run_training

    train_cfg = training_config(cfg, corpora.get("resumes"), corpora["survey"], out / "train", tracking_uri)
    pretrain = (
        f"pretrain on resumes ({train_cfg.pretrain.max_steps} steps), " if train_cfg.pretrain.enabled else ""
    )
    logger.info(
        "[3/%d] language model %s: %sfine-tune on %s (up to %d steps, early stopping on valid occupation "
        "perplexity)",
        STEPS,
        train_cfg.model.size,
        pretrain,
        data.survey,
        train_cfg.finetune.max_steps,
    )
    trained = run_training(train_cfg)
    logger.info("[3/%d] %s", STEPS, trained.line())
    return trained, train_cfg


def compare_models(
    cfg: QuickstartConfig,
    data: QuickstartData,
    llms: dict[str, NextOccupationModel],
    out: Path,
    tracking_uri: str | None,
) -> tuple[Any, int | None]:
    """Steps 4-5: the occupation models fitted on the survey's train split, every row scored on test.

    Returns the comparison (``BenchmarkResult``) and the number of test persons scored (None: all).
    """
    from laborlm.tracking.mlflow_tracker import TrackingConfig
    from laborlm.workflows.benchmark_careers import CareersBenchmarkConfig, run_careers_benchmark

    size, panels = cfg.preset, data.panels
    models = tuple(
        f"{size.career}-{m}" if m.startswith(("two_stage", "one_stage")) else m for m in cfg.models
    )
    if panels.resumes is None and any(m.endswith(PRETRAINED_SUFFIX) for m in models):
        logger.info(
            "[4-5/%d] no resume panel: the %s rows are left out (give resume_panel=DIR)",
            STEPS,
            ", ".join(m for m in models if m.endswith(PRETRAINED_SUFFIX)),
        )
        models = tuple(m for m in models if not m.endswith(PRETRAINED_SUFFIX))
    logger.info(
        "[4-5/%d] baselines and CAREER on %s train; every model scored on test%s",
        STEPS,
        data.survey,
        "" if panels.user_survey else " against the oracle",
    )
    test_people = size.test_people if cfg.test_people is None else (cfg.test_people or None)
    user = panels.user_survey
    careers = CareersBenchmarkConfig(
        presets=() if user else (cfg.survey,),
        panels=(panels.survey,) if user else (),
        resumes=panels.resumes if panels.user_resumes else None,
        survey_people=cfg.survey_people or size.survey_people,
        resume_people=cfg.resume_people or size.resume_people,
        data_seed=panels.split.seed,  # the split the corpora were built with
        seeds=(cfg.seed,),
        models=models,
        out_dir=out,
        workers=cfg.workers,
        test_people=test_people,
        tracking=TrackingConfig(tracking_uri=tracking_uri),
    )
    return run_careers_benchmark(careers, extra_models=llms), test_people


def register_finetuned(
    cfg: QuickstartConfig,
    model: NextOccupationModel,
    run_id: str | None,
    out: Path,
    tracking_uri: str | None,
    store_uri: str,
) -> str:
    """Step 6: the fine-tuned language model into the MLflow registry (``champion``); the report's line."""
    if not cfg.register_as:
        return ""
    from laborlm.serving.registry import promote, register_model

    logger.info("[6/%d] registering the fine-tuned language model as %s", STEPS, cfg.register_as)
    saved = out / "models" / "llm-finetuned"
    model.save(saved)  # an LlmOccupationModel, or its Ray Data wrapper
    uri = tracking_uri or f"sqlite:///{out / 'mlflow.db'}"
    version = register_model(saved, cfg.register_as, tracking_uri=uri, run_id=run_id)
    promote(cfg.register_as, version, alias="champion", tracking_uri=uri)
    return (
        f"Registered model: `models:/{cfg.register_as}@champion` (version {version}); try\n"
        f"`laborlm predict --model models:/{cfg.register_as}@champion --input careers.jsonl "
        f"--tracking-uri {store_uri}`"
    )


NOT_FINE_TUNED_NOTE = (
    "The resume-pretrained language model before fine-tuning is not scored here: resumes contain none of the "
    "survey's special states (unemployed, out of labor force, in school: about a quarter of PSID person-years) "
    "nor its dataset tag, so it puts almost no mass on them; `laborlm benchmark llm` reports that arm."
)


SURVEY_ONLY_NOTE = (
    "Nothing was pretrained: with a panel of your own the language model and CAREER pretrain only on a resume "
    "panel in the survey's codes (resume_panel=DIR); without one, the language model is trained on the survey "
    "alone and CAREER's +pretrain rows are left out."
)


def finetuned_row(model: str, survey: str) -> str:
    """The comparison row of the fine-tuned language model (the registered one): its size, the survey's name."""
    return f"LLM {model}, fine-tuned on {survey}"


def training_config(
    cfg: QuickstartConfig, resumes: Path | None, survey: Path, out_dir: Path, tracking_uri: str | None
) -> TrainConfig:
    """The size's language-model recipe (``RECIPES``) on the quickstart's corpora, then ``train_overrides``.

    Without a resume corpus the pretraining phase is off and fine-tuning starts from the initialised model.
    """
    from laborlm.config import apply_overrides, build, to_dict
    from laborlm.tracking.mlflow_tracker import TrackingConfig

    recipe = RECIPES[cfg.size]
    base = dataclasses.replace(
        recipe,
        out_dir=out_dir,
        seed=cfg.seed,
        strategy=dataclasses.replace(recipe.strategy, num_workers=cfg.workers),
        pretrain=dataclasses.replace(
            recipe.pretrain, corpus=resumes, synthesize=None, enabled=resumes is not None
        ),
        finetune=dataclasses.replace(
            recipe.finetune,
            corpus=survey,
            synthesize=None,
            init="previous" if resumes is not None else "model",
        ),
        tracking=TrackingConfig(tracking_uri=tracking_uri) if tracking_uri else recipe.tracking,
    )
    if not cfg.train_overrides:
        return base
    return build(
        TrainConfig,
        apply_overrides(TrainConfig, to_dict(base), list(cfg.train_overrides)),
        source="quickstart train_overrides",
    )


def language_model_rows(
    cfg: QuickstartConfig,
    finetuned: Path,
    tokenizer: Path,
    panels: PreparedPanels,
    train_cfg: TrainConfig,
) -> dict[str, NextOccupationModel]:
    """The language-model rows: direct scoring of the fine-tuned LM, and (``embedding_rows``) the embedding
    model on its hidden states beside the same head on a randomly initialised LM of the same shape, the
    control that shows what the LM itself contributes (issue 14: a two-stage head alone does much of it).

    Scoring runs on ``cfg.workers`` Ray Data actors with one torch thread each.
    """
    from laborlm.llm import EmbeddingOccupationModel, LlmOccupationModel
    from laborlm.llm.distributed import on_ray_data
    from laborlm.splits import select_split
    from laborlm.workflows.fit import random_lm_like

    model, survey, read = train_cfg.model.size or cfg.preset.model, panels.survey_name, panels.survey_read
    direct = LlmOccupationModel.from_pretrained(
        finetuned, tokenizer, "labor-llm", read.taxonomy, name=f"{model}-finetuned"
    )
    rows: dict[str, NextOccupationModel] = {
        finetuned_row(model, survey): on_ray_data(direct, num_workers=cfg.workers)
    }
    if not cfg.embedding_rows:
        return rows
    train, valid = (select_split(read.table, s, panels.split) for s in ("train", "valid"))
    random_lm = random_lm_like(
        direct.lm, train_cfg.seed
    )  # `laborlm fit embedding ... lm_init=random`'s control
    for row, lm in (
        (f"LLM {model} embedding + two-stage head, fine-tuned on {survey}", direct.lm),
        (f"Control: the same head on a random {model} (no language model)", random_lm),
    ):
        logger.info("[4-5/%d] %s: fitting the head on %s train", STEPS, row, survey)
        embedding = EmbeddingOccupationModel(
            lm, direct.tokenizer, direct.template, read.taxonomy, num_workers=cfg.workers
        )
        embedding.fit(train, valid)
        rows[row] = embedding
    return rows
