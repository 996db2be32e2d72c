"""Panels drawn from a known first-order Markov chain: the truth a fitted model should approach.

Shared by the model unit tests and the Ray Train integration tests (``tests/`` is on ``sys.path`` because
it holds the root ``conftest.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from laborlm.occupations import Taxonomy
from laborlm.schema import conform

CODES = [str(c) for c in range(6)]


@dataclass(frozen=True)
class Chain:
    taxonomy: Taxonomy  # K = 6 regular codes + 3 special states = 9
    train: pa.Table
    valid: pa.Table
    true_perplexity: float  # the chain's own perplexity on ``valid``, every person-year included


def sample_panel(
    rng: np.random.Generator, n_people: int, prefix: str, years: int = 6
) -> tuple[pa.Table, np.ndarray]:
    """Careers from a sticky chain (half the mass on staying) and their true log-probabilities.

    Education and gender vary but carry no signal: the models must learn to ignore them.
    """
    chain_rng = np.random.default_rng(7)  # the same chain for every panel
    P = 0.5 * chain_rng.dirichlet(np.full(len(CODES), 0.3), size=len(CODES)) + 0.5 * np.eye(len(CODES))
    start = chain_rng.dirichlet(np.ones(len(CODES)))
    cols: dict[str, list[object]] = {
        k: [] for k in ("person_id", "year", "occupation", "education", "gender")
    }
    logp = []
    for i in range(n_people):
        state = rng.choice(len(CODES), p=start)
        logp.append(np.log(start[state]))
        gender = ["female", "male", None][i % 3]
        for t in range(years):
            if t:
                nxt = rng.choice(len(CODES), p=P[state])
                logp.append(np.log(P[state, nxt]))
                state = nxt
            cols["person_id"].append(f"{prefix}{i:05d}")
            cols["year"].append(2000 + t)
            cols["occupation"].append(CODES[state])
            cols["education"].append("high_school" if t < 3 else "bachelors")
            cols["gender"].append(gender)
    table = pa.table(
        {**cols, "year": pa.array(cols["year"], pa.int32()), "source": ["x"] * len(cols["year"])}
    )
    return conform(table), np.asarray(logp)


def make_chain(n_train: int = 400, n_valid: int = 200, seed: int = 0) -> Chain:
    rng = np.random.default_rng(seed)
    train, _ = sample_panel(rng, n_train, "a")
    valid, logp = sample_panel(rng, n_valid, "b")
    return Chain(Taxonomy.infer(CODES), train, valid, float(np.exp(-logp.mean())))
