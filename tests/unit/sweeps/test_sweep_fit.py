"""Power-law fits and the sweep report on trial results made from known laws."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from laborlm.errors import LaborLMError
from laborlm.sweeps.fit import analyse, fit_power_law, to_markdown, write_report
from laborlm.sweeps.scaling import PREPARED_FILE, RESULTS_FILE, TRIAL_RESULT
from laborlm.tracking import metric_names as mn

ORACLE = 6.0
LAWS = {
    "small": (2_000, 40.0, 0.5),
    "medium": (8_000, 30.0, 0.5),
    "large": (32_000, 20.0, 0.5),
}  # N, A, alpha
LN_ORACLE = math.log(ORACLE)
PEOPLE = {0.1: 100, 0.3: 300, 1.0: 1000}


def _rows() -> list[dict[str, object]]:
    rows = []
    for model, (n, a, alpha) in LAWS.items():
        for fraction, people in PEOPLE.items():
            ppl = math.exp(LN_ORACLE + a * people**-alpha)  # the law holds in cross-entropy
            rows.append(
                {
                    "trial": f"{model}-d{fraction}",
                    "overrides": [f"model.size={model}"],
                    "model": model,
                    "data_fraction": fraction,
                    "seed": 0,
                    mn.MODEL_NON_EMBEDDING_PARAMETERS: n,
                    mn.DATA_PRETRAIN_PEOPLE: people,
                    mn.TRAIN_TOKENS: 100.0 * people,
                    mn.TRAIN_FLOPS: 600.0 * people * n,
                    mn.TEST_PERPLEXITY: ppl,
                    mn.VALID_OCCUPATION_PERPLEXITY: ppl,
                    "test/oracle_perplexity": ORACLE,
                }
            )
    return rows


def test_power_law_recovers_coefficient_and_exponent_above_the_irreducible_term() -> None:
    x = np.array([10.0, 100.0, 1000.0, 10000.0])
    law = fit_power_law(x, np.exp(math.log(3.0) + 50.0 * x**-0.3), 3.0, "m", "data")
    assert law is not None
    assert law.exponent == pytest.approx(0.3, abs=1e-9) and law.coefficient == pytest.approx(50.0, rel=1e-9)
    assert law.r2 == pytest.approx(1.0)
    assert law.solve(float(law.predict(250.0))) == pytest.approx(250.0, rel=1e-9)
    assert law.irreducible == pytest.approx(math.log(3.0))
    assert law.solve(2.0) == math.inf  # below the oracle: never reached
    assert (
        fit_power_law(np.array([5.0, 5.0]), np.array([4.0, 5.0]), 3.0, "m", "data") is None
    )  # one distinct x


def test_analysis_finds_where_a_smaller_model_with_more_data_matches_a_larger_one() -> None:
    result = analyse(_rows())
    assert result["oracle_perplexity"] == pytest.approx(ORACLE)
    data_laws, size_laws = result["_laws"]
    for model, (_, a, alpha) in LAWS.items():
        assert data_laws[model].exponent == pytest.approx(alpha, abs=1e-9)
        assert data_laws[model].coefficient == pytest.approx(a, rel=1e-9)
    # At fixed data the coefficient falls from 40 to 20 as N grows 16x: exponent log(2) / log(16) = 0.25.
    assert size_laws[1.0].exponent == pytest.approx(0.25, abs=1e-9)
    match = next(
        m
        for m in result["matches"]
        if m["smaller"] == "small" and m["larger"] == "large" and m["larger_people"] == 100
    )
    # small reaches large's cross-entropy at 100 people when 40 D^-0.5 = 20 * 100^-0.5, i.e. D = 400.
    assert match["smaller_people_needed"] == pytest.approx(400.0, rel=1e-9)
    assert match["data_ratio"] == pytest.approx(4.0, rel=1e-9)
    assert (1000, pytest.approx(math.exp(LN_ORACLE + 40 * 1000**-0.5))) in match[
        "observed"
    ]  # seen in the grid
    md = to_markdown(result, "known laws")
    assert "| small (2,000) |" in md and "0.500" in md and "4.00x" in md


def test_report_writes_tables_plots_and_a_self_contained_page(tmp_path: Path) -> None:
    (tmp_path / PREPARED_FILE).write_text(json.dumps({"parent_run_id": None, "tracking_uri": None}))
    for row in _rows():
        folder = tmp_path / "trials" / str(row["trial"])
        folder.mkdir(parents=True)
        (folder / TRIAL_RESULT).write_text(json.dumps(row))
    md = write_report(tmp_path).read_text()
    assert "Power laws" in md
    assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 9
    for png in ("scaling_data.png", "scaling_model.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "scaling.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<table>" in page
    saved = json.loads((tmp_path / "scaling.json").read_text())
    assert saved["data_laws"]["large"]["exponent"] == pytest.approx(0.5)


def test_report_of_a_folder_that_is_not_a_sweep_says_so(tmp_path: Path) -> None:
    with pytest.raises(LaborLMError, match="not a sweep folder"):
        write_report(tmp_path)
