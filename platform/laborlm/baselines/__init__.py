"""Next-occupation models that are not CAREER: Markov chains, Markov regression, bag-of-jobs, NEMO (LSTM)."""

from laborlm.baselines.bag_of_jobs import BagOfJobs
from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.logistic import MarkovRegression
from laborlm.baselines.lstm import NemoLstm
from laborlm.baselines.markov import MarkovModel

__all__ = ["BagOfJobs", "MarkovModel", "MarkovRegression", "NemoLstm", "NextOccupationModel"]
