"""Label tokens: every scored label string is one added token, in context and alone, and scoring agrees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from laborlm import schema
from laborlm.corpus.render import render_with_spans
from laborlm.corpus.template import load_template
from laborlm.corpus.tokenizer import INFO_FILE, TokenizerConfig, load_tokenizer, token_spans, train_tokenizer
from laborlm.llm.scoring import LlmScorer
from unit.llm.llm_world import sticky_panel, tiny_llama, tiny_taxonomy, write_corpus


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("labels")
    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    panel = sticky_panel(60, 0, taxonomy, "a")
    tok = train_tokenizer(
        write_corpus(panel, taxonomy, template, root / "corpus"),
        root / "tok",
        TokenizerConfig(vocab_size=400, min_frequency=2),
    )
    return taxonomy, template, panel, tok


def test_every_label_including_special_states_is_one_token(world: tuple) -> None:
    taxonomy, template, _, tok_dir = world
    tokenizer = load_tokenizer(tok_dir)
    labels = template.occupation_labels(taxonomy)
    assert any(taxonomy.is_special(c) for c in taxonomy.codes)
    for label in labels:
        ids = tokenizer(" " + label + "\n", add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (label, ids)
    info = json.loads((Path(tok_dir) / INFO_FILE).read_text())
    assert info["vocab_size"] == info["bpe_vocab_size"] + len(labels)
    # The recorded pieces are the plain BPE's: more than one token for a multi-word title.
    assert max(len(v["pieces"]) for v in info["label_tokens"].values()) > 1


def test_label_tokens_inside_a_career_text(world: tuple) -> None:
    taxonomy, template, _, tok_dir = world
    tokenizer = load_tokenizer(tok_dir)
    codes = list(taxonomy.codes[:3])
    career = schema.Career(
        "p", "psid", np.array([2000, 2001, 2002]), tuple(codes), (None, None, None), np.full(3, np.nan)
    )
    rendered = render_with_spans(career, taxonomy, template)
    spans = token_spans(rendered.text, rendered.spans, tokenizer)
    assert all(hi - lo == 1 for lo, hi in spans.spans)
    assert tokenizer.decode(spans.input_ids, skip_special_tokens=True) == rendered.text


def test_fast_scoring_of_single_token_labels_equals_naive(world: tuple) -> None:
    taxonomy, template, panel, tok_dir = world
    tokenizer = load_tokenizer(tok_dir)
    model = tiny_llama(len(tokenizer)).double()
    scorer = LlmScorer(model, tokenizer, template, taxonomy)
    assert all(g.n_query == 0 for g in scorer.groups)  # no trie pass: one softmax per person-year
    careers = scorer.encode_panel(panel.slice(0, 12))
    fast, naive = scorer.score(careers), scorer.score_naive(careers)
    np.testing.assert_allclose(fast, naive, atol=1e-8)
    assert float(np.exp(fast).sum(axis=1).max()) <= 1 + 1e-9


def test_plain_bpe_keeps_multi_token_titles(world: tuple, tmp_path: Path) -> None:
    taxonomy, template, panel, _ = world
    tok = load_tokenizer(
        train_tokenizer(
            write_corpus(panel, taxonomy, template, tmp_path / "c"),
            tmp_path / "t",
            TokenizerConfig(vocab_size=300, label_tokens=False),
        )
    )
    lengths = [
        len(tok(" " + lab + "\n", add_special_tokens=False)["input_ids"])
        for lab in template.occupation_labels(taxonomy)
    ]
    assert max(lengths) > 1
