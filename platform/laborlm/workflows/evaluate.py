"""Score one saved model on a panel split with the shared harness; write metrics.json; log to MLflow.

laborlm evaluate --model runs/x/markov1 --panel runs/psid [--split test] [--out metrics.json]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from laborlm import jsonsafe
from laborlm.config import flatten
from laborlm.errors import InputDataError, LaborLMError
from laborlm.evaluation.harness import evaluate_model
from laborlm.evaluation.metrics import Metrics
from laborlm.models.registry import load_model
from laborlm.readers import read_panel
from laborlm.splits import SplitConfig, select_split
from laborlm.tracking.mlflow_tracker import MlflowTracker, TrackingConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    model: Path  # a saved model folder (any model: Markov, neural, oracle)
    panel: Path  # the panel to score (Parquet/CSV/CAREER files)
    split: str | None = "test"  # which persons; None: every row of the panel
    split_seed: int = 0  # seed of the person-level split
    out: Path | None = None  # metrics.json path; None: <model>/metrics-<split>.json
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def run_evaluate(cfg: EvaluateConfig) -> tuple[Metrics, Path]:
    """Score ``cfg.model`` on the chosen split; write the metrics and log them (nothing is logged on failure).

    Raises:
        CheckpointError: ``cfg.model`` is not a saved model folder.
        InputDataError: an unreadable panel, or a split without person-years (its perplexity is undefined).
        LaborLMError: the model gave NaN probabilities.
    """
    model = load_model(cfg.model)
    read = read_panel(cfg.panel, taxonomy=model.taxonomy)
    panel = (
        read.table
        if cfg.split is None
        else select_split(read.table, cfg.split, SplitConfig(seed=cfg.split_seed))
    )
    if panel.num_rows == 0:
        where = "the panel" if cfg.split is None else f"the {cfg.split} split (split seed {cfg.split_seed})"
        raise InputDataError(
            str(cfg.panel),
            None,
            "split",
            f"{where} holds none of the panel's {read.table.num_rows} person-years: nothing to evaluate",
        )
    metrics = evaluate_model(model, panel)
    if math.isnan(metrics.perplexity):
        raise LaborLMError(
            f"{model.name} gave NaN probabilities on {cfg.panel}; no metrics were written or logged"
        )
    out = cfg.out or cfg.model / f"metrics-{cfg.split or 'all'}.json"
    out.write_text(jsonsafe.dumps(metrics.to_json(), indent=2))  # undefined metrics (no stays: AUC) are null
    if cfg.tracking.enabled:
        run_dir = out.parent
        tracker = MlflowTracker(
            cfg.tracking, run_name=f"evaluate-{model.name}-{cfg.split or 'all'}", run_dir=run_dir
        )
        tracker.log_params(
            {k: v for k, v in flatten(cfg).items() if not k.startswith("tracking.")}
            | {"model.name": model.name}
        )
        tracker.log_metrics(metrics.flat(cfg.split or "all"))
        tracker.log_artifact(out)
        tracker.finish()
    return metrics, out
