"""The four neural architectures of CAREER's comparison, built from their configs.

A config's ``kind`` names its architecture, so a saved ``config.json`` (or YAML) rebuilds the right one.
"""

from __future__ import annotations

from torch import nn

from laborlm.baselines.bag_of_jobs import BagOfJobs, BagOfJobsConfig
from laborlm.baselines.logistic import MarkovRegression, RegressionConfig
from laborlm.baselines.lstm import LstmConfig, NemoLstm
from laborlm.models.career import CareerConfig, CareerTransformer
from laborlm.models.layers import OccupationNetwork

NetworkConfig = RegressionConfig | BagOfJobsConfig | LstmConfig | CareerConfig


def build_network(config: NetworkConfig, n_occupations: int) -> OccupationNetwork:
    """A freshly initialised network (seed the torch RNG first for a reproducible initialisation)."""
    if isinstance(config, RegressionConfig):
        return OccupationNetwork(
            MarkovRegression(config, n_occupations), n_occupations, config.two_stage, head=False
        )
    body: nn.Module
    if isinstance(config, BagOfJobsConfig):
        body = BagOfJobs(config, n_occupations)
    elif isinstance(config, LstmConfig):
        body = NemoLstm(config, n_occupations)
    else:
        body = CareerTransformer(config, n_occupations)
    return OccupationNetwork(body, n_occupations, config.two_stage)
