"""Small saved models for the serving tests (unit and integration): a tiny untrained Llama wrapped as an
``LlmOccupationModel`` and a Markov chain, both over the 40-occupation taxonomy of ``llm_world``.

Serving checks shapes, validation and plumbing, not accuracy, so the Llama is not trained (a random model's
top-k is still a well-formed distribution) and the tokenizer is trained on a small corpus only.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import torch

from laborlm import schema
from laborlm.baselines.markov import MarkovModel
from laborlm.corpus.template import load_template
from laborlm.corpus.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer
from laborlm.llm.model import LlmOccupationModel
from laborlm.occupations.taxonomy import Taxonomy
from unit.llm.llm_world import sticky_panel, tiny_llama, tiny_taxonomy, write_corpus


def corpus_panel(taxonomy: Taxonomy) -> pa.Table:
    """Careers plus one row per label, so the tokenizer sees every title (as a resume corpus would)."""
    every = schema.conform(
        pa.table(
            {
                "person_id": [f"z{i:03d}" for i in range(len(taxonomy))],
                "year": pa.array([2000] * len(taxonomy), pa.int32()),
                "occupation": list(taxonomy.codes),
                "source": ["psid"] * len(taxonomy),
            }
        )
    )
    return pa.concat_tables([sticky_panel(40, 0, taxonomy, "a"), every])


def save_tiny_llm(root: Path) -> Path:
    """A saved ``LlmOccupationModel`` folder (random 2-layer Llama, BPE tokenizer, labor-llm template)."""
    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    tok_dir = train_tokenizer(
        write_corpus(corpus_panel(taxonomy), taxonomy, template, root / "corpus"),
        root / "tokenizer",
        TokenizerConfig(vocab_size=400, min_frequency=2),
    )
    tokenizer = load_tokenizer(tok_dir)
    with torch.random.fork_rng(devices=[]):
        lm = tiny_llama(len(tokenizer), seed=0)
    lm.eval()
    model = LlmOccupationModel(lm, tokenizer, template, taxonomy, name="tiny-llm")
    model.save(root / "llm")
    return root / "llm"


def save_markov(root: Path) -> Path:
    """A saved order-1 Markov chain fitted on sticky careers."""
    taxonomy = tiny_taxonomy()
    model = MarkovModel(taxonomy, order=1)
    model.fit(sticky_panel(60, 3, taxonomy, "m"))
    model.save(root / "markov")
    return root / "markov"
