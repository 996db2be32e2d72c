from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm.baselines.markov import MarkovModel
from laborlm.evaluation.metrics import perplexity, target_log_probs
from laborlm.occupations import Taxonomy
from laborlm.schema import conform
from laborlm.sequences import panel_arrays


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


def test_first_order_smoothing_by_hand() -> None:
    tax = Taxonomy.infer(["a", "b", "c"])  # K = 6 with the special states
    m = MarkovModel(tax, order=1, alpha=0.0)
    m.fit(_table([["a", "b"], ["a", "a"], ["b", "c"]]))
    K = len(tax)
    f = np.zeros(K)
    f[:3] = [3 / 6, 2 / 6, 1 / 6]  # job frequencies over all 6 person-years
    lp = m.log_probs(_table([["a", "c"]]))
    first = 0.99 * np.array([2 / 3, 1 / 3, 0, 0, 0, 0]) + 0.01 * f
    from_a = 0.99 * np.array([0.5, 0.5, 0, 0, 0, 0]) + 0.01 * f
    assert np.allclose(np.exp(lp[0]), first)
    assert np.allclose(np.exp(lp[1]), from_a)
    assert np.exp(lp).sum(axis=1) == pytest.approx([1.0, 1.0])


def test_second_order_mixes_half_and_half() -> None:
    tax = Taxonomy.infer(["a", "b", "c"])
    m = MarkovModel(tax, order=2, alpha=0.0)
    m1 = MarkovModel(tax, order=1, alpha=0.0)
    train = _table([["a", "b", "c"], ["a", "b", "a"], ["c", "b", "b"]])
    m.fit(train)
    m1.fit(train)
    test = _table([["a", "b", "c"], ["c", "c", "a"]])
    p2, p1 = np.exp(m.log_probs(test)), np.exp(m1.log_probs(test))
    seen_pair = np.zeros(len(tax))
    seen_pair[[0, 2]] = 0.5  # (a, b) -> c once, -> a once
    assert np.allclose(p2[2], 0.5 * seen_pair + 0.5 * p1[2])
    assert np.allclose(p2[5], p1[5])  # (c, c) never seen: first-order fallback
    assert np.allclose(p2[[0, 1, 3, 4]], p1[[0, 1, 3, 4]])


def test_markov_fit_on_markov_data_approaches_the_truth(tmp_path: Path) -> None:
    """On data drawn from a first-order chain, the fitted chain's perplexity is close to the true one."""
    rng = np.random.default_rng(0)
    codes = [str(c) for c in range(8)]
    tax = Taxonomy.infer(codes)
    P = rng.dirichlet(np.full(8, 0.3), size=8)
    start = rng.dirichlet(np.ones(8))

    def sample(n: int) -> tuple[list[list[str]], list[float]]:
        seqs, logp = [], []
        for _ in range(n):
            s = [rng.choice(8, p=start)]
            logp.append(np.log(start[s[0]]))
            for _ in range(5):
                s.append(rng.choice(8, p=P[s[-1]]))
                logp.append(np.log(P[s[-2], s[-1]]))
            seqs.append([codes[i] for i in s])
        return seqs, logp

    train, _ = sample(4000)
    test_seqs, true_logp = sample(1000)
    test = _table(test_seqs, prefix="t")
    m = MarkovModel(tax, order=1)
    m.fit(_table(train))
    fitted = perplexity(target_log_probs(m.log_probs(test), panel_arrays(test, tax).occ))
    truth = perplexity(np.array(true_logp))
    assert truth <= fitted < truth * 1.03
    m.save(tmp_path / "m")
    again = MarkovModel.load(tmp_path / "m")
    assert np.array_equal(again.log_probs(test), m.log_probs(test))
