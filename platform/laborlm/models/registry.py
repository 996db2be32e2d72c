"""Every next-occupation model of CAREER's comparison by name, so a benchmark can list and build them.

    for name in model_names(): model = create_model(name, taxonomy); model.fit(train, valid); ...

Neural models come in a one-stage variant (a softmax over all occupations, CAREER's Figure 2a baselines)
and a two-stage variant (stay or move, then where: Eq. 18, Table 8), named ``<model>-one_stage`` and
``<model>-two_stage``. Training defaults follow Appendix G (learning rate and warm-up per model; NEMO's
are not reported, so it uses CAREER's).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from laborlm.baselines.bag_of_jobs import BagOfJobs, BagOfJobsConfig
from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.logistic import MarkovRegression, RegressionConfig
from laborlm.baselines.lstm import LstmConfig, NemoLstm
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import CheckpointError
from laborlm.models.architectures import NetworkConfig
from laborlm.models.career import CAREER_PRETRAINED, CAREER_SMALL, CAREER_TINY, CareerTransformer
from laborlm.models.fitting import FitConfig, NeuralModelConfig
from laborlm.models.neural import NeuralOccupationModel
from laborlm.occupations.taxonomy import Taxonomy


@dataclass(frozen=True)
class MarkovConfig:
    order: int  # 1 or 2: condition on the last job, or the last two


@dataclass(frozen=True)
class RegistryEntry:
    module: type  # MarkovModel, or the torch module computing the representation (the body)
    config: MarkovConfig | NetworkConfig  # the architecture's defaults
    fit: FitConfig | None = None  # training defaults; None for models estimated by counting


_FROM_SCRATCH = FitConfig(lr=5e-4, warmup_steps=500)  # CAREER without pretraining (also used for NEMO)
_FINE_TUNE = FitConfig(lr=1e-4, warmup_steps=500)  # CAREER initialised from resumes
_NEURAL: dict[str, tuple[type, NetworkConfig, FitConfig]] = {
    "regression": (MarkovRegression, RegressionConfig(), FitConfig(lr=5e-4, warmup_steps=4000)),
    "bag-of-jobs": (BagOfJobs, BagOfJobsConfig(), FitConfig(lr=5e-4, warmup_steps=5000)),
    "nemo": (NemoLstm, LstmConfig(), _FROM_SCRATCH),
    "career-small": (CareerTransformer, CAREER_SMALL, _FROM_SCRATCH),
    "career-pretrained": (CareerTransformer, CAREER_PRETRAINED, _FINE_TUNE),
    "career-tiny": (CareerTransformer, CAREER_TINY, FitConfig(lr=1e-3, warmup_steps=50)),
}

REGISTRY: dict[str, RegistryEntry] = {
    "markov1": RegistryEntry(MarkovModel, MarkovConfig(order=1)),
    "markov2": RegistryEntry(MarkovModel, MarkovConfig(order=2)),
    **{
        f"{base}-{head}": RegistryEntry(module, replace(network, two_stage=head == "two_stage"), fit)
        for base, (module, network, fit) in _NEURAL.items()
        for head in ("one_stage", "two_stage")
    },
}


def model_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def create_model(
    name: str, taxonomy: Taxonomy, fit: FitConfig | None = None, seed: int = 0
) -> NextOccupationModel:
    """A fresh (unfitted) model; ``fit`` overrides the registry's training defaults.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    if isinstance(entry.config, MarkovConfig):
        return MarkovModel(taxonomy, order=entry.config.order)
    assert entry.fit is not None
    return NeuralOccupationModel(NeuralModelConfig(name, entry.config, fit or entry.fit, seed), taxonomy)


# Marker file -> kind, checked in this order. An LLM folder is recognised first: its model/ subfolder holds
# a Hugging Face config.json, and a future layout change must not let it pass for a neural model.
_MARKERS: tuple[tuple[str, str], ...] = (
    ("laborlm_llm.json", "llm"),
    ("model.json", "markov"),
    ("config.json", "neural"),
    ("synth.yaml", "oracle"),
)


def saved_model_kind(path: Path) -> str:
    """``llm``, ``markov``, ``neural`` or ``oracle``: what ``load_model`` would load, without loading it.

    Raises:
        CheckpointError: the folder holds no saved LaborLM model.
    """
    path = Path(path)
    for marker, kind in _MARKERS:
        if (path / marker).exists():
            return kind
    raise CheckpointError(
        f"{path}: no saved model here (expected {', '.join(m for m, _ in _MARKERS)})"
    )


def load_model(path: Path) -> NextOccupationModel:
    """Load any saved model folder (LLM scoring or embedding model, Markov chain, neural model, or the
    synthetic oracle) by its marker file, so every saved model type is loadable by one function.

    Raises:
        CheckpointError: the folder holds no saved LaborLM model.
    """
    path = Path(path)
    kind = saved_model_kind(path)
    if kind == "llm":
        return _load_llm(path)
    if kind == "markov":
        return MarkovModel.load(path)
    if kind == "neural":
        return NeuralOccupationModel.load(path)
    from laborlm.synthetic.oracle import OracleModel

    return OracleModel.load(path)


def _load_llm(path: Path) -> NextOccupationModel:
    """A saved ``LlmOccupationModel`` or ``EmbeddingOccupationModel``, by the ``kind`` in its metadata."""
    import json

    from laborlm.llm.model import META_FILE, LlmOccupationModel

    try:
        kind = json.loads((path / META_FILE).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path / META_FILE}: unreadable: {exc}") from exc
    if kind == "embedding":
        from laborlm.llm.embedding import EmbeddingOccupationModel

        return EmbeddingOccupationModel.load(path)
    return LlmOccupationModel.load(path)  # raises CheckpointError on any other kind
