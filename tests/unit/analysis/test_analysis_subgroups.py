"""Subgroup rates, perplexities and calibration against hand-computed values on a tiny panel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm.analysis.subgroups import (
    SubgroupConfig,
    calibration,
    events,
    plot_calibration,
    subgroup_perplexity,
    subgroup_rates,
    subgroup_study,
)
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import ConfigError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.schema import conform

TAX = Taxonomy.infer(["a", "b"])  # a, b, unemployed, out_of_labor_force, in_school
A, B, U, O, S = range(5)
FIRST = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
TRANS = np.array(
    [
        [0.6, 0.2, 0.1, 0.05, 0.05],  # from a
        [0.3, 0.4, 0.2, 0.05, 0.05],  # from b
        [0.3, 0.3, 0.3, 0.05, 0.05],  # from unemployed
        [0.2, 0.2, 0.1, 0.4, 0.1],  # from out of the labour force
        [0.3, 0.3, 0.1, 0.1, 0.2],  # from school
    ]
)


def _model() -> MarkovModel:
    """A first-order chain with hand-set probabilities (no fitting): the predictions are known exactly."""
    m = MarkovModel(TAX, order=1)
    m.first, m.trans = FIRST, TRANS
    return m


def _panel() -> pa.Table:
    rows = [  # person, year, occupation, education, gender
        ("p1", 2000, "a", "high_school", "female"),
        ("p1", 2001, "a", "high_school", "female"),
        ("p1", 2002, "unemployed", "high_school", "female"),
        ("p2", 2000, "b", "bachelors", "male"),
        ("p2", 2001, "a", "bachelors", "male"),
        ("p2", 2002, "out_of_labor_force", "bachelors", "male"),
        ("p3", 2000, "a", "high_school", "female"),
        ("p3", 2001, "b", "bachelors", "female"),
    ]
    cols = list(zip(*rows))
    return conform(
        pa.table(
            {
                "person_id": cols[0],
                "year": pa.array(cols[1], pa.int32()),
                "occupation": cols[2],
                "education": cols[3],
                "gender": cols[4],
                "source": ["toy"] * len(rows),
            }
        )
    )


def _rate(rows, column, group, event):
    (r,) = [r for r in rows if (r.column, r.group, r.event) == (column, group, event)]
    return r


def test_observed_and_predicted_rates_match_hand_computed_values() -> None:
    panel = _panel()
    ev = events(_model().log_probs(panel), panel, TAX)
    rows = subgroup_rates(ev, panel, ("gender", "education"))
    # Women: transitions p1 a->a, p1 a->unemployed, p3 a->b (stayed once); all five rows for unemployment.
    stay = _rate(rows, "gender", "female", "stay")
    assert (stay.rows, stay.observed, stay.predicted) == (3, pytest.approx(1 / 3), pytest.approx(0.6))
    assert stay.observed_se == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    move = _rate(rows, "gender", "female", "move")
    assert (move.observed, move.predicted) == (pytest.approx(2 / 3), pytest.approx(0.4))
    unemp = _rate(rows, "gender", "female", "unemployed")
    assert (unemp.rows, unemp.observed, unemp.predicted) == (5, pytest.approx(1 / 5), pytest.approx(0.1))
    # Men: b -> a -> out of the labour force. P(olf): first 0.1, from b 0.05, from a 0.05.
    olf = _rate(rows, "gender", "male", "out_of_labor_force")
    assert (olf.rows, olf.observed, olf.predicted) == (3, pytest.approx(1 / 3), pytest.approx(0.2 / 3))
    stay_m = _rate(rows, "gender", "male", "stay")
    assert (stay_m.observed, stay_m.predicted) == (0.0, pytest.approx((0.4 + 0.6) / 2))
    # Education is dynamic: p3's second row counts for bachelors (a -> b, P(stay in a) = 0.6).
    bach = _rate(rows, "education", "bachelors", "stay")
    assert (bach.rows, bach.observed, bach.predicted) == (3, 0.0, pytest.approx((0.4 + 0.6 + 0.6) / 3))
    everyone = _rate(rows, "all", "all", "unemployed")
    assert (everyone.rows, everyone.observed) == (8, pytest.approx(1 / 8))


def test_perplexity_by_group_and_calibration_bins(tmp_path: Path) -> None:
    panel = _panel()
    lp = _model().log_probs(panel)
    ppl = subgroup_perplexity(lp, panel, TAX, ("gender",))
    # Men: p(b) first = 0.2, p(a | b) = 0.3, p(olf | a) = 0.05.
    men = next(p for p in ppl if p[:2] == ("gender", "male"))
    assert men[2] == 3 and men[3] == pytest.approx(math.exp(-np.mean(np.log([0.2, 0.3, 0.05]))))
    assert ppl[0][:3] == ("all", "all", 8)
    curves = calibration(events(lp, panel, TAX), bins=10)
    assert set(curves) == {"stay", "move", "unemployed", "out_of_labor_force"}
    assert sum(b["count"] for b in curves["stay"]) == 5 and sum(b["count"] for b in curves["unemployed"]) == 8
    png = plot_calibration({"hand-set chain": curves}, tmp_path / "calibration.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_calibrated_model_matches_observed_rates_on_synthetic_data(small_psid) -> None:
    """The oracle is the data-generating process: over ~3,000 person-years its predicted rates are within
    sampling error of the observed ones."""
    from laborlm.synthetic import OracleModel

    rates, ppl, _ = subgroup_study(
        {"oracle": OracleModel.from_panel(small_psid.folder)},
        small_psid.table,
        small_psid.taxonomy,
        SubgroupConfig(min_rows=200),
    )
    overall = [r for r in rates["oracle"] if r.column == "all"]
    assert len(overall) == 4
    for r in overall:
        assert abs(r.gap) < 4 * r.observed_se + 1e-3, r
    assert all(n >= 200 for _, _, n, _ in ppl["oracle"])


def test_subgroup_config_checks_columns() -> None:
    with pytest.raises(ConfigError, match="not a subgroup column"):
        SubgroupConfig(columns=("education", "shoe_size"))
