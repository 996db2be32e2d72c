"""CAREER's comparison (Figure 2a, Tables 4, 5 and 8) on the synthetic surveys, against the exact oracle.

    laborlm benchmark careers --preset psid --preset nlsy79          # the quick configuration
    laborlm benchmark careers --config jobs/benchmark_careers_full.yaml

For each survey preset: generate the survey (and, for the pretrained CAREER, the resume corpus) once with
``data_seed``; split persons 70/10/20; for each training seed fit every model on train with valid for early
stopping, score it on test with the shared harness, save it and its ``metrics.json``. The pretrained CAREER
is first trained on the resume corpus (special states and gender/race absent there), then fine-tuned on the
survey from that checkpoint with those parameters freshly initialised, as the paper does (pretraining runs
once, with the first seed; each seed fine-tunes from it). The table reports
mean ± sample standard deviation over seeds (the data stay fixed; seeds change initialisation and batch
order, as in the paper). Markov chains and the oracle are deterministic (± 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from laborlm import jsonsafe, schema
from laborlm.baselines.base import NextOccupationModel
from laborlm.config import apply_overrides, build, config_hash, flatten, to_dict
from laborlm.errors import ConfigError
from laborlm.evaluation.compare import ComparisonTable
from laborlm.evaluation.harness import evaluate_model
from laborlm.evaluation.metrics import Metrics
from laborlm.models.neural import NeuralOccupationModel
from laborlm.models.registry import REGISTRY, FitOverrides, create_model, fit_config, is_counted
from laborlm.readers import read_panel
from laborlm.splits import SplitConfig, select_split
from laborlm.tracking.mlflow_tracker import MlflowTracker, TrackingConfig
from laborlm.tracking.tracker import NullTracker, Tracker

logger = logging.getLogger(__name__)

PRETRAINED_SUFFIX = "+pretrain"
# Row labels in the paper's words (Figure 2a and Table 8).
LABELS = {
    "oracle": "Oracle (exact DGP)",
    "unigram": "Unigram (occupation frequencies)",
    "markov1": "Markov chain, order 1",
    "markov2": "Markov chain, order 2",
    "regression-one_stage": "Markov regression",
    "regression-two_stage": "Markov regression (two-stage)",
    "bag-of-jobs-one_stage": "Bag-of-jobs",
    "bag-of-jobs-two_stage": "Bag-of-jobs (two-stage)",
    "nemo-one_stage": "NEMO",
    "nemo-two_stage": "NEMO (two-stage)",
}


def label(name: str) -> str:
    base, pretrained = (name[: -len(PRETRAINED_SUFFIX)], True) if name.endswith(PRETRAINED_SUFFIX) else (name, False)
    if base.startswith("career-"):
        arch = base.split("-")[1]
        text = f"CAREER-{arch} ({'two-stage' if base.endswith('two_stage') else 'vanilla'}{' + pretrain' if pretrained else ''})"
        return text
    return LABELS.get(base, base) + (" + pretrain" if pretrained else "")


@dataclass(frozen=True)
class CareersBenchmarkConfig:
    presets: tuple[str, ...] = ("psid",)  # survey presets, one table column each
    survey_people: int | None = 3000  # people per survey; None: the preset's full size (~9-12k)
    resume_people: int = 20000  # resume corpus for the pretrained CAREER
    data_seed: int = 0  # the generated data and the person split
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds
    models: tuple[str, ...] = (
        "markov1",
        "markov2",
        "regression-one_stage",
        "regression-two_stage",
        "bag-of-jobs-one_stage",
        "bag-of-jobs-two_stage",
        "nemo-one_stage",
        "nemo-two_stage",
        "career-small-one_stage",
        "career-small-two_stage",
        "career-small-two_stage+pretrain",
    )  # registry names; "<name>+pretrain" = pretrain on resumes, then fine-tune
    pretrain_lr: float = 2e-3  # resumes pretraining (CAREER: 5e-4 over 85k steps of 16k tokens)
    pretrain_max_tokens: int = 2000  # bigger batches for the much bigger resume corpus
    pretrain_epochs: int = 8
    finetune_lr: float = 5e-4  # fine-tuning a pretrained model (CAREER: 1e-4 over 5k steps)
    fit: FitOverrides = field(default_factory=FitOverrides)
    out_dir: Path = Path("runs/benchmark_careers")
    workers: int = 2  # Ray Data workers for data generation
    test_people: int | None = None  # score on the first N test persons (by id) only; None: the whole test split.
    #   Every model is scored on the same persons; a cap keeps direct LLM scoring (every label) quick on CPU.
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        problems = []
        for name in self.models:
            base = name.removesuffix(PRETRAINED_SUFFIX)
            if base not in REGISTRY:
                problems.append(f"models: unknown model {name!r}; known: {', '.join(REGISTRY)}")
            elif name.endswith(PRETRAINED_SUFFIX) and is_counted(base):
                problems.append(f"models: {name!r}: unigram and Markov models are counted, not pretrained")
        if not self.seeds:
            problems.append("seeds: at least one seed")
        if problems:
            raise ConfigError(problems)


@dataclass
class BenchmarkResult:
    table: ComparisonTable
    metrics: dict[str, dict[str, list[dict[str, Any]]]]  # preset -> model -> per-seed Metrics.to_json()
    run_id: str | None
    markdown_path: Path
    json_path: Path


def generate_preset_panel(preset: str, people: int | None, seed: int, out: Path, workers: int = 0) -> Path:
    """The synthetic panel of ``preset`` under ``out/data/<preset>-<config hash>``; reused when already there.

    Generation is deterministic in (preset, people, seed), so every workflow that asks for the same panel (the
    quickstart and the benchmarks) shares one folder and one person split.
    """
    from laborlm.synthetic import SynthConfig, generate_panel, load_preset

    overrides = [f"seed={seed}"] + ([f"people={people}"] if people is not None else [])
    synth = build(SynthConfig, apply_overrides(SynthConfig, to_dict(load_preset(preset)), overrides))
    folder = out / "data" / f"{preset}-{config_hash(synth, 8)}"
    if not (folder / "synth.yaml").exists():
        generate_panel(synth, folder, num_workers=workers or None)
    return folder


def _generate(preset: str, people: int | None, cfg: CareersBenchmarkConfig, out: Path) -> Path:
    return generate_preset_panel(preset, people, cfg.data_seed, out, cfg.workers)


def _pretrain(name: str, cfg: CareersBenchmarkConfig, resumes: Path, out: Path) -> Path:
    """Train ``name`` on the resume corpus once (first seed); every seed fine-tunes from it. Reused if saved."""
    seed = cfg.seeds[0]
    folder = out / "pretrained" / f"{name}-s{seed}-{config_hash(cfg, 6)}"
    if (folder / "config.json").exists():
        return folder
    read = read_panel(resumes)
    split = SplitConfig(seed=cfg.data_seed)
    fit = fit_config(name, cfg.fit, lr=cfg.pretrain_lr, epochs=cfg.pretrain_epochs, max_tokens=cfg.pretrain_max_tokens)
    model = create_model(name, read.taxonomy, fit=fit, seed=seed)
    logger.info("pretraining %s (seed %d) on %d resume person-years", name, seed, read.table.num_rows)
    model.fit(select_split(read.table, "train", split), select_split(read.table, "valid", split))
    model.save(folder)
    return folder


def _tracker(cfg: CareersBenchmarkConfig) -> Tracker:
    if not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(cfg.tracking, run_name=f"benchmark-careers-{config_hash(cfg, 6)}", run_dir=cfg.out_dir)


def run_careers_benchmark(
    cfg: CareersBenchmarkConfig, extra_models: Mapping[str, NextOccupationModel] | None = None
) -> BenchmarkResult:
    """Fit and score every model on every preset for every seed; write and log the comparison table.

    Args:
        extra_models: already-trained models (row label -> model, e.g. fine-tuned language models) scored on
            each preset's test split by the same harness and placed in the same table; they are not refitted.
    """
    from laborlm.synthetic.oracle import OracleModel

    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tracker = _tracker(cfg)
    tracker.log_params(flatten(cfg))
    table = ComparisonTable()
    all_metrics: dict[str, dict[str, list[dict[str, Any]]]] = {}
    split = SplitConfig(seed=cfg.data_seed)
    needs_resumes = any(m.endswith(PRETRAINED_SUFFIX) for m in cfg.models)
    resumes = _generate("resumes", cfg.resume_people, cfg, out) if needs_resumes else None
    started = time.monotonic()
    for preset in cfg.presets:
        panel_dir = _generate(preset, cfg.survey_people, cfg, out)
        read = read_panel(panel_dir)
        train, valid, test = (select_split(read.table, s, split) for s in ("train", "valid", "test"))
        if cfg.test_people is not None:
            test = first_people(test, cfg.test_people)
        logger.info("%s: %d train / %d valid / %d test person-years", preset, train.num_rows, valid.num_rows, test.num_rows)
        per_model: dict[str, list[dict[str, Any]]] = {}
        oracle = evaluate_model(OracleModel.from_panel(panel_dir), test)
        table.add(label("oracle"), preset, oracle.perplexity)
        per_model["oracle"] = [oracle.to_json()]
        for row, extra in (extra_models or {}).items():
            metrics = evaluate_model(extra, test, read.taxonomy)
            table.add(row, preset, metrics.perplexity)
            per_model[row] = [metrics.to_json()]
            tracker.log_metrics({f"{preset}/{row}/{k}": v for k, v in metrics.flat().items()})
        for name in cfg.models:
            base = name.removesuffix(PRETRAINED_SUFFIX)
            deterministic = is_counted(base)
            for seed in cfg.seeds[:1] if deterministic else cfg.seeds:
                metrics = _fit_and_score(name, base, seed, cfg, read.taxonomy, train, valid, test, resumes, out / preset)
                table.add(label(name), preset, metrics.perplexity)
                per_model.setdefault(name, []).append(metrics.to_json())
                tracker.log_metrics({f"{preset}/{name}/s{seed}/{k}": v for k, v in metrics.flat().items()})
        all_metrics[preset] = per_model
    md = "\n\n".join([table.to_markdown(), _transition_table(all_metrics), f"_{time.monotonic() - started:.0f} s on this machine; config {config_hash(cfg, 6)}_"])
    md_path, json_path = out / "comparison.md", out / "comparison.json"
    md_path.write_text(md + "\n")
    json_path.write_text(jsonsafe.dumps({"config": to_dict(cfg), "table": table.to_json(), "metrics": all_metrics}, indent=2, default=str))
    tracker.log_artifact(md_path)
    tracker.log_artifact(json_path)
    tracker.finish()
    return BenchmarkResult(table, all_metrics, getattr(tracker, "run_id", None), md_path, json_path)


def first_people(panel: pa.Table, n: int) -> pa.Table:
    """The rows of the first ``n`` persons by id: a deterministic subset that every model is scored on."""
    keep = sorted(set(panel.column(schema.PERSON_ID).to_pylist()))[:n]
    return panel.filter(pc.is_in(panel.column(schema.PERSON_ID), value_set=pa.array(keep, pa.string())))


def _fit_and_score(
    name: str, base: str, seed: int, cfg: CareersBenchmarkConfig, taxonomy: Any, train: Any, valid: Any, test: Any,
    resumes: Path | None, out: Path,
) -> Metrics:
    fit = fit_config(base, cfg.fit, lr=cfg.finetune_lr if name.endswith(PRETRAINED_SUFFIX) else None)
    model = create_model(base, taxonomy, fit=fit, seed=seed)
    if name.endswith(PRETRAINED_SUFFIX):
        assert resumes is not None and isinstance(model, NeuralOccupationModel)
        model.init_from_pretrained(_pretrain(base, cfg, resumes, out.parent))
    t0 = time.monotonic()
    model.fit(train, valid)
    metrics = evaluate_model(model, test, taxonomy)
    folder = out / f"{name}-s{seed}"
    model.save(folder / "model")
    (folder / "metrics.json").write_text(jsonsafe.dumps(metrics.to_json(), indent=2))
    logger.info("%s seed %d: test perplexity %.3f (%.0f s)", name, seed, metrics.perplexity, time.monotonic() - t0)
    return metrics


def _transition_table(all_metrics: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """CAREER Tables 4 and 5: perplexity by transition type and stay-vs-move AUC (mean over seeds)."""
    lines = []
    for preset, per_model in all_metrics.items():
        lines += [f"**{preset}**: perplexity by transition type, stay-vs-move AUC (means over seeds)", "",
                  "| model | first year | consecutive repeat | non-consecutive repeat | new job | stay AUC |",
                  "|---|---|---|---|---|---|"]
        for name, runs in per_model.items():
            columns = [[r["by_transition"][k] for r in runs] for k in ("first", "consecutive_repeat", "nonconsecutive_repeat", "new_job")]
            columns.append([r["stay_auc"] for r in runs])
            lines.append(f"| {label(name)} | " + " | ".join(f"{sum(c) / len(c):.2f}" for c in columns) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()
