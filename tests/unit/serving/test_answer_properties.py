"""Property test (issue 16, defect 2): any valid career gets a finite distribution from every cheap model kind.

For the oracle (a synthetic panel folder), the Markov chains, the unigram floor, the Markov regression,
bag-of-jobs and CAREER-tiny (one epoch: the property is about the numbers being a distribution, not about
accuracy), every career the request format accepts (``serving.careers``) gets probabilities that are finite
and sum to at most 1 + 1e-6 over the whole taxonomy, and the JSON answer contains no NaN. Before the fix,
the oracle answered NaN for a history entry without education, which README's own example has.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laborlm import jsonsafe, schema
from laborlm.baselines.base import NextOccupationModel
from laborlm.models.registry import FitOverrides, create_model, fit_config
from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.serving.careers import predict_careers
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset
from laborlm.synthetic.oracle import OracleModel

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = (
    "oracle",
    "unigram",
    "markov1",
    "markov2",
    "regression-two_stage",
    "bag-of-jobs-one_stage",
    "career-tiny-two_stage",
)
ONE_EPOCH = FitOverrides(max_epochs=1, patience=None, max_tokens=2000)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NextOccupationModel]:
    folder = tmp_path_factory.mktemp("answers") / "psid"
    generate_panel(replace(load_preset("psid"), people=200, seed=2), folder)
    read = read_panel(folder)
    train, valid = select_split(read.table, "train"), select_split(read.table, "valid")
    out: dict[str, NextOccupationModel] = {"oracle": OracleModel.from_panel(folder)}
    for name in MODELS[1:]:
        model = create_model(name, read.taxonomy, fit=fit_config(name, ONE_EPOCH))
        model.fit(train, valid)
        out[name] = model
    return out


def _careers(taxonomy: Taxonomy) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Careers the request format accepts: any codes (special states too), education given, missing, rising,
    falling; covariates present or absent; next_year given or defaulted."""
    maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))
    entry = st.fixed_dictionaries(
        {"occupation": st.sampled_from(taxonomy.codes), "gap": st.integers(1, 3)},
        optional={"education": maybe(schema.EDUCATION_LEVELS)},
    )

    @st.composite
    def career(draw: st.DrawFn) -> dict[str, Any]:
        year = draw(st.integers(1968, 2018))
        history = []
        for e in draw(st.lists(entry, max_size=6)):
            item = {"year": year, "occupation": e["occupation"]}
            if "education" in e:
                item["education"] = e["education"]
            history.append(item)
            year += e["gap"]
        c: dict[str, Any] = {"history": history}
        covariates = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "gender": maybe(schema.GENDERS),
                    "race": maybe(schema.RACES),
                    "region": maybe(schema.REGIONS),
                    "birth_year": st.one_of(st.none(), st.integers(1930, 2000)),
                },
            )
        )
        if covariates:
            c["covariates"] = covariates
        if not history or draw(st.booleans()):
            c["next_year"] = year + draw(st.integers(0, 2))
        if draw(st.booleans()):
            c["education"] = draw(maybe(schema.EDUCATION_LEVELS))
        return c

    return st.lists(career(), min_size=1, max_size=3)


@pytest.mark.parametrize("name", MODELS)
def test_any_valid_career_gets_a_finite_distribution(
    models: dict[str, NextOccupationModel], name: str
) -> None:
    model = models[name]
    K = len(model.taxonomy)

    @PROPERTY
    @given(_careers(model.taxonomy))
    def check(careers: list[dict[str, Any]]) -> None:
        answers = predict_careers(model, careers, K)
        assert len(answers) == len(careers)
        for answer in answers:
            probs = [t["probability"] for t in answer["top_k"]]
            assert all(math.isfinite(p) and p >= 0.0 for p in probs), (careers, answer)
            assert sum(probs) <= 1.0 + 1e-6
        json.loads(jsonsafe.dumps(answers))  # strict JSON: no NaN / Infinity anywhere

    check()


def test_readme_career_without_education_in_a_later_entry(models: dict[str, NextOccupationModel]) -> None:
    """README's example: the oracle carries education forward, the same answer as when the entry repeats it."""
    oracle = models["oracle"]
    history = [
        {"year": 2001, "occupation": "229", "education": "bachelors"},
        {"year": 2003, "occupation": "229"},
    ]
    omitted = predict_careers(oracle, [{"history": history}], 3)[0]
    repeated = predict_careers(
        oracle, [{"history": [history[0], {**history[1], "education": "bachelors"}]}], 3
    )[0]
    assert omitted == repeated and all(math.isfinite(t["probability"]) for t in omitted["top_k"])


def test_oracle_carries_education_forward_in_a_panel(
    models: dict[str, NextOccupationModel], tmp_path: Path
) -> None:
    """The evaluate path: a panel row without education scores as if it repeated the last recorded level."""
    import numpy as np
    import pyarrow as pa

    def panel(edu: list[str | None]) -> pa.Table:
        return schema.conform(
            pa.table(
                {
                    "person_id": ["a"] * 3,
                    "year": pa.array([2001, 2002, 2003], pa.int32()),
                    "occupation": ["229", "229", "4"],
                    "education": edu,
                    "source": ["psid"] * 3,
                }
            )
        )

    oracle = models["oracle"]
    gap = oracle.log_probs(panel(["bachelors", None, None]))
    full = oracle.log_probs(panel(["bachelors"] * 3))
    assert not np.isnan(gap).any() and np.allclose(gap, full)
