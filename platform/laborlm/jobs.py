"""The job registry: each ``kind:`` of a job YAML -> its config dataclass and the function that runs it.

    laborlm run jobs/synth_psid.yaml people=500 out_dir=runs/psid-small    # any job YAML, dispatched here

    job, cfg = load_job("jobs/train_tiny.yaml", ["pretrain.max_steps=50"])
    job.check_outputs(cfg)                      # before any work: an unwritable out_dir is a one-line error
    outcome = job.run(cfg)                      # Ray started by the caller if job.ray(cfg, ...) asks for it

Every command that runs a job resolves it here (``laborlm run``, ``train``, ``sweep``, ``quickstart``,
``benchmark``, ``analyze``, ``data synth``, ``fit``, ``evaluate``, and ``submit``, which checks a job before
it leaves this machine), so a kind has exactly one config class and one runner, and every kind also runs from
a YAML. The entry point keeps what only it may do: turning flags into overrides, starting Ray (``Job.ray``
says whether, and with how many CPUs), printing ``JobOutcome.text`` and choosing the exit code. Runners take
the typed config and a small ``RunOptions``, never parsed command-line arguments.

Config classes are named by module and class and imported on first use: several config modules import torch
or Ray at import time (seconds), and ``laborlm --help``, ``config show`` or ``data stats`` should not pay
for that.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from laborlm.config import load_config, load_yaml
from laborlm.errors import ConfigError

if TYPE_CHECKING:
    from laborlm.analysis.config import AnalyzeConfig
    from laborlm.corpus.build import CorpusConfig
    from laborlm.sweeps.scaling import SweepConfig
    from laborlm.synthetic.config import SynthJobConfig
    from laborlm.training.config import TrainConfig
    from laborlm.workflows.benchmark_careers import CareersBenchmarkConfig
    from laborlm.workflows.benchmark_hardware import HardwareBenchmarkConfig
    from laborlm.workflows.benchmark_llm import LlmBenchmarkConfig
    from laborlm.workflows.evaluate import EvaluateConfig
    from laborlm.workflows.fit import FitJobConfig
    from laborlm.workflows.quickstart import QuickstartConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run a job, beyond its config: only what a config has no field for."""

    workers: int | None = None  # Ray Data parallelism of build_corpus (which cannot change its output); for
    #                             synth, the default when its config leaves `workers` null


@dataclass(frozen=True)
class RayNeeds:
    """A job needs Ray: the entry point starts a local Ray (or connects to ``--address``/``RAY_ADDRESS``)."""

    num_cpus: int | None = None  # CPUs of a local Ray started for the job; None: the machine's


@dataclass(frozen=True)
class JobOutcome:
    text: str  # what the command prints: the job's report, or its one-line summary
    ok: bool = True  # False: the job finished but part of it failed (exit status 1)


def _never(cfg: Any, options: RunOptions) -> RayNeeds | None:
    return None


def _always(cfg: Any, options: RunOptions) -> RayNeeds | None:
    return RayNeeds()


def _out_dir(cfg: Any) -> Path | None:
    value = getattr(cfg, "out_dir", None)
    return None if value is None else Path(value)


@dataclass(frozen=True)
class Job:
    """One job kind: its config class, its runner, and what the entry point must prepare for it."""

    kind: str
    config: str  # "module:Class" of the config dataclass (imported on first use; see the module docstring)
    runner: Callable[[Any, RunOptions], JobOutcome]  # module-level function of this module (an adapter)
    description: str
    ray: Callable[[Any, RunOptions], RayNeeds | None] = _never
    output: Callable[[Any], Path | None] = _out_dir  # what the job writes; checked before any work
    output_kind: str = "folder"  # laborlm.paths.check_output kind of `output`
    environment: Mapping[str, str] = field(default_factory=dict)  # defaults set before Ray starts (never
    #                                                                overriding the user's environment)

    @property
    def config_class(self) -> type:
        module, _, name = self.config.partition(":")
        cls: type = getattr(importlib.import_module(module), name)
        return cls

    def load(self, path: str | Path | None, overrides: Sequence[str] = ()) -> Any:
        """This kind's config from an optional YAML plus dotted overrides (strict: every problem at once)."""
        return load_config(self.config_class, path, list(overrides))

    def check_outputs(self, cfg: Any) -> None:
        """Fail before any work when the job's output cannot be written (one ``LaborLMError``, not a traceback
        after an hour of training)."""
        from laborlm.paths import check_output

        out = self.output(cfg)
        if out is not None and str(out):
            check_output(out, self.output_kind, "out_dir" if self.output is _out_dir else "out")

    def run(self, cfg: Any, options: RunOptions | None = None) -> JobOutcome:
        """Run the job on a config of this kind; Ray must already be initialised where ``ray`` asks for it."""
        if not isinstance(cfg, self.config_class):
            raise TypeError(
                f"kind {self.kind!r} runs a {self.config_class.__name__}, got {type(cfg).__name__}"
            )
        logger.info("running a %s job", self.kind)
        return self.runner(cfg, options or RunOptions())


# --- runners: the library function of each kind, and the text the command prints ---------------------------


def _report(markdown: Path, where: str, run_id: str | None) -> str:
    """A benchmark's Markdown report, then where it and its companions were written."""
    return markdown.read_text() + f"\nwritten to {where}" + (f"; MLflow run {run_id}" if run_id else "")


def _run_synth(cfg: SynthJobConfig, options: RunOptions) -> JobOutcome:
    from laborlm.synthetic import generate_panel

    workers = cfg.workers if cfg.workers is not None else options.workers
    return JobOutcome(generate_panel(cfg.panel_config(), cfg.panel_dir, num_workers=workers).line())


def _synth_ray(cfg: SynthJobConfig, options: RunOptions) -> RayNeeds | None:
    workers = cfg.workers if cfg.workers is not None else options.workers
    return RayNeeds(num_cpus=workers) if workers else None


def _run_quickstart(cfg: QuickstartConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.quickstart import run_quickstart

    return JobOutcome(run_quickstart(cfg))


def _run_build_corpus(cfg: CorpusConfig, options: RunOptions) -> JobOutcome:
    from laborlm.corpus import build_corpus

    return JobOutcome(build_corpus(cfg, num_workers=options.workers).line(cfg.out_dir))


def _run_benchmark_careers(cfg: CareersBenchmarkConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.benchmark_careers import run_careers_benchmark

    result = run_careers_benchmark(cfg)
    where = f"{result.markdown_path} and {result.json_path}"
    return JobOutcome(_report(result.markdown_path, where, result.run_id))


def _benchmark_careers_ray(cfg: CareersBenchmarkConfig, options: RunOptions) -> RayNeeds | None:
    # Ray Data generates the synthetic panels only with workers; Ray Train fits only with fit.num_workers.
    return RayNeeds() if (cfg.workers and cfg.generates_data) or cfg.fit.num_workers else None


def _run_benchmark_llm(cfg: LlmBenchmarkConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.benchmark_llm import run_llm_benchmark

    result = run_llm_benchmark(cfg)
    where = f"{result.markdown_path} and {result.json_path}"
    return JobOutcome(_report(result.markdown_path, where, result.run_id))


def _run_benchmark_hardware(cfg: HardwareBenchmarkConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.benchmark_hardware import run_hardware_benchmark

    result = run_hardware_benchmark(cfg)
    written = ", ".join(str(p) for p in (result.markdown_path, result.json_path, result.plot_path) if p)
    return JobOutcome(_report(result.markdown_path, written, result.run_id), ok=not result.failed)


def _run_train(cfg: TrainConfig, options: RunOptions) -> JobOutcome:
    from laborlm.training.workflow import run_training

    return JobOutcome(run_training(cfg).line())


def _run_sweep(cfg: SweepConfig, options: RunOptions) -> JobOutcome:
    from laborlm.sweeps.scaling import run_sweep

    folder = run_sweep(cfg)
    where = f"{folder}/ (scaling.html, plots, trials.jsonl)"
    return JobOutcome((folder / "scaling.md").read_text() + f"\nwritten to {where}")


def _run_analysis(analysis: str, cfg: AnalyzeConfig) -> JobOutcome:
    from laborlm.analysis.runner import run_analysis

    folder = Path(run_analysis(analysis, cfg))
    return JobOutcome((folder / "report.md").read_text(encoding="utf-8") + f"\nwritten to {folder}")


def _run_forecast(cfg: AnalyzeConfig, options: RunOptions) -> JobOutcome:
    return _run_analysis("forecast", cfg)


def _run_wages(cfg: AnalyzeConfig, options: RunOptions) -> JobOutcome:
    return _run_analysis("wages", cfg)


def _run_subgroups(cfg: AnalyzeConfig, options: RunOptions) -> JobOutcome:
    return _run_analysis("subgroups", cfg)


def _run_rationale(cfg: AnalyzeConfig, options: RunOptions) -> JobOutcome:
    return _run_analysis("rationale", cfg)


def _run_fit(cfg: FitJobConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.fit import run_fit

    return JobOutcome(run_fit(cfg).line())


def _fit_ray(cfg: FitJobConfig, options: RunOptions) -> RayNeeds | None:
    return RayNeeds() if cfg.fit.num_workers else None


def _run_evaluate(cfg: EvaluateConfig, options: RunOptions) -> JobOutcome:
    from laborlm.workflows.evaluate import run_evaluate

    metrics, out = run_evaluate(cfg)
    gap = (
        ""
        if metrics.oracle_gap is None
        else f", oracle {metrics.oracle_perplexity:.3f} (gap {metrics.oracle_gap:.3f})"
    )
    return JobOutcome(
        f"perplexity {metrics.perplexity:.3f} on {metrics.person_years:,} person-years{gap}; "
        f"stay AUC {metrics.stay_auc:.3f}\nmetrics written to {out}"
    )


def _quickstart_ray(cfg: QuickstartConfig, options: RunOptions) -> RayNeeds | None:
    return RayNeeds(num_cpus=cfg.workers)


def _build_corpus_ray(cfg: CorpusConfig, options: RunOptions) -> RayNeeds | None:
    return RayNeeds(num_cpus=options.workers)


def _benchmark_llm_ray(cfg: LlmBenchmarkConfig, options: RunOptions) -> RayNeeds | None:
    return RayNeeds(num_cpus=cfg.workers)


def _fit_output(cfg: FitJobConfig) -> Path:
    return Path(cfg.out)


def _evaluate_output(cfg: EvaluateConfig) -> Path | None:
    return None if cfg.out is None else Path(cfg.out)


def _synth_output(cfg: SynthJobConfig) -> Path:
    return cfg.panel_dir


_ANALYZE = "laborlm.analysis.config:AnalyzeConfig"

JOBS: dict[str, Job] = {
    job.kind: job
    for job in (
        Job(
            "synth",
            "laborlm.synthetic.config:SynthJobConfig",
            _run_synth,
            "a synthetic panel with its exact oracle (Ray Data with workers)",
            ray=_synth_ray,
            output=_synth_output,
        ),
        Job(
            "quickstart",
            "laborlm.workflows.quickstart:QuickstartConfig",
            _run_quickstart,
            "the whole pipeline on the embedded defaults (local Ray, synthetic data)",
            ray=_quickstart_ray,
        ),
        Job(
            "build_corpus",
            "laborlm.corpus.build:CorpusConfig",
            _run_build_corpus,
            "render panels into a text corpus with a template (Ray Data); idempotent",
            ray=_build_corpus_ray,
        ),
        Job(
            "benchmark_careers",
            "laborlm.workflows.benchmark_careers:CareersBenchmarkConfig",
            _run_benchmark_careers,
            "CAREER's Figure 2a table on synthetic surveys and your own panels",
            ray=_benchmark_careers_ray,
        ),
        Job(
            "benchmark_llm",
            "laborlm.workflows.benchmark_llm:LlmBenchmarkConfig",
            _run_benchmark_llm,
            "LABOR-LLM's comparisons (fine-tuning, titles vs codes, pooled data, size vs data)",
            ray=_benchmark_llm_ray,
        ),
        Job(
            "benchmark_hardware",
            "laborlm.workflows.benchmark_hardware:HardwareBenchmarkConfig",
            _run_benchmark_hardware,
            "training tokens/s, memory and MFU by model size and strategy",
            ray=_always,
            environment={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"},
        ),  # each cell is a short Ray Train run
        Job(
            "train",
            "laborlm.training.config:TrainConfig",
            _run_train,
            "language-model training on Ray Train (pretrain and/or fine-tune)",
            ray=_always,
        ),
        Job(
            "sweep",
            "laborlm.sweeps.scaling:SweepConfig",
            _run_sweep,
            "Ray Tune scaling study (data volume x model size, ASHA)",
            ray=_always,
        ),
        Job(
            "analyze_forecast",
            _ANALYZE,
            _run_forecast,
            "CAREER Tables 1-2: 2-, 4-, 6-year forecasting perplexity by sampling; exact oracle; "
            "direct vs composed",
        ),
        Job(
            "analyze_wages",
            _ANALYZE,
            _run_wages,
            "CAREER Table 3: held-out R^2 of wage regressions with and without a model's representation",
        ),
        Job(
            "analyze_subgroups",
            _ANALYZE,
            _run_subgroups,
            "LABOR-LLM: predicted vs observed rates and perplexity by education, gender, race; calibration plot",
        ),
        Job(
            "analyze_rationale",
            _ANALYZE,
            _run_rationale,
            "CAREER Figures 3 and 5: greedy rationales of predicted moves; most similar careers",
        ),
        Job(
            "fit",
            "laborlm.workflows.fit:FitJobConfig",
            _run_fit,
            "fit a registry model on a panel's train split; save it",
            ray=_fit_ray,
            output=_fit_output,
        ),
        Job(
            "evaluate",
            "laborlm.workflows.evaluate:EvaluateConfig",
            _run_evaluate,
            "score a saved model on a panel split; write metrics.json",
            output=_evaluate_output,
            output_kind="file",
        ),
    )
}

ANALYSES: tuple[str, ...] = tuple(k.removeprefix("analyze_") for k in JOBS if k.startswith("analyze_"))


def get_job(kind: object, source: str | Path | None = None) -> Job:
    """The job of a ``kind`` value read from a YAML (or named by a command).

    Raises:
        ConfigError: not a registered kind (naming the file it came from).
    """
    if not isinstance(kind, str) or kind not in JOBS:
        raise ConfigError(
            f"kind: expected one of {', '.join(sorted(JOBS))}, got {kind!r}",
            source=None if source is None else str(source),
        )
    return JOBS[kind]


def load_job(
    path: str | Path | None, overrides: Sequence[str] = (), *, kind: str | None = None
) -> tuple[Job, Any]:
    """A job YAML (plus dotted overrides) -> its job and typed config.

    Args:
        path: the YAML; its ``kind:`` picks the job. None: the embedded defaults of ``kind``.
        kind: the kind a command runs (``laborlm train`` runs ``train``). A YAML without ``kind:`` is read as
            this kind; a YAML of another kind is refused, unless both kinds share one config class (the four
            analyses read the same ``AnalyzeConfig`` YAML; the command picks the analysis).

    Raises:
        ConfigError: an unknown or mismatched kind, or anything the strict config loader finds.
    """
    if path is None:
        if kind is None:
            raise ConfigError("a job YAML or a kind is required")
        job = get_job(kind)
        return job, job.load(None, overrides)
    written = load_yaml(path).get("kind", kind)
    if kind is None:
        job = get_job(written, path)
    else:
        job = get_job(kind)
        if written != kind and (written not in JOBS or JOBS[written].config != job.config):
            raise ConfigError(
                f"kind: expected {kind!r}, got {written!r} (use `laborlm run` for other jobs)",
                source=str(path),
            )
    return job, job.load(path, overrides)
