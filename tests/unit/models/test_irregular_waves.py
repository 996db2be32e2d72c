"""Irregular waves (a survey observed every one or two years, or with skipped waves) are handled as the synthetic
biennial presets are: one step per observed year, the gap since the previous observation as a covariate of the
neural models (buckets first / 1 / 2 / 3+), ignored by the counted models, and visible to a language model only
as the year written on each observed line. README "Irregular waves" says the same."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from laborlm import schema
from laborlm.cli import main
from laborlm.corpus.render import render_table
from laborlm.corpus.template import load_template
from laborlm.models.encoding import covariate_column, encode_panel
from laborlm.models.registry import FitOverrides, create_model, fit_config
from laborlm.readers import read_panel
from laborlm.sequences import panel_arrays
from laborlm.splits import SplitConfig, select_split
from laborlm.synthetic import generate_panel, load_preset


@pytest.fixture(scope="module")
def biennial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic PSID: annual waves to 1997, biennial after, skipped waves (larger gaps) and attrition."""
    folder = tmp_path_factory.mktemp("waves") / "psid"
    generate_panel(replace(load_preset("psid"), people=300, seed=5), folder)
    return folder


def test_an_imported_survey_keeps_its_waves_as_the_synthetic_panel_has_them(
    biennial: Path, tmp_path: Path
) -> None:
    # The synthetic panel goes out as a plain CSV and comes back through `data import`, the path a real survey takes.
    assert (
        main(
            ["-q", "data", "export", str(biennial), "--format", "csv", "--out", str(tmp_path / "survey.csv")]
        )
        == 0
    )
    assert (
        main(
            [
                "-q",
                "data",
                "import",
                str(tmp_path / "survey.csv"),
                "--out",
                str(tmp_path / "survey"),
                "--taxonomy",
                str(biennial / "taxonomy.csv"),
                "--source",
                "psid",
            ]
        )
        == 0
    )
    original, imported = read_panel(biennial), read_panel(tmp_path / "survey")
    a, b = panel_arrays(original.table, original.taxonomy), panel_arrays(imported.table, imported.taxonomy)
    assert {0, 1, 2} <= set(a.gap.tolist()) and a.gap.max() >= 4  # annual, biennial and skipped waves
    for name in ("year", "gap", "prev", "prev2", "tenure", "position", "transition"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    gap = covariate_column("gap")
    ea, eb = encode_panel(original.table, original.taxonomy), encode_panel(imported.table, imported.taxonomy)
    np.testing.assert_array_equal(ea.covariates, eb.covariates)
    np.testing.assert_array_equal(ea.covariates[:, gap], np.minimum(a.gap, 3))  # first / 1 / 2 / 3+
    # The language model's text: one line per observed year, whatever the gap; nothing fills the years between.
    template = load_template("labor-llm")
    texts = [render_table(p.table, p.taxonomy, template) for p in (original, imported)]
    assert texts[0].column("text").to_pylist() == texts[1].column("text").to_pylist()
    first = texts[0].to_pylist()[int(np.argmax(np.diff(np.append(a.starts, len(a))) > 8))]
    lines = [line for line in first["text"].splitlines() if line[:4].isdigit()]
    assert [int(line[:4]) for line in lines] == first["years"]


def _probe(taxonomy_code: str, other_code: str) -> pa.Table:
    """Two careers alike but for the gap before their second year: 1 year (person a) and 2 years (person b).

    Years before 1940 share the year embedding (``encoding.YEAR_MIN``), so the gap is the only difference a
    model can see at the second row.
    """
    rows = [
        ("a", 1901, taxonomy_code),
        ("a", 1902, other_code),
        ("b", 1900, taxonomy_code),
        ("b", 1902, other_code),
    ]
    n = len(rows)
    columns = {f.name: pa.nulls(n, f.type) for f in schema.PANEL_SCHEMA}
    columns[schema.PERSON_ID] = pa.array([r[0] for r in rows], pa.string())
    columns[schema.YEAR] = pa.array([r[1] for r in rows], pa.int32())
    columns[schema.OCCUPATION] = pa.array([r[2] for r in rows], pa.string())
    columns[schema.SOURCE] = pa.array(["psid"] * n, pa.string())
    return pa.table(
        {f.name: columns[f.name].cast(f.type) for f in schema.PANEL_SCHEMA}, schema=schema.PANEL_SCHEMA
    )


@pytest.mark.parametrize(
    ("name", "uses_gap"),
    [
        ("unigram", False),
        ("markov1", False),
        ("markov2", False),
        ("regression-one_stage", True),
        ("bag-of-jobs-one_stage", True),
        ("nemo-two_stage", True),
        ("career-tiny-two_stage", True),
    ],
)
def test_every_model_treats_a_gap_as_on_the_synthetic_biennial_panel(
    biennial: Path, name: str, uses_gap: bool
) -> None:
    read = read_panel(biennial)
    train = select_split(read.table, "train", SplitConfig())
    model = create_model(name, read.taxonomy, fit=fit_config(name, FitOverrides(max_epochs=2)), seed=0)
    model.fit(train, None)
    codes = train.column(schema.OCCUPATION).to_pylist()
    probe = _probe(codes[0], codes[1])
    log_probs = model.log_probs(probe)  # [4, K]: rows a1902 and b1902 differ only in their gap (1 vs 2)
    np.testing.assert_allclose(log_probs[0], log_probs[2], atol=1e-6)  # first years: no gap yet
    differs = not np.allclose(log_probs[1], log_probs[3], atol=1e-6)
    assert differs == uses_gap
