"""The oracle is exact: it is a distribution at every step, and it agrees with the sampler (Monte Carlo)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from laborlm.schema import EDUCATION_LEVELS
from laborlm.synthetic import SynthConfig, load_preset
from laborlm.synthetic.generate import shard_rngs, simulate
from laborlm.synthetic.population import Population, draw_population
from laborlm.synthetic.process import (
    EDU_MISSING,
    WORK,
    StepInputs,
    build_market,
    dense_log_probs,
    logsumexp,
    next_state_log_probs,
    step_model,
)


@pytest.mark.parametrize("preset", ["psid", "nlsy79", "resumes"])
def test_oracle_is_a_distribution_and_matches_the_dense_computation(preset: str) -> None:
    """Over all K states the oracle's next-state probabilities sum to 1 at every step, and the factorised
    per-type likelihood equals the direct dense computation at the observed state (resumes: with coding
    noise and without special states)."""
    cfg = dataclasses.replace(load_preset(preset), people=40)
    market = build_market(cfg.dynamics, cfg.market_seed)
    pop_rng, rng = shard_rngs(cfg, 0)
    pop = draw_population(cfg, cfg.people, pop_rng)
    careers = simulate(market, cfg, pop, rng, full=True)
    assert careers.next_log_probs is not None
    for s, dist in enumerate(careers.next_log_probs):
        act = np.flatnonzero(pop.length > s)
        np.testing.assert_allclose(np.exp(dist).sum(axis=1), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            dist[np.arange(len(act)), careers.occ[act, s]], careers.oracle_logp[act, s], atol=1e-10
        )
        if not cfg.recording.special_states:
            assert np.all(np.exp(dist[:, market.special]) == 0.0)


def test_teacher_forcing_reproduces_the_oracle() -> None:
    """Scoring the sampled careers again (no sampling, other random numbers) gives the same oracle: the
    oracle depends on the recorded data only, never on the sampled latent types."""
    cfg = dataclasses.replace(load_preset("resumes"), people=300)
    market = build_market(cfg.dynamics, cfg.market_seed)
    pop_rng, rng = shard_rngs(cfg, 0)
    pop = draw_population(cfg, cfg.people, pop_rng)
    careers = simulate(market, cfg, pop, rng)
    again = simulate(market, cfg, pop, np.random.default_rng(123), observed=(careers.occ, careers.edu))
    valid = np.arange(pop.years.shape[1])[None, :] < pop.length[:, None]
    np.testing.assert_array_equal(again.oracle_logp[valid], careers.oracle_logp[valid])


def _clones(n: int, steps: int) -> Population:
    """``n`` identical people: women, white, in the south, born 1962, bachelors, observed 2000-2000+steps-1."""
    return Population(
        gender=np.zeros(n, dtype=np.int64),
        race=np.zeros(n, dtype=np.int64),
        region=np.full(n, 2, dtype=np.int64),
        birth_year=np.full(n, 1962, dtype=np.int64),
        edu_recorded=np.ones(n, dtype=bool),
        first_edu=np.full(n, EDUCATION_LEVELS.index("bachelors"), dtype=np.int64),
        years=np.tile(np.arange(2000, 2000 + steps, dtype=np.int64), (n, 1)),
        length=np.full(n, steps, dtype=np.int64),
    )


@pytest.mark.parametrize("prefix_len", [1, 3])
def test_monte_carlo_next_state_matches_oracle(prefix_len: int) -> None:
    """Sample many careers of identical people; among those sharing the most common recorded prefix (states
    and education), the next state's empirical frequencies match exp(oracle) within a few standard errors.

    With a 3-step prefix the oracle's type posterior is in play (the history reveals the career track).
    """
    cfg = SynthConfig(recording=dataclasses.replace(SynthConfig().recording, code_noise=0.06))
    market = build_market(cfg.dynamics, cfg.market_seed)
    steps = prefix_len + 1
    occ_parts, edu_parts = [], []
    for chunk in range(
        prefix_len
    ):  # 20k people per chunk (the 3-step prefix is rarer), [n, K] arrays stay small
        careers = simulate(market, cfg, _clones(20_000, steps), np.random.default_rng([7, prefix_len, chunk]))
        occ_parts.append(careers.occ)
        edu_parts.append(careers.edu)
    occ, edu = np.concatenate(occ_parts), np.concatenate(edu_parts)
    # Condition on everything the oracle at step `prefix_len` conditions on: earlier states, education so far.
    key = np.concatenate([occ[:, :prefix_len], edu], axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    best = int(np.argmax(counts))
    match = np.flatnonzero(inverse.ravel() == best)
    assert len(match) > 1_500, f"most common prefix only {len(match)} times"
    # The oracle's whole next-state distribution after that prefix, by teacher forcing one matching person.
    forced = simulate(
        market,
        cfg,
        _clones(1, steps),
        np.random.default_rng(0),
        observed=(occ[match[:1]], edu[match[:1]]),
        full=True,
    )
    assert forced.next_log_probs is not None
    p = np.exp(forced.next_log_probs[prefix_len][0])  # [K]
    freq = np.bincount(occ[match, prefix_len], minlength=market.K) / len(match)
    # The stay event, every special state, and the 8 most likely codes; then the rest lumped together.
    last = occ[match[0], prefix_len - 1]
    check = np.unique(np.concatenate([[last], np.flatnonzero(market.kind_of != WORK), np.argsort(p)[-8:]]))
    se = np.sqrt(np.maximum(p * (1 - p), 1e-12) / len(match))
    z = (freq[check] - p[check]) / se[check]
    assert np.all(np.abs(z) < 4.5), dict(zip(check.tolist(), np.round(z, 2).tolist()))
    rest = np.setdiff1d(np.arange(market.K), check)
    p_rest, f_rest = p[rest].sum(), freq[rest].sum()
    assert abs(f_rest - p_rest) < 4.5 * np.sqrt(p_rest * (1 - p_rest) / len(match))


@pytest.mark.parametrize(("allow_special", "noise"), [(True, 0.06), (True, 0.0), (False, 0.07)])
def test_mixed_next_state_distribution_equals_the_dense_mixture(allow_special: bool, noise: float) -> None:
    """``next_state_log_probs`` (posterior mixed in first, noise last, O(Z*K)) equals mixing the direct
    per-type computation, for first observations, working and special current states, any posterior."""
    market = build_market(SynthConfig().dynamics, SynthConfig().market_seed)
    rng = np.random.default_rng(3)
    n, K = 60, market.K
    cur = np.where(rng.random(n) < 0.2, -1, rng.choice(np.flatnonzero(~market.special), n))
    anchor = np.where(cur >= 0, cur, K)  # the last job held (K: none yet)
    if allow_special:  # some people out of work now; their anchor stays the job before the spell
        cur[:10] = rng.choice(np.flatnonzero(market.special), 10)
    returns = np.where(rng.random((n, K)) < 0.02, np.exp(market.dyn.return_bonus), 1.0)
    x = StepInputs(
        year=rng.integers(1980, 2019, n),
        age=rng.uniform(16, 70, n),
        gap=np.where(cur >= 0, rng.integers(1, 3, n), 0),
        edu=rng.integers(0, EDU_MISSING + 1, n),
        gender=rng.integers(0, 3, n),
        race=rng.integers(0, 7, n),
        region=rng.integers(0, 5, n),
        cur=cur,
        anchor=anchor,
        tenure=rng.integers(0, 9, n).astype(np.float64),
        returns=returns,
    )
    sm = step_model(market, x, allow_special)
    log_post = rng.normal(0.0, 2.0, (n, market.Z))
    log_post -= logsumexp(log_post, axis=1)
    fast = next_state_log_probs(market, sm, log_post, noise)
    dense = logsumexp(log_post[:, :, None] + dense_log_probs(market, sm, noise), axis=1)[:, 0, :]
    np.testing.assert_allclose(fast, dense, rtol=0, atol=1e-10)  # -inf (impossible states) in the same places
    np.testing.assert_allclose(logsumexp(fast, axis=1)[:, 0], 0.0, rtol=0, atol=1e-12)
    impossible = market.special & (not allow_special)  # without special states only they are impossible
    assert np.array_equal(np.isneginf(fast), np.broadcast_to(impossible, fast.shape))
