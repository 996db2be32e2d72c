"""LABOR-LLM's comparisons as one command, in the same table as CAREER, the baselines and the oracle.

    laborlm benchmark llm --config jobs/benchmark_llm.yaml
    laborlm benchmark llm arms=fine-tuned,not-fine-tuned,codes pretrain_steps=100
    laborlm benchmark llm survey_panel=runs/nlsw resume_panel=runs/resumes     # a user's panels (workflows.panels)

Each *arm* is one language model trained by the training engine and scored by direct scoring of every
label (``LlmOccupationModel``) on the survey's test persons, beside the occupation models of
``benchmark careers`` fitted on the same split. The built-in arms are the paper's comparisons:

* ``fine-tuned`` vs ``not-fine-tuned``: the same resume-pretrained model with and without fine-tuning on the
  survey (no hub weights exist here, so "off the shelf" means pretrained on resumes only);
* ``codes``: numeric occupation codes instead of English titles (the ``codes`` template);
* ``multi-token-titles``: titles left as the BPE cuts them (~6 tokens each), what an off-the-shelf LLM
  reads (LABOR-LLM's setting), against the default one added token per label;
* ``survey-only`` vs ``pooled``: no pretraining at all, or pretraining on resumes pooled with the other surveys;
* ``larger-less-data``: a 10x larger model pretrained on a fifth of the resumes, against ``fine-tuned``'s
  smaller model with all of them.

Every arm trains with the quickstart's recipe (``workflows.quickstart.RECIPES["tiny"]``: steps, lr, schedule,
best model and early stopping on valid occupation perplexity) unless ``pretrain_steps`` / ``finetune_steps``
or ``train_overrides`` say otherwise. Arms that share a pretraining (template, model, data, tokenizer) train it
once; both phases always run, and a not-fine-tuned arm reads phase (a)'s model. Everything is deterministic in
``seed``.

On a user's panels (``survey_panel``, ``resume_panel``: canonical panel folders) every arm is fine-tuned and
scored on the user's survey, and the resume arms pretrain on the user's resume panel (``larger-less-data``
keeps its fifth with ``pretrain.data_fraction``); without a resume panel only ``survey-only`` runs.
``pooled`` pools the synthetic surveys and needs the synthetic survey. The oracle row appears only where the
survey carries ``oracle_logp``. Names versus paths, and the arms that need resumes, are checked when the config
is loaded; the panels' splits and codes before anything is trained.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laborlm.errors import ConfigError
from laborlm.tracking.mlflow_tracker import TrackingConfig
from laborlm.workflows.panels import (
    RESUMES,
    SURVEY_PRESETS,
    PreparedPanels,
    generate_preset_panel,
    panel_problems,
    prepare_panels,
    preset_problems,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arm:
    description: str
    template: str = "labor-llm"
    model: str = "llama-1m"
    pretrain_on: tuple[str, ...] = ("resumes",)  # presets pooled for pretraining; () = no pretraining
    resume_fraction: float = 1.0  # share of the resume corpus used (data scale)
    finetune: bool = True  # fine-tune on the survey after pretraining
    label_tokens: bool = True  # one added token per label; false: multi-token titles (training.TrainConfig)


ARMS: dict[str, Arm] = {
    "fine-tuned": Arm("titles, pretrained on resumes, fine-tuned"),
    "not-fine-tuned": Arm("titles, pretrained on resumes, not fine-tuned", finetune=False),
    "codes": Arm("numeric codes, pretrained on resumes, fine-tuned", template="codes"),
    "multi-token-titles": Arm(
        "multi-token titles (no label tokens), pretrained on resumes, fine-tuned", label_tokens=False
    ),
    "survey-only": Arm("titles, survey only (no pretraining)", pretrain_on=()),
    "pooled": Arm(
        "titles, pretrained on resumes + NLSY79 + NLSY97, fine-tuned",
        pretrain_on=("resumes", "nlsy79", "nlsy97"),
    ),
    "larger-less-data": Arm(
        "titles, 10x larger model, 1/5 of the resumes, fine-tuned", model="llama-10m", resume_fraction=0.2
    ),
}


@dataclass(frozen=True)
class LlmBenchmarkConfig:
    survey: str = "psid"  # the synthetic survey every arm is fine-tuned and scored on (unless survey_panel)
    survey_panel: Path | None = None  # a user's canonical panel instead (laborlm data import folder)
    resume_panel: Path | None = None  # a user's resume panel for the arms that pretrain on resumes
    survey_people: int = 3000
    resume_people: int = 20000
    other_survey_people: int = 3000  # people of each other survey in the pooled arm
    seed: int = 0
    arms: tuple[str, ...] = tuple(ARMS)
    careers_models: tuple[str, ...] = (
        "unigram",
        "markov1",
        "career-small-two_stage",
        "career-small-two_stage+pretrain",
    )
    pretrain_steps: int | None = None  # null: the tiny recipe's (1,500)
    finetune_steps: int | None = None  # null: the tiny recipe's (up to 600, early stopping)
    block_size: int = (
        256  # covers a whole survey career text, so models are scored on contexts they trained on
    )
    train_overrides: tuple[str, ...] = ()  # applied to every arm's training config
    test_people: int | None = 150  # test persons every model is scored on; None: the whole test split
    workers: int = 2
    out_dir: Path = Path("runs/benchmark_llm")
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ConfigError(f"arms: unknown {', '.join(unknown)}; known: {', '.join(ARMS)}")
        if not self.arms:
            raise ConfigError("arms: at least one arm")
        problems = preset_problems("survey", self.survey, known=SURVEY_PRESETS, path_key="survey_panel")
        problems += panel_problems(
            "survey_panel",
            self.survey_panel,
            preset_hint="for a synthetic survey give survey=NAME and leave survey_panel unset",
        )
        problems += panel_problems(
            "resume_panel",
            self.resume_panel,
            preset_hint=f"leave resume_panel unset to pretrain on the synthetic {RESUMES} (resume_people=N)",
        )
        if self.survey_panel is not None:
            pooled = [a for a in self.arms if set(ARMS[a].pretrain_on) - {RESUMES}]
            if pooled:
                problems.append(
                    f"arms: {', '.join(pooled)} pool the synthetic surveys into pretraining; with a "
                    "survey_panel leave them out"
                )
            if self.resume_panel is None:
                pretraining = [a for a in self.arms if ARMS[a].pretrain_on and a not in pooled]
                if pretraining:
                    problems.append(
                        f"arms: {', '.join(pretraining)} pretrain on resumes; with a survey_panel give "
                        "resume_panel=DIR (in any taxonomy) or arms=survey-only"
                    )
                career = [m for m in self.careers_models if m.endswith("+pretrain")]
                if career:
                    problems.append(
                        f"careers_models: {', '.join(career)} pretrain on resumes in the survey's codes; "
                        "with a survey_panel give resume_panel=DIR or leave them out"
                    )
        if problems:
            raise ConfigError(problems)

    @property
    def needs_resumes(self) -> bool:
        """Whether an arm pretrains on resumes (or a CAREER row on the user's resume panel)."""
        return any(RESUMES in ARMS[a].pretrain_on for a in self.arms) or (
            self.resume_panel is not None and any(m.endswith("+pretrain") for m in self.careers_models)
        )


def run_llm_benchmark(cfg: LlmBenchmarkConfig) -> Any:
    """Train every arm's language model, then score them with the CAREER models in one table."""
    from laborlm.llm import LlmOccupationModel
    from laborlm.llm.distributed import on_ray_data
    from laborlm.workflows.benchmark_careers import CareersBenchmarkConfig, run_careers_benchmark

    out = cfg.out_dir.resolve()
    # A user's panels are read and checked (splits; the resumes' codes where CAREER pretrains) before any work.
    # Synthetic resumes are generated per arm (the fraction arm has its own), so not here.
    panels = prepare_panels(
        survey=cfg.survey,
        survey_panel=cfg.survey_panel,
        survey_people=cfg.survey_people,
        resumes=cfg.resume_panel is not None and cfg.needs_resumes,
        resume_panel=cfg.resume_panel,
        resume_people=cfg.resume_people,
        seed=cfg.seed,
        out=out,
        workers=cfg.workers,
        same_codes=any(m.endswith("+pretrain") for m in cfg.careers_models),
    )
    out.mkdir(parents=True, exist_ok=True)
    taxonomy = panels.taxonomy
    trained: dict[tuple[Any, ...], Any] = {}
    models = {}
    for name in cfg.arms:
        arm = ARMS[name]
        key = (arm.template, arm.model, arm.pretrain_on, arm.resume_fraction, arm.label_tokens)
        if key not in trained:
            logger.info("arm %s: training %s (%s)", name, arm.model, arm.description)
            trained[key] = _train(cfg, arm, panels, out / "arms" / name)
        result, folder = trained[key]
        phase = "finetune" if arm.finetune or not arm.pretrain_on else "pretrain"
        models[f"LLM {arm.model}: {arm.description}"] = on_ray_data(
            LlmOccupationModel.from_pretrained(
                result.phases[phase].init_dir, folder / "tokenizer", arm.template, taxonomy, name=name
            ),
            num_workers=cfg.workers,
        )
    user = panels.user_survey
    careers = CareersBenchmarkConfig(
        presets=() if user else (cfg.survey,),
        panels=(panels.survey,) if user else (),
        resumes=panels.resumes if panels.user_resumes else None,
        survey_people=cfg.survey_people,
        resume_people=cfg.resume_people,
        data_seed=panels.split.seed,  # the split the arms' corpora were built with
        seeds=(cfg.seed,),
        models=cfg.careers_models,
        out_dir=out,
        workers=cfg.workers,
        test_people=cfg.test_people,
        tracking=cfg.tracking,
    )
    return run_careers_benchmark(careers, extra_models=models)


def _train(cfg: LlmBenchmarkConfig, arm: Arm, panels: PreparedPanels, folder: Path) -> tuple[Any, Path]:
    """Build the arm's corpora (template, pooled inputs) and run its pretrain and fine-tune phases.

    The synthetic resumes of a fraction arm are generated at that size; a user's resume panel is read whole
    and the phase keeps the arm's share of its train people (``pretrain.data_fraction``).
    """
    import dataclasses

    from laborlm.config import apply_overrides, build, to_dict
    from laborlm.corpus import CorpusConfig, build_corpus
    from laborlm.training import TrainConfig
    from laborlm.training.workflow import run_training
    from laborlm.workflows.quickstart import RECIPES

    out = cfg.out_dir.resolve()

    def corpus(inputs: list[Path], tag: str) -> Path:
        target = out / "corpus" / f"{arm.template}-{tag}"
        build_corpus(
            CorpusConfig(inputs=tuple(inputs), out_dir=target, template=arm.template, split=panels.split),
            num_workers=cfg.workers,
        )
        return target

    recipe = RECIPES["tiny"]
    pretrain_corpus: Path | None = None
    if arm.pretrain_on:
        inputs = []
        for preset in arm.pretrain_on:
            if preset == RESUMES and panels.user_resumes:
                assert panels.resumes is not None
                inputs.append(panels.resumes)
                continue
            people = (
                max(10, round(cfg.resume_people * arm.resume_fraction))
                if preset == RESUMES
                else cfg.other_survey_people
            )
            inputs.append(generate_preset_panel(preset, people, cfg.seed, out, cfg.workers))
        sized = not panels.user_resumes and arm.resume_fraction != 1  # the fraction is in the generated data
        tag = "+".join(f"{p}{arm.resume_fraction if p == RESUMES and sized else ''}" for p in arm.pretrain_on)
        pretrain_corpus = corpus(inputs, tag)  # both phases run: a not-fine-tuned arm reads (a)'s model
    # Multi-token labels are scored over a trie (~K x 5 positions per person-year): fewer valid persons.
    eval_people = (recipe.pretrain.occupation_eval_people, recipe.finetune.occupation_eval_people)
    if not arm.label_tokens:
        eval_people = (25, 50)
    pretrain = dataclasses.replace(
        recipe.pretrain,
        synthesize=None,
        corpus=pretrain_corpus,
        enabled=pretrain_corpus is not None,
        max_steps=cfg.pretrain_steps or recipe.pretrain.max_steps,
        occupation_eval_people=eval_people[0],
        data_fraction=arm.resume_fraction if panels.user_resumes else 1.0,
    )
    finetune = dataclasses.replace(
        recipe.finetune,
        synthesize=None,
        corpus=corpus([panels.survey], panels.survey_name),
        init="previous" if pretrain_corpus is not None else "model",
        max_steps=cfg.finetune_steps or recipe.finetune.max_steps,
        occupation_eval_people=eval_people[1],
    )
    tracking = cfg.tracking if cfg.tracking.tracking_uri or not cfg.tracking.enabled else recipe.tracking
    train_cfg = dataclasses.replace(
        recipe,
        out_dir=folder,
        seed=cfg.seed,
        model=dataclasses.replace(recipe.model, size=arm.model),
        block_size=cfg.block_size,
        tokenizer_label_tokens=arm.label_tokens,
        strategy=dataclasses.replace(recipe.strategy, num_workers=cfg.workers),
        pretrain=pretrain,
        finetune=finetune,
        tracking=tracking,
    )
    if cfg.train_overrides:
        train_cfg = build(
            TrainConfig,
            apply_overrides(TrainConfig, to_dict(train_cfg), list(cfg.train_overrides)),
            source="benchmark llm train_overrides",
        )
    return run_training(train_cfg), folder
