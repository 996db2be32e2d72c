"""Configuration of ``laborlm analyze``: one frozen ``AnalyzeConfig`` for the four downstream analyses.

    laborlm analyze forecast                                   # the quick configuration (embedded defaults)
    laborlm analyze wages --config my.yaml models=oracle,markov1,career-tiny-two_stage
    laborlm analyze subgroups data.people=5000 subgroups.columns=education,race

The defaults are the quick configuration: a small synthetic PSID panel generated in-process, the oracle and
the Markov chains, each analysis well under two minutes on two cores. The YAML holds any of the sections
below (unknown keys are errors); the analysis to run is the command's argument, so one YAML serves all four.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from laborlm.analysis.forecast import ForecastConfig
from laborlm.analysis.rationale import RationaleConfig
from laborlm.analysis.subgroups import SubgroupConfig
from laborlm.analysis.wages import WageStudyConfig
from laborlm.errors import ConfigError
from laborlm.tracking.mlflow_tracker import TrackingConfig

KINDS: tuple[str, ...] = ("forecast", "wages", "subgroups", "rationale")
ORACLE = "oracle"  # the synthetic panel's exact data-generating process, as a model


@dataclass(frozen=True)
class AnalysisDataConfig:
    panel: Path | None = None  # a canonical panel folder (or file); None: generate the synthetic `preset`
    preset: Literal["psid", "nlsy79", "nlsy97"] = "psid"  # synthetic survey generated when `panel` is null
    people: int | None = 2000  # persons of the generated survey; None: the preset's full size
    seed: int = 0  # generated data
    synth_overrides: tuple[
        str, ...
    ] = ()  # dotted overrides of the generated preset, e.g. wages.wage_type_effect=4
    split_seed: int = 0  # person-level 70/10/20 split: models fit on train (+valid), analyses read test

    def __post_init__(self) -> None:
        problems = []
        if self.people is not None and self.people < 10:
            problems.append(f"people: expected >= 10 or null, got {self.people}")
        if self.synth_overrides and self.panel is not None:
            problems.append("synth_overrides: only for a generated panel (panel must be null)")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class AnalysisFitConfig:
    """Training settings of the neural models named in ``models`` (on top of their registry defaults)."""

    max_epochs: int = 5  # a few passes: the analyses need a fitted model, not the best one
    lr: float = 2e-3
    warmup_steps: int = 50
    max_tokens: int = 500  # padded person-years per batch (small panels need small batches)
    patience: int | None = 2  # epochs without a better validation perplexity before stopping
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.max_tokens < 1 or self.lr <= 0:
            raise ConfigError("max_epochs and max_tokens must be >= 1 and lr > 0")


@dataclass(frozen=True)
class AnalyzeConfig:
    out_dir: Path = Path("runs/analyze")  # <out_dir>/<analysis>/ gets the report, tables and figures
    data: AnalysisDataConfig = field(default_factory=AnalysisDataConfig)
    models: tuple[str, ...] = (ORACLE, "markov1", "markov2")
    # "oracle", a models-registry name (markov1, career-tiny-two_stage, ...; fitted here), or a saved model
    # folder (loaded as is: for forecasts it must have been fitted on data up to forecast.cutoff_year)
    fit: AnalysisFitConfig = field(default_factory=AnalysisFitConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    wages: WageStudyConfig = field(default_factory=WageStudyConfig)
    subgroups: SubgroupConfig = field(default_factory=SubgroupConfig)
    rationale: RationaleConfig = field(default_factory=RationaleConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        from laborlm.models.registry import REGISTRY

        problems = []
        if not self.models:
            problems.append("models: at least one model")
        for name in self.models:
            if name != ORACLE and name not in REGISTRY and not _is_path(name):
                problems.append(
                    f"models: {name!r} is not 'oracle', a registry model ({', '.join(REGISTRY)}) or a saved model folder"
                )
        if len(set(self.models)) != len(self.models):
            problems.append(
                f"models: listed twice: {sorted({m for m in self.models if self.models.count(m) > 1})}"
            )
        if problems:
            raise ConfigError(problems)


def _is_path(name: str) -> bool:
    """A model given as a folder: it contains a path separator or names an existing directory."""
    return "/" in name or Path(name).is_dir()
