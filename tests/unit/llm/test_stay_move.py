"""Stay/move training (llm.stay_move): the stay token, the loss, and a scorer that reads what was trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from laborlm.corpus.render import render_table
from laborlm.corpus.template import load_template
from laborlm.corpus.tokenizer import STAY, TokenizerConfig, load_tokenizer, train_tokenizer
from laborlm.errors import ConfigError
from laborlm.llm.scoring import LlmScorer
from laborlm.llm.stay_move import (
    install,
    previous_labels,
    previous_targets,
    stay_token_id,
    two_stage_log_probs,
)
from unit.llm.llm_world import sticky_panel, tiny_llama, tiny_taxonomy, train_lm, write_corpus


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    root = tmp_path_factory.mktemp("stay")
    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    panel = sticky_panel(60, 0, taxonomy, "a")
    tok_dir = train_tokenizer(
        write_corpus(panel, taxonomy, template, root / "corpus"),
        root / "tok",
        TokenizerConfig(vocab_size=400, min_frequency=2, stay_token=True),
    )
    tokenizer = load_tokenizer(tok_dir)
    torch.manual_seed(0)
    model = tiny_llama(len(tokenizer)).double()
    assert install(model, tokenizer)
    texts = render_table(panel, taxonomy, template).column("text").to_pylist()
    train_lm(model, texts, tokenizer, steps=15)  # the stay/move loss, so stays get real probability
    return taxonomy, template, panel, tokenizer, model


def test_the_stay_token_is_special_and_never_read_from_text(world: tuple) -> None:
    taxonomy, template, panel, tokenizer, _ = world
    stay = stay_token_id(tokenizer)
    assert stay is not None and tokenizer.added_tokens_decoder[stay].special
    ids = tokenizer(render_table(panel, taxonomy, template).column("text").to_pylist())["input_ids"]
    assert all(stay not in row for row in ids)
    assert tokenizer(STAY.replace("|", "| "), add_special_tokens=False)["input_ids"].count(stay) == 0
    with pytest.raises(ConfigError, match="stay_token: needs label_tokens"):
        TokenizerConfig(label_tokens=False, stay_token=True)


def test_previous_labels_stay_within_a_document() -> None:
    label_of = torch.full((10,), -1)
    label_of[torch.tensor([5, 6, 7])] = torch.tensor([0, 1, 2])
    bos, eos = 1, 2
    ids = torch.tensor([[bos, 3, 5, 4, 6, 4, eos, bos, 3, 7, -100]])
    prev = previous_labels(ids, label_of, torch.tensor([bos, eos]))
    assert prev.tolist() == [[-1, -1, 0, 0, 1, 1, -1, -1, -1, 2, 2]]


def test_without_labels_the_loss_is_plain_cross_entropy(world: tuple) -> None:
    _, _, _, tokenizer, model = world
    ids = tokenizer(["<A worker from the PSID dataset> The worker was born in 1950."])["input_ids"]
    x = torch.tensor(ids)
    with torch.no_grad():
        out = model(input_ids=x, labels=x)
        plain = F.cross_entropy(out.logits[0, :-1], x[0, 1:])
    assert out.loss.item() == pytest.approx(plain.item(), rel=1e-12)


def test_training_loss_and_scorer_read_the_same_probabilities(world: tuple) -> None:
    """The loss at each label is exactly -log of what the scorer reports for it (stays included)."""
    taxonomy, template, panel, tokenizer, model = world
    scorer = LlmScorer(model, tokenizer, template, taxonomy)
    rendered = render_table(panel.slice(0, 40), taxonomy, template)
    careers = scorer.encode_rendered(rendered)
    raw = scorer.score(careers)
    targets = np.concatenate([c.targets for c in careers])
    prev = previous_targets([c.targets for c in careers])
    assert (prev == targets).mean() > 0.3  # sticky careers: stays are scored
    nll = []
    with torch.no_grad():
        for career in careers:
            x = torch.as_tensor(career.input_ids)[None]
            labels = torch.full_like(x, -100)
            labels[0, career.prompt_ends] = x[0, career.prompt_ends]  # the loss on the label tokens only
            nll.append(model(input_ids=x, labels=labels).loss.item() * len(career.prompt_ends))
    assert sum(nll) == pytest.approx(-raw[np.arange(len(targets)), targets].sum(), rel=1e-9)


def test_fast_two_stage_scoring_equals_naive_and_is_a_distribution(world: tuple) -> None:
    taxonomy, template, panel, tokenizer, model = world
    scorer = LlmScorer(model, tokenizer, template, taxonomy)
    careers = scorer.encode_rendered(render_table(panel.slice(0, 4), taxonomy, template))
    fast, naive = scorer.score(careers), scorer.score_naive(careers)
    np.testing.assert_allclose(fast, naive, atol=1e-6)
    totals = np.exp(fast).sum(axis=1)
    assert np.all(totals <= 1 + 1e-9) and np.all(totals > 0)


def test_two_stage_log_probs_by_hand() -> None:
    raw = np.log(np.array([[0.5, 0.3, 0.1], [0.2, 0.2, 0.5]]))
    stay = np.log(np.array([0.05, 0.08]))
    out = two_stage_log_probs(raw, stay, np.array([-1, 2]))
    np.testing.assert_allclose(out[0], raw[0])  # a first year is left as it is
    np.testing.assert_allclose(np.exp(out[1]), [0.2 / 0.5, 0.2 / 0.5, 0.08 / 0.5])


def test_the_tokenizer_command_adds_the_stay_token_unless_told_not_to(tmp_path) -> None:
    from laborlm.cli import main

    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    corpus = write_corpus(sticky_panel(20, 0, taxonomy, "a"), taxonomy, template, tmp_path / "corpus")
    for flags, stay in (([], True), (["--no-stay-token"], False), (["--multi-token-labels"], False)):
        out = tmp_path / f"tok{len(flags)}{stay}{flags}".replace("-", "").replace(" ", "")
        assert (
            main(
                [
                    "corpus",
                    "tokenizer",
                    "--corpus",
                    str(corpus),
                    "--out",
                    str(out),
                    "--vocab-size",
                    "300",
                    *flags,
                ]
            )
            == 0
        )
        assert (stay_token_id(load_tokenizer(out)) is not None) is stay


def test_stay_move_asked_of_a_tokenizer_without_the_stay_token_is_a_config_error(tmp_path) -> None:
    from laborlm.training.config import TrainConfig
    from laborlm.training.workflow import prepare_tokenizer

    taxonomy, template = tiny_taxonomy(), load_template("labor-llm")
    corpus = write_corpus(sticky_panel(20, 0, taxonomy, "a"), taxonomy, template, tmp_path / "corpus")
    plain = train_tokenizer(corpus, tmp_path / "plain", TokenizerConfig(vocab_size=300))
    with pytest.raises(ConfigError, match="has no stay token"):
        prepare_tokenizer(TrainConfig(out_dir=tmp_path, tokenizer=str(plain), stay_move=True), [corpus])
    assert prepare_tokenizer(TrainConfig(out_dir=tmp_path, tokenizer=str(plain)), [corpus]) == str(
        plain.resolve()
    )
    stay = train_tokenizer(corpus, tmp_path / "stay", TokenizerConfig(vocab_size=300, stay_token=True))
    with pytest.raises(ConfigError, match="has the stay token"):
        prepare_tokenizer(TrainConfig(out_dir=tmp_path, tokenizer=str(stay), stay_move=False), [corpus])
