"""Next-occupation models that are not language models: Markov chains and, later, regression, bag-of-jobs, LSTM."""

from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.markov import MarkovModel

__all__ = ["MarkovModel", "NextOccupationModel"]
