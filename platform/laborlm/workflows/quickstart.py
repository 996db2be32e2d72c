"""The main job on the embedded defaults: ``laborlm quickstart`` (no YAML needed).

The whole LaborLM pipeline, small, on local Ray and a loopback MLflow server that it starts and stops:

1. synthesise a survey (PSID preset) and a resume corpus with their exact oracles; validate both (rejects
   files, row accounting) and describe them beside CAREER's Table 7;
2. render both as LABOR-LLM resume-like texts (Ray Data corpus build);
3. pretrain a tiny Llama-style language model on the resume texts and fine-tune it on the survey texts
   (Ray Train, 2 CPU workers);
4. fit the Markov baselines and CAREER (survey only, and pretrained on resumes then fine-tuned);
5. score every model, the language model before and after fine-tuning included, on the survey's test split
   with the shared harness, against the oracle;
6. register the fine-tuned language model in the MLflow model registry (alias ``candidate``, then
   ``champion``) and write the report.

``--size`` scales the data, the language model and its training steps up together.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from laborlm.readers import RejectWriter, read_panel
from laborlm.stats import CAREER_TABLE7, format_stats, panel_stats

logger = logging.getLogger(__name__)

Size = Literal["tiny", "small", "medium"]


@dataclass(frozen=True)
class SizePreset:
    survey_people: int
    resume_people: int
    model: str  # training.models.SIZES
    pretrain_steps: int
    finetune_steps: int
    career: str  # CAREER architecture in the models registry
    test_people: int | None  # test persons every model is scored on (direct LLM scoring reads all K labels)


# block_size 256 covers a whole PSID career text (~150-250 tokens) so the LM is trained on the contexts it is
# scored on; the model's positions are sized to it.
SIZES: dict[str, SizePreset] = {
    "tiny": SizePreset(3000, 20000, "llama-1m", 300, 150, "career-small", 150),  # ~15 min on 2 cores
    "small": SizePreset(12338, 100000, "llama-10m", 2000, 600, "career-small", 1000),  # hours on CPU
    "medium": SizePreset(12338, 1000000, "llama-50m", 20000, 3000, "career-pretrained", None),  # GPUs
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
    models: tuple[str, ...] = field(default=("markov1", "markov2", "two_stage", "two_stage+pretrain"))
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
    from laborlm.config import apply_overrides, build
    from laborlm.corpus import CorpusConfig, build_corpus
    from laborlm.llm import LlmOccupationModel
    from laborlm.tracking.mlflow_tracker import TrackingConfig
    from laborlm.training import TrainConfig
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

    train_overrides = [
        f"out_dir={out / 'train'}", f"seed={cfg.seed}", f"model.size={size.model}", "block_size=256",
        "micro_batch_size=4", f"strategy.num_workers={cfg.workers}",
        f"pretrain.corpus={corpora['resumes']}", "pretrain.synthesize=null", f"pretrain.max_steps={size.pretrain_steps}",
        f"finetune.corpus={corpora[cfg.survey]}", "finetune.synthesize=null", f"finetune.max_steps={size.finetune_steps}",
        *cfg.train_overrides,
    ]
    if tracking_uri:
        train_overrides.append(f"tracking.tracking_uri={tracking_uri}")
    train_cfg = build(TrainConfig, apply_overrides(TrainConfig, {}, train_overrides), source="quickstart")
    logger.info("[3/%d] language model %s: pretrain on resumes (%d steps), fine-tune on %s (%d steps)", steps,
                size.model, train_cfg.pretrain.max_steps, cfg.survey, train_cfg.finetune.max_steps)
    trained = run_training(train_cfg)
    logger.info("[3/%d] %s", steps, trained.line())

    taxonomy = read_panel(panels[cfg.survey]).taxonomy
    tokenizer = out / "train" / "tokenizer"
    llms = {
        f"LLM {size.model}, pretrained on resumes, not fine-tuned":
            LlmOccupationModel.from_pretrained(trained.phases["pretrain"].init_dir, tokenizer, "labor-llm", taxonomy,
                                               name=f"{size.model}-pretrained"),
        f"LLM {size.model}, fine-tuned on {cfg.survey}":
            LlmOccupationModel.from_pretrained(trained.phases["finetune"].init_dir, tokenizer, "labor-llm", taxonomy,
                                               name=f"{size.model}-finetuned"),
    }

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
        finetuned = list(llms.values())[1]
        saved = out / "models" / "llm-finetuned"
        finetuned.save(saved)
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
        f"Language model: {trained.line()}",
        registered,
        f"MLflow run of the comparison: {result.run_id}; outputs under {out}/",
    ])
    (out / "report.md").write_text(report + "\n")
    return report
