"""The unigram floor: add-one occupation frequencies, by hand; saved and reloaded through the shared loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm.baselines.markov import MarkovModel
from laborlm.baselines.unigram import UnigramModel
from laborlm.errors import CheckpointError
from laborlm.evaluation.harness import evaluate_model
from laborlm.models.registry import create_model, is_counted, load_model, saved_model_kind
from laborlm.occupations import Taxonomy
from laborlm.schema import conform


def _table(seqs: list[list[str]], prefix: str = "p") -> pa.Table:
    pid, year, occ = [], [], []
    for i, s in enumerate(seqs):
        for t, c in enumerate(s):
            pid.append(f"{prefix}{i:05d}")
            year.append(2000 + t)
            occ.append(c)
    return conform(
        pa.table(
            {
                "person_id": pid,
                "year": pa.array(year, pa.int32()),
                "occupation": occ,
                "source": ["x"] * len(pid),
            }
        )
    )


def test_add_one_frequencies_by_hand() -> None:
    tax = Taxonomy.infer(["a", "b", "c"])  # K = 6 with the special states
    model = create_model("unigram", tax)
    assert isinstance(model, UnigramModel) and model.name == "unigram" and is_counted("unigram")
    model.fit(_table([["a", "b"], ["a", "a"]]))  # a: 3, b: 1 of N = 4 person-years
    expected = np.array([3 + 1, 1 + 1, 0 + 1, 1, 1, 1]) / (4 + 6)  # every label keeps mass, unseen c too
    lp = model.log_probs(_table([["c", "a", "unemployed"]]))
    assert lp.shape == (3, 6)
    assert np.allclose(np.exp(lp), expected[None, :])
    assert np.exp(lp).sum(axis=1) == pytest.approx([1.0] * 3)


def test_saved_unigram_is_recognised_by_its_format(tmp_path: Path) -> None:
    tax = Taxonomy.infer(["a", "b", "c"])
    model = UnigramModel(tax)
    model.fit(_table([["a", "b", "b"]]))
    model.save(tmp_path / "u")
    assert saved_model_kind(tmp_path / "u") == "unigram"
    loaded = load_model(tmp_path / "u")
    assert isinstance(loaded, UnigramModel) and np.allclose(loaded.probs, model.probs)
    # Markov chains write the same file name (model.json); the format, not the file, decides.
    markov = MarkovModel(tax)
    markov.fit(_table([["a", "b", "b"]]))
    markov.save(tmp_path / "m")
    assert saved_model_kind(tmp_path / "m") == "markov" and isinstance(
        load_model(tmp_path / "m"), MarkovModel
    )


def test_every_model_beats_nothing_but_the_floor_is_a_distribution() -> None:
    """On sticky careers a first-order Markov chain beats the unigram; the unigram beats uniform over K."""
    tax = Taxonomy.infer(["a", "b", "c"])
    train = _table([["a"] * 6, ["b"] * 6, ["a"] * 6, ["c", "c", "c", "a", "a", "a"]] * 5)
    test = _table([["a"] * 5, ["b"] * 5], prefix="t")
    unigram, markov = UnigramModel(tax), MarkovModel(tax)
    unigram.fit(train)
    markov.fit(train)
    floor = evaluate_model(unigram, test).perplexity
    assert evaluate_model(markov, test).perplexity < floor < len(tax)


def test_bad_alpha_and_tampered_folders_fail_clearly(tmp_path: Path) -> None:
    tax = Taxonomy.infer(["a", "b"])
    with pytest.raises(ValueError, match="alpha"):
        UnigramModel(tax, alpha=0.0)
    UnigramModel(tax).save(tmp_path / "u")
    (tmp_path / "u" / "unigram.npz").unlink()
    with pytest.raises(CheckpointError, match="not a complete saved unigram"):
        load_model(tmp_path / "u")
