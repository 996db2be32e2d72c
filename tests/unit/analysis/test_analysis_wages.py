"""Wage regressions: a representation of the history helps exactly when wages depend on what it captures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm.analysis.representations import bag_of_past_jobs, representation
from laborlm.analysis.wages import (
    SyntheticWageConfig,
    WageStudyConfig,
    attach_synthetic_wages,
    person_folds,
    wage_r2,
    wage_study,
)
from laborlm.baselines.markov import MarkovModel
from laborlm.errors import ConfigError, InputDataError
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.schema import conform
from laborlm.synthetic import OracleModel, generate_panel, load_preset


def _gain(panel: pa.Table, taxonomy: Taxonomy, rep: np.ndarray) -> float:
    """Held-out R^2 with the representation minus without it (default study settings)."""
    cfg = WageStudyConfig()
    return wage_r2(panel, taxonomy, rep, cfg, "rep").r2 - wage_r2(panel, taxonomy, None, cfg, "x").r2


def test_representation_raises_r2_when_wages_depend_on_the_latent_type(tmp_path: Path) -> None:
    """The generator's wages load on the hidden career type (``wages.wage_type_effect``); the oracle's
    predicted distribution carries the type posterior, the covariates do not."""
    base = load_preset("psid")
    gains = {}
    for effect in (0.0, 4.0):
        folder = tmp_path / f"type{effect}"
        cfg = dataclasses.replace(
            base, people=800, seed=2, wages=dataclasses.replace(base.wages, wage_type_effect=effect)
        )
        generate_panel(cfg, folder)
        read = read_panel(folder)
        rep, kind = representation(OracleModel.from_panel(folder), read.table, "auto")
        assert kind == "predicted" and rep.shape == (read.table.num_rows, len(read.taxonomy))
        gains[effect] = _gain(read.table, read.taxonomy, rep)
    assert gains[4.0] > 0.03
    assert gains[4.0] > gains[0.0] + 0.02, gains  # 0.04-0.09 over data seeds 0-4; about 0 without the effect


def test_bag_of_past_jobs_raises_r2_when_wages_depend_on_the_history(small_psid) -> None:
    panel, tax = small_psid.table, small_psid.taxonomy
    bag = bag_of_past_jobs(panel, tax)
    gains = {}
    for effect in (0.0, 2.0):
        wages = attach_synthetic_wages(panel, tax, SyntheticWageConfig(history_effect=effect, seed=5))
        gains[effect] = _gain(wages, tax, bag)
    assert gains[2.0] > gains[0.0] + 0.1, gains


def test_synthetic_wages_are_null_out_of_work_and_reproducible(small_psid) -> None:
    tax = small_psid.taxonomy
    a = attach_synthetic_wages(small_psid.table, tax, SyntheticWageConfig(seed=2))
    b = attach_synthetic_wages(small_psid.table, tax, SyntheticWageConfig(seed=2))
    assert a.column("wage").equals(b.column("wage"))
    special = np.isin(
        small_psid.table.column("occupation").to_numpy(zero_copy_only=False),
        ["unemployed", "out_of_labor_force", "in_school"],
    )
    wage = a.column("wage").to_numpy(zero_copy_only=False)
    assert np.isnan(wage[special]).all() and np.isfinite(wage[~special]).all()


def test_bag_of_past_jobs_is_the_share_of_earlier_states() -> None:
    tax = Taxonomy.infer(["a", "b"])
    panel = conform(
        pa.table(
            {
                "person_id": ["p", "p", "p", "q", "q"],
                "year": pa.array([1, 2, 3, 1, 2], pa.int32()),
                "occupation": ["a", "b", "a", "b", "unemployed"],
                "source": ["x"] * 5,
            }
        )
    )
    bag = bag_of_past_jobs(panel, tax)
    a, b = tax.index("a"), tax.index("b")
    assert not bag[0].any() and not bag[3].any()  # first rows see nothing
    assert bag[1, a] == 1.0 and bag[2, a] == 0.5 and bag[2, b] == 0.5
    assert bag[4, b] == 1.0 and bag[4].sum() == 1.0  # q's own history only


def test_wage_study_rows_folds_and_errors(small_psid) -> None:
    markov = MarkovModel(small_psid.taxonomy)
    markov.fit(small_psid.train)
    rows = wage_study({"markov1": markov}, small_psid.table, small_psid.taxonomy, WageStudyConfig())
    assert [r.label for r in rows] == [
        "Covariates (Blau-Kahn style)",
        "Covariates + bag of past jobs",
        "Covariates + markov1 (predicted)",
    ]
    assert all(0.0 < r.r2 < 1.0 for r in rows) and rows[0].dims == 0 and rows[2].dims == 32
    assert set(rows[0].by_decade) <= {"1990-1999", "2000-2009", "2010-2019"}
    folds = person_folds(np.array(["p", "p", "q", "r", "s", "q"], dtype=object), 2, seed=0)
    assert folds[0] == folds[1] and folds[2] == folds[5]  # a person never straddles folds
    no_wage = small_psid.test.set_column(
        small_psid.test.column_names.index("wage"), "wage", pa.nulls(small_psid.test.num_rows, pa.float64())
    )
    with pytest.raises(InputDataError, match="no wage"):
        wage_study({}, no_wage, small_psid.taxonomy, WageStudyConfig(attach="never"))
    assert (
        wage_study({}, no_wage, small_psid.taxonomy, WageStudyConfig(bag_row=False))[0].rows > 0
    )  # attached
    with pytest.raises(ConfigError, match="folds"):
        WageStudyConfig(folds=1)
