"""Greedy rationales on a handcrafted second-order chain, and similar careers."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from laborlm.analysis.panels import build_panel, score_rows
from laborlm.analysis.rationale import RationaleConfig, greedy_rationale, pick_examples, similar_careers
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import conform

TAX = Taxonomy.infer(["a", "b", "c", "d", "e", "g"])
K = len(TAX)  # 6 jobs + 3 special states
a, b, c, d, e, g = (TAX.index(x) for x in "abcdeg")


def _row(**p: float) -> np.ndarray:
    """A distribution over K: the given jobs' probabilities, the rest spread evenly."""
    out = np.zeros(K)
    for code, v in p.items():
        out[TAX.index(code)] = v
    rest = out == 0
    out[rest] = (1.0 - out.sum()) / rest.sum()
    return out


def _chain() -> MarkovModel:
    """p(. | i, j) = 0.5 * pair(i, j) + 0.5 * p1(. | j), with one informative pair: (a, c) -> d.

    Alone, a points to g (and a little to d), b and c to e; together, a then c make d the top move.
    """
    m = MarkovModel(TAX, order=2)
    m.first = _row(g=0.6, d=0.05)
    m.trans = np.tile(_row(e=0.3), (K, 1))
    m.trans[a] = _row(g=0.5, d=0.3, a=0.05)
    m.trans[b] = _row(e=0.5, d=0.1, b=0.05)
    m.trans[c] = _row(e=0.6, d=0.05, c=0.2)
    m.pair_counts = sp.csr_matrix(([10.0], ([a * K + c], [d])), shape=(K * K, K))
    return m


def _career(*codes: str, pid: str = "p") -> pa.Table:
    n = len(codes)
    return conform(
        pa.table(
            {
                "person_id": [pid] * n,
                "year": pa.array(range(2000, 2000 + n), pa.int32()),
                "occupation": list(codes),
                "education": ["bachelors"] * n,
                "source": ["toy"] * n,
            }
        )
    )


def _top_move(
    model: MarkovModel, panel: pa.Table, positions: tuple[int, ...], target: int, excluded: int
) -> int:
    rows = np.append(np.asarray(positions, dtype=np.int64), target)
    built = build_panel(panel, rows, np.array(["x"] * len(rows), dtype=object))
    dist = score_rows(model, built, np.array([len(rows) - 1]))[0]
    dist[excluded] = -np.inf
    return int(np.argmax(dist))


def test_greedy_rationale_reproduces_the_prediction_with_a_minimal_set() -> None:
    model = _chain()
    panel = _career("b", "a", "c", "d")
    r = greedy_rationale(model, panel, row=3, move=True)
    assert r.predicted == d and r.observed == d and r.history == (b, a, c)
    assert r.full_prob == pytest.approx(0.5 + 0.5 * 0.05)
    # Greedy: a raises p(d) most on its own (0.3 vs 0.1 and 0.05) but leaves g on top; adding c makes the
    # pair (a, c) and d the top move.
    assert r.chosen == (1, 2) and r.reproduced
    assert r.probs == pytest.approx((0.05, 0.3, 0.525))
    # The chosen set reproduces the argmax, and no smaller set does (brute force over all subsets).
    assert _top_move(model, panel, (1, 2), 3, excluded=c) == d
    for size in range(len(r.chosen)):
        for subset in combinations(range(3), size):
            assert _top_move(model, panel, subset, 3, excluded=c) != d, subset


def test_rationale_of_a_first_order_prediction_is_the_last_job() -> None:
    chain = _chain()
    chain.order = 1
    r = greedy_rationale(chain, _career("b", "a", "c", "e"), row=3, move=True)
    assert r.predicted == e and r.chosen == (2,) and r.reproduced  # c alone is the whole first-order history
    first = greedy_rationale(chain, _career("g", "d"), row=0)  # no history: nothing to add
    assert first.chosen == () and first.reproduced and first.predicted == g


def test_pick_examples_prefers_moves_the_model_gets_right() -> None:
    model = _chain()
    two = pa.concat_tables([_career("b", "a", "c", "d"), _career("b", "a", "c", "b", pid="q")])
    assert pick_examples(model, two, RationaleConfig(examples=5, min_history=3)) == [3]
    assert pick_examples(model, two, RationaleConfig(examples=5, min_history=3, require_correct=False)) == [
        3,
        7,
    ]
    with pytest.raises(ConfigError):
        RationaleConfig(examples=0)


def test_similar_careers_share_no_state_and_are_ordered(small_psid) -> None:
    model = MarkovModel(small_psid.taxonomy)
    model.fit(small_psid.train)
    pairs, kind = similar_careers(model, small_psid.test, years=4, pairs=5, kind="bag")
    assert kind == "bag" and 1 <= len(pairs) <= 5
    sims = [p.similarity for p in pairs]
    assert sims == sorted(sims, reverse=True) and all(-1.0 - 1e-9 <= s <= 1.0 + 1e-9 for s in sims)
    people = [x for p in pairs for x in (p.person_a, p.person_b)]
    assert len(set(people)) == len(people)
    for p in pairs:
        assert len(p.jobs_a) == 4 and not set(p.jobs_a) & set(p.jobs_b)
