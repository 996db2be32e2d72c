"""Every next-occupation model of CAREER's comparison by name, so a benchmark can list and build them.

    for name in model_names(): model = create_model(name, taxonomy); model.fit(train, valid); ...
    model = load_model(folder)      # any saved model folder LaborLM writes, recognised by its metadata

``unigram`` (occupation frequencies of the training split, add-one smoothed) is the floor every model must
beat; the Markov chains are counted too; everything else is a neural network trained by ``models.fitting``.

Neural models come in a one-stage variant (a softmax over all occupations, CAREER's Figure 2a baselines)
and a two-stage variant (stay or move, then where: Eq. 18, Table 8), named ``<model>-one_stage`` and
``<model>-two_stage``. Training defaults follow Appendix G (learning rate and warm-up per model; NEMO's
are not reported, so it uses CAREER's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from laborlm.baselines.bag_of_jobs import BagOfJobs, BagOfJobsConfig
from laborlm.baselines.base import NextOccupationModel
from laborlm.baselines.logistic import MarkovRegression, RegressionConfig
from laborlm.baselines.lstm import LstmConfig, NemoLstm
from laborlm.baselines.markov import MarkovModel
from laborlm.baselines.unigram import UnigramModel
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
class UnigramConfig:
    alpha: float = 1.0  # pseudo-count of every occupation (add-one), so unseen labels keep some mass


@dataclass(frozen=True)
class RegistryEntry:
    module: type  # UnigramModel, MarkovModel, or the torch module computing the representation (the body)
    config: UnigramConfig | MarkovConfig | NetworkConfig  # the architecture's defaults
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
    "unigram": RegistryEntry(UnigramModel, UnigramConfig()),
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
    if isinstance(entry.config, UnigramConfig):
        return UnigramModel(taxonomy, alpha=entry.config.alpha)
    if isinstance(entry.config, MarkovConfig):
        return MarkovModel(taxonomy, order=entry.config.order)
    assert entry.fit is not None
    return NeuralOccupationModel(NeuralModelConfig(name, entry.config, fit or entry.fit, seed), taxonomy)


@dataclass(frozen=True)
class FitOverrides:
    """Training settings applied to every neural model on top of its registry defaults (App. G).

    The registry's warm-ups (up to 5,000 steps) assume CAREER's 16k-token batches over hundreds of thousands of
    person-years; on panels of a few thousand people (the synthetic benchmark, most user surveys) these
    smaller batches and warm-ups train in minutes. ``laborlm benchmark careers`` and ``laborlm fit`` share them.
    """

    max_tokens: int = 500  # padded person-years per batch
    lr: float | None = (
        2e-3  # peak learning rate of models trained from scratch; None: each model's registry lr
    )
    lr_by_model: dict[str, float] = field(default_factory=lambda: {"regression": 5e-2})  # per architecture
    # (registry name without -one_stage/-two_stage): a multinomial logit on one-hot features needs far larger
    # steps than a deep network to reach its optimum in a few hundred updates.
    warmup_steps: int | None = 100  # None: keep each model's registry warm-up
    max_epochs: int = 30
    patience: int | None = 3  # evaluations (epochs) without improvement before stopping
    num_workers: int | None = None  # None: fit in-process; n: Ray Train with n workers (cluster runs)
    use_gpu: bool = False


def is_counted(name: str) -> bool:
    """Whether a registry model is estimated by counting (unigram, Markov): deterministic, nothing to pretrain."""
    return REGISTRY[name].fit is None


def fit_config(
    name: str,
    overrides: FitOverrides,
    *,
    lr: float | None = None,
    epochs: int | None = None,
    max_tokens: int | None = None,
) -> FitConfig | None:
    """The training settings of registry model ``name`` with ``overrides`` applied; None for counted models.

    ``lr`` / ``epochs`` / ``max_tokens`` win over the overrides (pretraining and fine-tuning use their own).
    """
    base = REGISTRY[name].fit
    if base is None:
        return None
    o = overrides
    lr = lr or o.lr_by_model.get(name.rsplit("-", 1)[0])
    return replace(
        base,
        max_tokens=max_tokens or o.max_tokens,
        warmup_steps=base.warmup_steps if o.warmup_steps is None else o.warmup_steps,
        max_epochs=epochs or o.max_epochs,
        patience=o.patience,
        num_workers=o.num_workers,
        use_gpu=o.use_gpu,
        lr=lr or o.lr or base.lr,
    )


def taxonomy_difference(ours: Taxonomy, theirs: Taxonomy, ours_name: str, theirs_name: str) -> str | None:
    """None when two taxonomies have the same codes in the same order, else which codes differ (for errors)."""
    if ours.codes == theirs.codes:
        return None
    only_ours = [c for c in ours.codes if c not in set(theirs.codes)]
    only_theirs = [c for c in theirs.codes if c not in set(ours.codes)]

    def shown(codes: list[str]) -> str:
        return ", ".join(codes[:10]) + (f" ... ({len(codes)} in all)" if len(codes) > 10 else "")

    parts = [
        f"{ours_name} has taxonomy '{ours.name}' ({len(ours)} codes), {theirs_name} '{theirs.name}' ({len(theirs)})"
    ]
    if only_ours:
        parts.append(f"only in {ours_name}: {shown(only_ours)}")
    if only_theirs:
        parts.append(f"only in {theirs_name}: {shown(only_theirs)}")
    if not only_ours and not only_theirs:
        parts.append("the same codes in another order")
    return "; ".join(parts)


# --- saved models ---------------------------------------------------------------------------------------
#
# Every folder LaborLM writes records what it is in a metadata file; ``saved_model_kind`` reads it, checked
# in this order. An LLM folder is recognised first: its model/ subfolder (and a `laborlm train` folder itself)
# holds a Hugging Face config.json, which must never pass for a neural model's.
_LLM_META = "laborlm_llm.json"  # llm/: a scoring or embedding model (LlmOccupationModel.save)
_TRAINED_META = "laborlm_model.json"  # laborlm train: <out_dir>/<phase>/model (training/loop.py _export)
_COUNTED_META = "model.json"  # unigram and Markov chains, told apart by their ``format``
_NEURAL_META = "config.json"  # NeuralOccupationModel.save (format laborlm.neural/1)
_ORACLE_META = "synth.yaml"  # a synthetic panel folder, or a saved oracle
_COUNTED_FORMATS = {"laborlm.markov/1": "markov", "laborlm.unigram/1": "unigram"}
_NEURAL_FORMAT = "laborlm.neural/1"
KINDS = ("llm", "trained_lm", "unigram", "markov", "neural", "oracle")  # what saved_model_kind returns


def saved_model_kind(path: Path) -> str:
    """What ``load_model`` would load (one of ``KINDS``), by the folder's metadata, without loading it.

    Raises:
        CheckpointError: the folder holds no saved LaborLM model; the message says what was found there.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: no such model folder" if not path.exists() else f"{path}: a file, not a model folder"
        )
    if (path / _LLM_META).is_file():
        return "llm"
    if (path / _TRAINED_META).is_file():
        return "trained_lm"
    if (path / _COUNTED_META).is_file():
        fmt = _read_json(path / _COUNTED_META).get("format")
        if fmt in _COUNTED_FORMATS:
            return _COUNTED_FORMATS[fmt]
        raise CheckpointError(f"{path / _COUNTED_META}: format {fmt!r}; known: {', '.join(_COUNTED_FORMATS)}")
    if (path / _NEURAL_META).is_file():
        meta = _read_json(path / _NEURAL_META)
        if meta.get("format") == _NEURAL_FORMAT:
            return "neural"
        if "model_type" in meta or "architectures" in meta:
            raise CheckpointError(
                f"{path}: a Hugging Face model without {_LLM_META} (llm/) or {_TRAINED_META} (laborlm train), so its "
                "template and taxonomy are unknown; wrap it with LlmOccupationModel.from_pretrained(...).save(DIR)"
            )
        raise CheckpointError(
            f"{path / _NEURAL_META}: format {meta.get('format')!r}, expected {_NEURAL_FORMAT!r}"
        )
    if (path / _ORACLE_META).is_file():
        return "oracle"
    raise CheckpointError(f"{path}: no saved model here{_what_is_there(path)}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _what_is_there(path: Path) -> str:
    """What a folder holds, and the saved models just below it, for a message that helps find the right one."""
    expected = (
        f" (expected one of {_LLM_META}, {_TRAINED_META}, {_COUNTED_META}, {_NEURAL_META} or {_ORACLE_META})"
    )
    below = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        for candidate in (sub, sub / "model"):
            if any(
                (candidate / m).is_file() for m in (_LLM_META, _TRAINED_META, _COUNTED_META, _ORACLE_META)
            ) or ((candidate / _NEURAL_META).is_file() and (candidate / "model.safetensors").is_file()):
                below.append(str(candidate))
                break
    found = sorted(p.name for p in path.iterdir())
    shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") if found else "nothing"
    hint = f"; saved models below it: {', '.join(below[:5])}" if below else ""
    return f"{expected}; found {shown}{hint}"


def load_model(path: Path) -> NextOccupationModel:
    """Load any saved model folder LaborLM writes, recognised by its metadata (``saved_model_kind``): an LLM
    scoring or embedding model (llm/), a language model from ``laborlm train`` (``<phase>/model``), a unigram
    or Markov chain, a neural model (``laborlm fit``, benchmarks), or the synthetic oracle (a panel folder).

    Raises:
        CheckpointError: the folder holds no saved LaborLM model, or an incomplete one.
    """
    path = Path(path)
    kind = saved_model_kind(path)
    if kind == "llm":
        return _load_llm(path)
    if kind == "trained_lm":
        return _load_trained_lm(path)
    if kind == "unigram":
        return UnigramModel.load(path)
    if kind == "markov":
        return MarkovModel.load(path)
    if kind == "neural":
        return NeuralOccupationModel.load(path)
    from laborlm.synthetic.oracle import OracleModel

    return OracleModel.load(path)


def _load_llm(path: Path) -> NextOccupationModel:
    """A saved ``LlmOccupationModel`` or ``EmbeddingOccupationModel``, by the ``kind`` in its metadata."""
    from laborlm.llm.model import META_FILE, LlmOccupationModel

    kind = _read_json(path / META_FILE).get("kind")
    if kind == "embedding":
        from laborlm.llm.embedding import EmbeddingOccupationModel

        return EmbeddingOccupationModel.load(path)
    return LlmOccupationModel.load(path)  # raises CheckpointError on any other kind


def _load_trained_lm(path: Path) -> NextOccupationModel:
    """A ``laborlm train`` model folder as a direct-scoring ``LlmOccupationModel``.

    The folder holds the weights (full, or a LoRA adapter), the tokenizer, ``taxonomy.csv`` and
    ``laborlm_model.json`` (template name, phase, kind, base model). An adapter is scored merged: from the
    phase's ``merged/`` folder that the training workflow writes beside it, else merged in memory onto its
    recorded base model.
    """
    from laborlm.corpus.template import available_templates, load_template
    from laborlm.llm.model import LlmOccupationModel

    info = _read_json(path / _TRAINED_META)
    if not (path / "taxonomy.csv").is_file():
        raise CheckpointError(
            f"{path}: a `laborlm train` model without taxonomy.csv; copy the training corpus's taxonomy.csv here"
        )
    taxonomy = Taxonomy.from_csv(path / "taxonomy.csv")
    if isinstance(info.get("taxonomy"), str):
        taxonomy.name = info["taxonomy"]  # the corpus's name for it (occ1990dd, ...), not the file's stem
    template_name = info.get("template")
    if (path / "template.yaml").is_file():
        template = load_template(path / "template.yaml")
    elif isinstance(template_name, str) and template_name in available_templates():
        template = load_template(template_name)
    else:
        raise CheckpointError(
            f"{path}: {_TRAINED_META} names template {template_name!r}, which is not built in "
            f"({', '.join(available_templates())}); copy the corpus's template.yaml here"
        )
    name = f"llm-{info.get('phase', 'model')}"
    if info.get("kind") != "lora_adapter":
        return LlmOccupationModel.from_pretrained(path, path, template, taxonomy, name=name)
    merged = path.parent / "merged"
    if (merged / "config.json").is_file():
        return LlmOccupationModel.from_pretrained(merged, path, template, taxonomy, name=name)
    base = info.get("base_model")
    if not (isinstance(base, str) and (Path(base) / "config.json").is_file()):
        raise CheckpointError(
            f"{path}: a LoRA adapter whose base model {base!r} is not a local folder and without {merged}; "
            "run `laborlm train` to the end of the phase (it writes merged/)"
        )
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from laborlm.corpus.tokenizer import load_tokenizer

    lm = AutoModelForCausalLM.from_pretrained(base, local_files_only=True)
    lm = PeftModel.from_pretrained(lm, str(path), local_files_only=True).merge_and_unload()
    lm.eval()
    return LlmOccupationModel(lm, load_tokenizer(path), template, taxonomy, name=name)
