"""CAREER's comparison (Figure 2a, Tables 4, 5 and 8) on the synthetic surveys and on users' own panels.

    laborlm benchmark careers --preset psid --preset nlsy79          # the quick configuration
    laborlm benchmark careers --config jobs/benchmark_careers_full.yaml
    laborlm benchmark careers --panel runs/nlsw [--panel DIR2] [--resumes runs/resumes] models=markov1,...

A column per dataset: each synthetic preset (``presets``, generated here) and each user panel (``panels``: a
``laborlm data import`` folder, or any panel ``read_panel`` takes; the column is named after the folder). The
oracle row appears only where the data carry oracle log-probabilities: a synthetic panel folder (its
``synth.yaml`` rebuilds the exact model) or a panel whose every test row has ``oracle_logp`` (the perplexity
and its transition types from that column alone). The ``unigram`` row, the floor every model must beat, is
always there. A user panel's ``+pretrain`` rows pretrain on ``resumes``, a resume panel whose codes must be the
panel's. Everything that can be checked (preset names versus paths, panels readable with persons in every
split, taxonomies) is checked before the output folder, any fit or an MLflow run is created.

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
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from laborlm import jsonsafe
from laborlm.baselines.base import NextOccupationModel
from laborlm.config import config_hash, flatten, to_dict
from laborlm.errors import ConfigError, InputDataError
from laborlm.evaluation.compare import ComparisonTable
from laborlm.evaluation.harness import evaluate_model, oracle_logp_of
from laborlm.evaluation.metrics import Metrics, perplexity
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
from laborlm.readers import PanelRead, read_panel
from laborlm.sequences import TRANSITION_NAMES, panel_arrays
from laborlm.splits import SplitConfig, select_split
from laborlm.tracking.mlflow_tracker import MlflowTracker, TrackingConfig
from laborlm.tracking.tracker import NullTracker, Tracker
from laborlm.workflows.panels import first_people, generate_preset_panel, looks_like_path, panel_name

__all__ = [
    "BenchmarkResult",
    "CareersBenchmarkConfig",
    "first_people",
    "generate_preset_panel",
    "label",
    "panel_name",
    "run_careers_benchmark",
]

logger = logging.getLogger(__name__)

PRETRAINED_SUFFIX = "+pretrain"
FLOOR = "unigram"  # the row every model must beat; added when ``models`` does not list it
_RESERVED = ("data", "pretrained")  # folders of out_dir that no dataset column may be named
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
    base, pretrained = (
        (name[: -len(PRETRAINED_SUFFIX)], True) if name.endswith(PRETRAINED_SUFFIX) else (name, False)
    )
    if base.startswith("career-"):
        arch = base.split("-")[1]
        text = f"CAREER-{arch} ({'two-stage' if base.endswith('two_stage') else 'vanilla'}{' + pretrain' if pretrained else ''})"
        return text
    return LABELS.get(base, base) + (" + pretrain" if pretrained else "")


@dataclass(frozen=True)
class CareersBenchmarkConfig:
    presets: tuple[str, ...] | None = None  # synthetic survey presets, one table column each; None: psid, or
    #   none when panels are given
    panels: tuple[
        Path, ...
    ] = ()  # users' panels (`laborlm data import` folders), one column each, named after it
    resumes: Path | None = None  # resume panel for the "+pretrain" rows; None: the synthetic resume corpus
    #   (a user panel's +pretrain rows need one in the panel's taxonomy)
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
    test_people: int | None = (
        None  # score on the first N test persons (by id) only; None: the whole test split.
    )
    #   Every model is scored on the same persons; a cap keeps direct LLM scoring (every label) quick on CPU.
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def survey_presets(self) -> tuple[str, ...]:
        """The synthetic presets to generate: ``presets``, or psid when neither presets nor panels are given."""
        if self.presets is not None:
            return self.presets
        return () if self.panels else ("psid",)

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every table column: the presets, then the panels by ``panel_name``."""
        return (*self.survey_presets, *(panel_name(p) for p in self.panels))

    @property
    def rows(self) -> tuple[str, ...]:
        """The models fitted and scored: ``models`` with the unigram floor first unless it is listed."""
        return self.models if FLOOR in self.models else (FLOOR, *self.models)

    @property
    def generates_data(self) -> bool:
        """Whether the run generates synthetic data (a preset, or the resume corpus for +pretrain rows)."""
        pretrains = any(m.endswith(PRETRAINED_SUFFIX) for m in self.models)
        return bool(self.survey_presets) or (pretrains and self.resumes is None)

    def __post_init__(self) -> None:
        from laborlm.synthetic.config import PRESETS

        problems = []
        for preset in self.survey_presets:
            if preset in PRESETS:
                continue
            if looks_like_path(preset):
                problems.append(
                    f"presets: {preset!r} is a path, not a synthetic preset ({', '.join(PRESETS)}); "
                    f"give a panel with --panel {preset} (panels=...)"
                )
            else:
                problems.append(f"presets: unknown synthetic preset {preset!r}; known: {', '.join(PRESETS)}")
        for panel in self.panels:
            if str(panel) in PRESETS and not panel.exists():
                problems.append(
                    f"panels: {str(panel)!r} is a synthetic preset name, not a panel folder (there is no "
                    f"{panel}); use --preset {panel} (presets=...), or give the folder's path"
                )
        if self.resumes is not None and str(self.resumes) in PRESETS and not self.resumes.exists():
            problems.append(
                f"resumes: {str(self.resumes)!r} is a synthetic preset name, not a resume panel folder; "
                "leave resumes unset to pretrain on the synthetic resume corpus"
            )
        names = self.datasets
        if not names:
            problems.append("presets, panels: nothing to compare; give --preset NAME or --panel DIR")
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(
                f"panels: two datasets would both be column {name!r}; give panels folders of other names"
            )
        for name in (n for n in names if n in _RESERVED):
            problems.append(
                f"panels: a panel may not be named {name!r} (out_dir/{name} holds the benchmark's own files)"
            )
        pretrained = [m for m in self.models if m.endswith(PRETRAINED_SUFFIX)]
        if pretrained and self.panels and self.resumes is None:
            problems.append(
                f"resumes: {', '.join(map(repr, pretrained))} pretrain on resumes; a user panel needs a "
                "resume panel in its taxonomy (--resumes DIR), or drop the +pretrain rows"
            )
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


def _generate(preset: str, people: int | None, cfg: CareersBenchmarkConfig, out: Path) -> Path:
    return generate_preset_panel(preset, people, cfg.data_seed, out, cfg.workers)


@dataclass(frozen=True)
class _UserPanel:
    path: Path
    read: PanelRead


def _prepare(cfg: CareersBenchmarkConfig) -> dict[str, _UserPanel]:
    """Read and check every user panel and the resume panel; raises before anything is written or logged.

    Raises:
        ConfigError: a panel or resume panel that does not exist, or resumes whose codes differ from a panel's
            (or from the synthetic presets' occ1990dd) while +pretrain rows need them.
        InputDataError: an unreadable panel, or one without persons in its train or test split.
    """
    missing = [f"panels: {p}: no such file or folder" for p in cfg.panels if not p.exists()]
    if cfg.resumes is not None and not cfg.resumes.exists():
        missing.append(f"resumes: {cfg.resumes}: no such file or folder")
    if missing:
        raise ConfigError(missing)
    split = SplitConfig(seed=cfg.data_seed)
    panels = {}
    for path in cfg.panels:
        read = read_panel(path)
        for name in ("train", "test"):
            if select_split(read.table, name, split).num_rows == 0:
                raise InputDataError(
                    str(path),
                    None,
                    "split",
                    f"no person in the {name} split (of "
                    f"{read.table.num_rows} person-years; data_seed {cfg.data_seed})",
                )
        panels[panel_name(path)] = _UserPanel(path, read)
    if cfg.resumes is not None and any(m.endswith(PRETRAINED_SUFFIX) for m in cfg.models):
        resumes = read_panel(cfg.resumes).taxonomy
        others = {f"panel {p.path}": p.read.taxonomy for p in panels.values()}
        if cfg.survey_presets:
            others["the synthetic presets"] = Taxonomy.default()
        for what, taxonomy in others.items():
            diff = taxonomy_difference(taxonomy, resumes, what, f"resumes {cfg.resumes}")
            if diff is not None:
                raise ConfigError(
                    f"resumes: the +pretrain rows need the resume panel's codes to be the panel's: {diff}"
                )
    return panels


def _pretrain(name: str, cfg: CareersBenchmarkConfig, resumes: Path, taxonomy: Taxonomy, out: Path) -> Path:
    """Train ``name`` on the resume corpus once (first seed); every seed fine-tunes from it. Reused if saved.

    The resumes are read in the survey's ``taxonomy`` (the same codes, checked by ``_prepare``; CAREER reads
    codes only), so the pretrained model indexes occupations as the fine-tuned one does.
    """
    seed = cfg.seeds[0]
    folder = out / "pretrained" / f"{name}-s{seed}-{config_hash(cfg, 6)}"
    if (folder / "config.json").exists():
        return folder
    read = read_panel(resumes, taxonomy=taxonomy)
    split = SplitConfig(seed=cfg.data_seed)
    fit = fit_config(
        name, cfg.fit, lr=cfg.pretrain_lr, epochs=cfg.pretrain_epochs, max_tokens=cfg.pretrain_max_tokens
    )
    model = create_model(name, read.taxonomy, fit=fit, seed=seed)
    logger.info("pretraining %s (seed %d) on %d resume person-years", name, seed, read.table.num_rows)
    model.fit(select_split(read.table, "train", split), select_split(read.table, "valid", split))
    model.save(folder)
    return folder


def _tracker(cfg: CareersBenchmarkConfig) -> Tracker:
    if not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(
        cfg.tracking, run_name=f"benchmark-careers-{config_hash(cfg, 6)}", run_dir=cfg.out_dir
    )


def run_careers_benchmark(
    cfg: CareersBenchmarkConfig, extra_models: Mapping[str, NextOccupationModel] | None = None
) -> BenchmarkResult:
    """Fit and score every model on every preset for every seed; write and log the comparison table.

    Args:
        extra_models: already-trained models (row label -> model, e.g. fine-tuned language models) scored on
            each preset's test split by the same harness and placed in the same table; they are not refitted.
    """
    user_panels = _prepare(cfg)
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    tracker = _tracker(cfg)
    tracker.log_params(flatten(cfg))
    table = ComparisonTable(floor_row=label(FLOOR), oracle_row=label("oracle"))
    all_metrics: dict[str, dict[str, list[dict[str, Any]]]] = {}
    split = SplitConfig(seed=cfg.data_seed)
    needs_resumes = any(m.endswith(PRETRAINED_SUFFIX) for m in cfg.models)
    resumes = (
        cfg.resumes
        if cfg.resumes is not None or not needs_resumes
        else _generate("resumes", cfg.resume_people, cfg, out)
    )
    started = time.monotonic()
    for preset in cfg.datasets:
        if preset in user_panels:
            panel_dir, read = user_panels[preset].path, user_panels[preset].read
        else:
            panel_dir = _generate(preset, cfg.survey_people, cfg, out)
            read = read_panel(panel_dir)
        train, valid, test = (select_split(read.table, s, split) for s in ("train", "valid", "test"))
        if cfg.test_people is not None:
            test = first_people(test, cfg.test_people)
        logger.info(
            "%s: %d train / %d valid / %d test person-years",
            preset,
            train.num_rows,
            valid.num_rows,
            test.num_rows,
        )
        per_model: dict[str, list[dict[str, Any]]] = {}
        table.labels = len(read.taxonomy)
        oracle = _oracle(panel_dir, test, read.taxonomy)
        if oracle is not None:
            table.add(label("oracle"), preset, oracle["perplexity"])
            per_model["oracle"] = [oracle]
        for row, extra in (extra_models or {}).items():
            metrics = evaluate_model(extra, test, read.taxonomy)
            table.add(row, preset, metrics.perplexity)
            per_model[row] = [metrics.to_json()]
            tracker.log_metrics({f"{preset}/{row}/{k}": v for k, v in metrics.flat().items()})
        for name in cfg.rows:
            base = name.removesuffix(PRETRAINED_SUFFIX)
            deterministic = is_counted(base)
            for seed in cfg.seeds[:1] if deterministic else cfg.seeds:
                metrics = _fit_and_score(
                    name, base, seed, cfg, read.taxonomy, train, valid, test, resumes, out / preset
                )
                table.add(label(name), preset, metrics.perplexity)
                per_model.setdefault(name, []).append(metrics.to_json())
                tracker.log_metrics({f"{preset}/{name}/s{seed}/{k}": v for k, v in metrics.flat().items()})
        all_metrics[preset] = per_model
    md = "\n\n".join(
        [
            table.to_markdown(),
            _transition_table(all_metrics),
            f"_{time.monotonic() - started:.0f} s on this machine; config {config_hash(cfg, 6)}_",
        ]
    )
    md_path, json_path = out / "comparison.md", out / "comparison.json"
    md_path.write_text(md + "\n")
    json_path.write_text(
        jsonsafe.dumps(
            {"config": to_dict(cfg), "table": table.to_json(), "metrics": all_metrics}, indent=2, default=str
        )
    )
    tracker.log_artifact(md_path)
    tracker.log_artifact(json_path)
    tracker.finish()
    return BenchmarkResult(table, all_metrics, getattr(tracker, "run_id", None), md_path, json_path)


def _oracle(panel: Path, test: pa.Table, taxonomy: Taxonomy) -> dict[str, Any] | None:
    """The oracle's metrics on ``test`` (``Metrics.to_json`` form), or None where the data carry no oracle.

    A synthetic panel folder rebuilds the exact model from its ``synth.yaml`` (every metric). Otherwise, when
    every test row carries ``oracle_logp`` (a synthetic panel exported and imported elsewhere), the
    perplexity and its split by transition type come from that column; metrics that need the whole
    distribution (stay AUC) are NaN. A real survey has neither: no oracle row.
    """
    from laborlm.synthetic.oracle import OracleModel

    if panel.is_dir() and (panel / "synth.yaml").is_file():
        return evaluate_model(OracleModel.from_panel(panel), test).to_json()
    logp = oracle_logp_of(test) if test.num_rows else None
    if logp is None:
        return None
    arrays = panel_arrays(test, taxonomy)
    # Perplexity over every test person-year (first years included), as for every other row.
    return {
        "perplexity": perplexity(logp),
        "person_years": len(logp),
        "by_transition": {
            name: perplexity(logp, arrays.transition == k) for k, name in TRANSITION_NAMES.items()
        },
        "stay_auc": float("nan"),
        "source": "oracle_logp column",
    }


def _fit_and_score(
    name: str,
    base: str,
    seed: int,
    cfg: CareersBenchmarkConfig,
    taxonomy: Any,
    train: Any,
    valid: Any,
    test: Any,
    resumes: Path | None,
    out: Path,
) -> Metrics:
    fit = fit_config(base, cfg.fit, lr=cfg.finetune_lr if name.endswith(PRETRAINED_SUFFIX) else None)
    model = create_model(base, taxonomy, fit=fit, seed=seed)
    if name.endswith(PRETRAINED_SUFFIX):
        assert resumes is not None and isinstance(model, NeuralOccupationModel)
        model.init_from_pretrained(_pretrain(base, cfg, resumes, taxonomy, out.parent))
    t0 = time.monotonic()
    model.fit(train, valid if valid.num_rows else None)
    metrics = evaluate_model(model, test, taxonomy)
    folder = out / f"{name}-s{seed}"
    model.save(folder / "model")
    (folder / "metrics.json").write_text(jsonsafe.dumps(metrics.to_json(), indent=2))
    logger.info(
        "%s seed %d: test perplexity %.3f (%.0f s)", name, seed, metrics.perplexity, time.monotonic() - t0
    )
    return metrics


def _transition_table(all_metrics: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """CAREER Tables 4 and 5: perplexity by transition type and stay-vs-move AUC (mean over seeds)."""
    lines = []
    for preset, per_model in all_metrics.items():
        lines += [
            f"**{preset}**: perplexity by transition type, stay-vs-move AUC (means over seeds)",
            "",
            "| model | first year | consecutive repeat | non-consecutive repeat | new job | stay AUC |",
            "|---|---|---|---|---|---|",
        ]
        for name, runs in per_model.items():
            columns = [
                [r["by_transition"][k] for r in runs]
                for k in ("first", "consecutive_repeat", "nonconsecutive_repeat", "new_job")
            ]
            columns.append([r["stay_auc"] for r in runs])
            lines.append(f"| {label(name)} | " + " | ".join(_mean(c) for c in columns) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


def _mean(values: list[float | None]) -> str:
    """Mean over seeds to 2 decimals; "–" where a metric is undefined (null/NaN: no such rows, or no AUC)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return f"{sum(finite) / len(finite):.2f}" if finite and len(finite) == len(values) else "–"
