"""A synthetic labour market with a known data-generating process and an exact per-person-year oracle.

    laborlm data synth --preset psid --out runs/psid

``generate_panel(load_preset("psid"), out_dir)`` writes a canonical panel whose ``oracle_logp`` column is the
true ``log p(occupation | history, covariates)``: ``exp(-mean(oracle_logp))`` is the perplexity floor no model
can beat. The folder also records its config (``synth.yaml``), from which ``OracleModel.from_panel`` rebuilds
the oracle as a model with whole next-step distributions, scored by the same harness as every other model.
See ``process`` for the dynamics, ``generate`` for sampling, the oracle and the Ray pipeline, and ``oracle``
for the oracle as a model.
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
    load_synth_config,
)
from laborlm.synthetic.generate import SynthSummary, generate_panel
from laborlm.synthetic.oracle import OracleModel

__all__ = [
    "PRESETS",
    "DynamicsConfig",
    "GridConfig",
    "OracleModel",
    "PopulationConfig",
    "RecordingConfig",
    "SynthConfig",
    "SynthSummary",
    "WageConfig",
    "generate_panel",
    "load_preset",
    "load_synth_config",
]
