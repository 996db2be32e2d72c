"""Forecasting: the sampled forecast agrees with the exact multi-step value; direct vs composed chains."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from laborlm.analysis.forecast import (
    ForecastConfig,
    direct_vs_composed,
    exact_forecast,
    forecast_task,
    sample_forecast,
)
from laborlm.analysis.horizon import DirectHorizonMarkov
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import conform
from laborlm.synthetic import OracleModel


def _panel(careers: dict[str, list[tuple[int, str]]]) -> pa.Table:
    rows = [(pid, y, occ) for pid, career in careers.items() for y, occ in career]
    return conform(
        pa.table(
            {
                "person_id": [r[0] for r in rows],
                "year": pa.array([r[1] for r in rows], pa.int32()),
                "occupation": [r[2] for r in rows],
                "source": ["toy"] * len(rows),
            }
        )
    )


def test_forecast_task_keeps_persons_seen_before_the_cutoff_and_in_every_forecast_year() -> None:
    tax = Taxonomy.infer(["a", "b"])
    panel = _panel(
        {
            "p1": [(2010, "a"), (2012, "a"), (2014, "b"), (2015, "a"), (2016, "b"), (2018, "b")],  # eligible
            "p2": [(2011, "a"), (2014, "b")],  # not observed in 2016
            "p3": [(2014, "a"), (2016, "b")],  # nothing up to the cutoff
        }
    )
    task = forecast_task(panel, tax, cutoff_year=2012, horizons=(2, 4))
    assert list(task.person_ids) == ["p1"]
    assert task.panel.num_rows == 5  # 2018 is after the last forecast year
    assert (task.history[0], task.future[0]) == (2, 3)
    assert list(task.target_horizon) == [2, 4] and list(task.target_step) == [1, 3]  # 2015 is sampled through
    with pytest.raises(InputDataError, match="no person is observed"):
        forecast_task(panel, tax, cutoff_year=2012, horizons=(2, 5))


def test_sampled_oracle_forecast_matches_its_exact_multi_step_probability(small_psid) -> None:
    oracle = OracleModel.from_panel(small_psid.folder)
    task = forecast_task(small_psid.table, small_psid.taxonomy, 2013, (2, 4), max_people=15)
    assert set(task.target_step.tolist()) == {1, 2}  # biennial waves: 2015 and 2017 are one and two steps on
    mc = sample_forecast(oracle, task, samples=400, seed=1)  # sampling itself is the model's one-step code
    exact = exact_forecast(oracle, task, max_steps=2)
    one = task.target_step == 1
    np.testing.assert_allclose(mc.p[one], exact.p[one], rtol=1e-12)  # nothing sampled before the first step
    two = task.target_step == 2
    # The exact enumeration also gives each target's exact Monte-Carlo error (sd of p(y | one sampled path)),
    # which, unlike the sample sd, is not underestimated when a rare intermediate job goes unsampled.
    S = 400
    exact_se = exact.draw_sd[two] / math.sqrt(S)
    assert exact_se.max() > 0
    z = (mc.p[two] - exact.p[two]).sum() / math.sqrt(np.sum(exact_se**2))
    assert abs(z) < 4, z
    # The perplexity (the table's number) agrees within 4 standard errors of its log too (delta method).
    log_mc, log_exact = np.log(mc.p[two]).mean(), np.log(exact.p[two]).mean()
    se_log = math.sqrt(np.sum((exact_se / exact.p[two]) ** 2)) / two.sum()
    assert abs(log_mc - log_exact) < 4 * se_log, (log_mc, log_exact, se_log)
    ppl, ppl_se = mc.perplexity(two)
    assert ppl == pytest.approx(math.exp(-log_mc))
    assert ppl_se == pytest.approx(ppl * math.sqrt(np.sum((mc.se[two] / mc.p[two]) ** 2)) / two.sum())
    assert not math.isnan(exact.perplexity()[0])  # every target here is within the exact steps


def test_exact_enumeration_is_the_matrix_power_for_a_first_order_chain(small_psid) -> None:
    markov = MarkovModel(small_psid.taxonomy, order=1)
    markov.fit(small_psid.train)
    task = forecast_task(small_psid.table, small_psid.taxonomy, 2013, (2, 4, 6), max_people=8)
    exact = exact_forecast(markov, task, max_steps=2)
    last = task.occ[task.start + task.history - 1][task.target_person]
    obs = task.occ[task.target_row]
    for k in (1, 2):
        sel = task.target_step == k
        expected = np.linalg.matrix_power(markov.trans, k)[last[sel], obs[sel]]
        np.testing.assert_allclose(exact.p[sel], expected, rtol=1e-10)
    assert np.isnan(exact.p[task.target_step == 3]).all()
    # Monte Carlo through the same chain estimates the same three-step value.
    mc = sample_forecast(markov, task, samples=300, seed=0)
    sel = task.target_step == 3
    truth = np.linalg.matrix_power(markov.trans, 3)[last[sel], obs[sel]]
    assert np.all(np.abs(mc.p[sel] - truth) <= 5 * mc.se[sel] + 1e-3)


def test_direct_and_composed_chains_agree_at_one_step_and_the_gap_is_reported(small_psid) -> None:
    task = forecast_task(small_psid.table, small_psid.taxonomy, 2013, (2, 4, 6), max_people=30)
    out = direct_vs_composed(small_psid.train, task, steps=(1, 2, 3))
    assert [c.steps for c in out] == [1, 2, 3]
    assert out[0].gap == pytest.approx(0.0, abs=1e-9) and out[0].mean_total_variation == pytest.approx(
        0.0, abs=1e-12
    )
    for c in out[1:]:
        assert c.targets > 0 and math.isfinite(c.gap) and c.mean_total_variation > 0
        assert c.gap == pytest.approx(c.direct_perplexity - c.composed_perplexity)


def test_direct_horizon_chain_counts_pairs_k_rows_apart(tmp_path) -> None:
    tax = Taxonomy.infer(["a", "b"])
    panel = _panel(
        {
            "p": [(2000, "a"), (2001, "b"), (2002, "a"), (2003, "a")],
            "q": [(2000, "b"), (2001, "b"), (2002, "a")],
        }
    )
    one, two = DirectHorizonMarkov(tax, 1), DirectHorizonMarkov(tax, 2)
    one.fit(panel)
    two.fit(panel)
    chain = MarkovModel(tax, order=1)
    chain.fit(panel)
    np.testing.assert_allclose(one.log_probs(panel), chain.log_probs(panel))  # k = 1 is the ordinary chain
    # 2-step pairs: a->a, b->a (p), b->a (q): from a, all mass on a; from b, all on a (before smoothing).
    a, b = tax.index("a"), tax.index("b")
    assert two.trans[a, a] == pytest.approx(0.99 + 0.01 * two.freq[a])
    assert two.trans[b, a] == pytest.approx(0.99 + 0.01 * two.freq[a])
    lp = two.log_probs(panel)
    np.testing.assert_allclose(lp[2], np.log(two.trans[a]))  # row 2 of p looks at row 0
    np.testing.assert_allclose(lp[1], np.log(two.freq))  # too close to the start: the job frequencies
    two.save(tmp_path / "d")
    np.testing.assert_allclose(DirectHorizonMarkov.load(tmp_path / "d").log_probs(panel), lp)


def test_forecast_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError) as err:
        ForecastConfig(horizons=(2, 2), samples=1, exact_steps=5)
    assert len(err.value.problems) == 3


def test_frozen_year_changes_only_years_after_the_cutoff_for_neural_models() -> None:
    from laborlm.analysis.panels import score_rows
    from laborlm.models.registry import create_model

    tax = Taxonomy.infer(["a", "b"])
    panel = _panel({"p": [(2010, "a"), (2012, "b"), (2014, "b"), (2016, "a")]})
    model = create_model("career-tiny-two_stage", tax)  # untrained: every year embedding differs at random
    rows = np.arange(4)
    plain = model.log_probs(panel)
    np.testing.assert_allclose(score_rows(model, panel, rows, freeze_year=2016), plain, atol=1e-12)
    frozen = score_rows(model, panel, rows, freeze_year=2012)
    np.testing.assert_allclose(frozen[:2], plain[:2], atol=1e-12)
    assert not np.allclose(frozen[2:], plain[2:])
    # Markov chains do not read the year: freezing is a no-op for them.
    chain = MarkovModel(tax)
    chain.fit(panel)
    np.testing.assert_allclose(
        score_rows(chain, panel, rows, freeze_year=2012, max_rows=1), chain.log_probs(panel)
    )
