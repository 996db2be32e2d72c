"""A synthetic labour market with a known data-generating process and an exact per-person-year oracle.

    laborlm data synth --preset psid --out runs/psid

``generate_panel(load_preset("psid"), out_dir)`` writes a canonical panel whose ``oracle_logp`` column is the
true ``log p(occupation | history, covariates)``: ``exp(-mean(oracle_logp))`` is the perplexity floor no model
can beat. See ``process`` for the dynamics and ``generate`` for sampling, the oracle and the Ray pipeline.
"""

from __future__ import annotations

from laborlm.synthetic.config import (
    PRESETS,
    DynamicsConfig,
    GridConfig,
    PopulationConfig,
    RecordingConfig,
    SynthConfig,
    WageConfig,
    load_preset,
)
from laborlm.synthetic.generate import SynthSummary, generate_panel

__all__ = [
    "PRESETS",
    "DynamicsConfig",
    "GridConfig",
    "PopulationConfig",
    "RecordingConfig",
    "SynthConfig",
    "SynthSummary",
    "WageConfig",
    "generate_panel",
    "load_preset",
]
