"""The papers' downstream analyses, for every model through ``NextOccupationModel``.

    laborlm analyze {forecast,wages,subgroups,rationale} [--config YAML] [key.path=value ...]

- ``forecast``: CAREER Tables 1-2 (multi-year forecasting by sampling trajectories; the oracle's exact
  multi-step probabilities) and LABOR-LLM's direct vs composed multi-year predictions (``horizon``);
- ``wages``: CAREER Table 3 (wage regressions with a model's representation of the job history);
- ``subgroups``: LABOR-LLM's representativeness (predicted vs observed rates by subgroup) and calibration;
- ``rationale``: CAREER Figures 3 and 5 (greedy rationales; most similar careers);
- ``panels`` and ``representations``: the careers-as-panel-rows and representation helpers they share;
  ``config`` and ``runner``: ``AnalyzeConfig`` and ``run_analysis`` (the ``analyze`` subcommand is in
  ``laborlm.cli``, its four jobs in ``laborlm.jobs``).

Names are imported lazily, so that building the CLI parser does not import numpy, pyarrow or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AnalyzeConfig": "laborlm.analysis.config",
    "run_analysis": "laborlm.analysis.runner",
    "ForecastConfig": "laborlm.analysis.forecast",
    "forecast_task": "laborlm.analysis.forecast",
    "sample_forecast": "laborlm.analysis.forecast",
    "exact_forecast": "laborlm.analysis.forecast",
    "direct_vs_composed": "laborlm.analysis.forecast",
    "DirectHorizonMarkov": "laborlm.analysis.horizon",
    "wage_study": "laborlm.analysis.wages",
    "attach_synthetic_wages": "laborlm.analysis.wages",
    "subgroup_study": "laborlm.analysis.subgroups",
    "greedy_rationale": "laborlm.analysis.rationale",
    "similar_careers": "laborlm.analysis.rationale",
    "representation": "laborlm.analysis.representations",
}

__all__ = list(_EXPORTS)  # resolved lazily by __getattr__


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'laborlm.analysis' has no attribute {name!r}")
