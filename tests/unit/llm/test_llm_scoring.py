"""Fast label scoring (shared prefix pass + token trie) against the naive one-pass-per-label reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from llm_world import TinyWorld

from laborlm.corpus.render import render_table
from laborlm.corpus.tokenizer import token_spans
from laborlm.errors import LaborLMError
from laborlm.evaluation.harness import evaluate_model
from laborlm.llm.model import LlmOccupationModel
from laborlm.llm.scoring import LlmScorer, ScoringConfig, normalize, outside_mass
from laborlm.llm.trie import CandidateTrie, build_groups

# Small batch limits: several label groups, several person-year chunks and person batches per call.
SPLIT = ScoringConfig(max_tree_nodes=60, max_query_tokens=150, max_prefix_tokens=300, naive_batch_size=16)


def people(world: TinyWorld, n: int) -> object:
    ids = sorted(set(world.test.column("person_id").to_pylist()))[:n]
    import pyarrow as pa
    import pyarrow.compute as pc

    return world.test.filter(pc.is_in(world.test.column("person_id"), pa.array(ids)))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fast_and_naive_agree(world: TinyWorld, dtype: torch.dtype) -> None:
    model = copy.deepcopy(world.model).to(dtype)
    scorer = LlmScorer(model, world.tokenizer, world.template, world.taxonomy)
    careers = scorer.encode_panel(people(world, 3))
    fast = scorer.score(careers)
    naive = scorer.score_naive(careers)
    assert fast.shape == (sum(len(c.prompt_ends) for c in careers), len(world.taxonomy))
    assert np.abs(fast - naive).max() < 1e-5
    split = LlmScorer(model, world.tokenizer, world.template, world.taxonomy, SPLIT)
    assert len(split.groups) > 1
    assert np.abs(split.score(careers) - naive).max() < 1e-5
    assert np.abs(split.score_naive(careers[:1]) - naive[: len(careers[0].prompt_ends)]).max() < 1e-5


def test_rows_are_distributions_and_mass_is_accounted(world: TinyWorld) -> None:
    model = LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy)
    scores = model.score(world.test)
    assert scores.raw.shape == (world.test.num_rows, len(world.taxonomy))
    assert (scores.raw <= 0).all() and np.isfinite(scores.raw).all()
    np.testing.assert_allclose(np.exp(scores.normalized).sum(axis=1), 1.0, atol=1e-12)
    mass = scores.outside_mass
    assert ((mass >= 0) & (mass <= 1)).all()
    np.testing.assert_allclose(np.exp(scores.raw).sum(axis=1) + mass, 1.0, atol=1e-12)
    summary = scores.summary()
    assert summary.person_years == world.test.num_rows
    assert summary.perplexity_normalized <= summary.perplexity_raw
    assert 0 <= summary.outside_mass <= 1
    # The shared harness scores it like any model, on the renormalised distribution.
    metrics = evaluate_model(model, world.test)
    assert metrics.perplexity == pytest.approx(summary.perplexity_normalized, rel=1e-9)


def test_scored_ids_are_the_full_text_tokenization(world: TinyWorld) -> None:
    """prompt ids + the true label's ids, as scored, are exactly the ids of the whole text at that label."""
    scorer = LlmScorer(world.model, world.tokenizer, world.template, world.taxonomy)
    rendered = render_table(world.test, world.taxonomy, world.template).to_pylist()
    checked = 0
    for row in rendered:
        spans = [(s["start"], s["end"]) for s in row["spans"]]
        full = world.tokenizer(row["text"])["input_ids"]  # type: ignore[operator]
        career = scorer.encode(row["text"], spans, row["targets"])
        assert career.input_ids.tolist() == full
        for t, end in enumerate(career.prompt_ends):
            label = scorer.label_ids[world.taxonomy.index(row["targets"][t])]
            scored = career.input_ids[:end].tolist() + list(label)
            assert scored == full[: len(scored)]
            # ... and the scored string is " " + label + "\n", decoded back from those ids.
            start, stop = spans[t]
            assert world.tokenizer.decode(list(label)) == " " + row["text"][start:stop] + "\n"  # type: ignore[attr-defined]
            checked += 1
    assert checked == world.test.num_rows
    assert token_spans(
        rendered[0]["text"], [(s["start"], s["end"]) for s in rendered[0]["spans"]], world.tokenizer
    )


def test_a_label_tokenized_differently_in_context_is_refused(world: TinyWorld) -> None:
    scorer = LlmScorer(world.model, world.tokenizer, world.template, world.taxonomy)
    row = render_table(people(world, 1), world.taxonomy, world.template).to_pylist()[0]
    k = world.taxonomy.index(row["targets"][0])
    scorer.label_ids = (*scorer.label_ids[:k], (*scorer.label_ids[k], 5), *scorer.label_ids[k + 1 :])
    with pytest.raises(LaborLMError, match="differ from its ids alone"):
        scorer.encode(row["text"], [(s["start"], s["end"]) for s in row["spans"]], row["targets"])


def test_save_and_load_reproduce_log_probs(world: TinyWorld, tmp_path: object) -> None:
    model = LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy, name="tiny-llm")
    panel = people(world, 4)
    before = model.log_probs(panel)
    model.save(tmp_path / "m")  # type: ignore[operator]
    loaded = LlmOccupationModel.load(tmp_path / "m")  # type: ignore[operator]
    assert loaded.name == "tiny-llm" and loaded.taxonomy.codes == world.taxonomy.codes
    assert loaded.template.fingerprint() == world.template.fingerprint()
    np.testing.assert_allclose(loaded.log_probs(panel), before, atol=1e-9)
    np.testing.assert_allclose(loaded.raw_log_probs(panel), model.raw_log_probs(panel), atol=1e-9)


def test_normalize_and_outside_mass() -> None:
    raw = np.log(np.array([[0.5, 0.25, 0.0625], [0.0, 0.0, 1.0]]) + 1e-300)
    np.testing.assert_allclose(np.exp(normalize(raw)).sum(axis=1), 1.0)
    np.testing.assert_allclose(outside_mass(raw), [0.1875, 0.0], atol=1e-12)


def test_trie_shares_prefixes_and_feeds_only_internal_nodes() -> None:
    trie = CandidateTrie.build([(1, 2, 9), (1, 3, 9), (4, 9), (1, 2)])
    # nodes: 0:1 1:1-2 2:1-2-9 3:1-3 4:1-3-9 5:4 6:4-9 ; internal (fed): 1, 1-2, 1-3, 4
    assert trie.n_nodes == 7 and trie.query.tolist() == [0, 1, 3, 5]
    assert trie.paths[3].tolist() == [0, 1, -1]  # candidate (1, 2) ends on an internal node
    assert trie.source_row.tolist() == [0, 1, 2, 1, 3, 0, 4]
    assert trie.tree_mask.astype(int).tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]]
    groups = build_groups([(1, 2, 9), (1, 3, 9), (4, 9), (1, 2)], max_nodes=2)
    assert sorted(k for g in groups for k in g.candidates.tolist()) == [0, 1, 2, 3]
    assert all(g.n_query <= 2 for g in groups)
    with pytest.raises(ValueError, match="same token sequence"):
        CandidateTrie.build([(1, 2), (1, 2)])


def test_pickled_model_and_ray_actor_logic_without_ray(world: TinyWorld) -> None:
    """What Ray ships (a pickled model) scores the same, and the actor's per-batch logic, run directly,
    turns rendered people into person-year rows in order."""
    import pickle

    import pyarrow as pa

    from laborlm.llm.distributed import _ScoreActor

    model = LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy)
    panel = people(world, 3)
    shipped = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(shipped.raw_log_probs(panel), model.raw_log_probs(panel))
    rendered = render_table(panel, world.taxonomy, world.template)
    rows = _ScoreActor(shipped, "log_probs")(rendered)
    assert rows.column("person_id").to_pylist() == panel.column("person_id").to_pylist()
    assert rows.column("year").to_pylist() == panel.column("year").to_pylist()
    values = np.array(rows.column("log_probs").to_pylist())
    np.testing.assert_allclose(values, model.raw_log_probs(panel), atol=1e-5)
    hidden = _ScoreActor(shipped, "hidden")(rendered).column("hidden")
    assert (
        isinstance(hidden.type, pa.FixedSizeListType)
        and hidden.type.list_size == world.model.config.hidden_size
    )


def test_ray_data_scoring_is_the_callers_wrapper(world: TinyWorld, tmp_path) -> None:
    """The model never goes distributed by itself: ``on_ray_data`` wraps it (no Ray is started here), the
    wrapper is a ``NextOccupationModel`` that delegates all but scoring, and ``None`` workers keep it as is."""
    from laborlm.baselines.base import NextOccupationModel
    from laborlm.llm.distributed import RayDataOccupationModel, on_ray_data

    model = LlmOccupationModel(world.model, world.tokenizer, world.template, world.taxonomy, name="m")
    assert not hasattr(model, "num_workers")
    assert on_ray_data(model, num_workers=None) is model
    wrapped = on_ray_data(model, num_workers=3, batch_size=5)
    assert isinstance(wrapped, RayDataOccupationModel) and isinstance(wrapped, NextOccupationModel)
    assert (wrapped.name, wrapped.taxonomy, wrapped.kind, wrapped.model) == (
        "m",
        world.taxonomy,
        model.kind,
        model,
    )
    assert (wrapped.num_workers, wrapped.batch_size) == (3, 5)
    wrapped.save(tmp_path / "saved")  # the wrapped model's own folder: loads back without Ray
    np.testing.assert_allclose(
        LlmOccupationModel.load(tmp_path / "saved").raw_log_probs(people(world, 2)),
        model.raw_log_probs(people(world, 2)),
        atol=1e-9,
    )
    with pytest.raises(LaborLMError, match="num_workers"):
        RayDataOccupationModel(model, num_workers=0)
