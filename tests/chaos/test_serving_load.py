"""Serving under load, the small version of benchmarks/serving_load.py (issue 16): a registered CAREER model
served by `mlflow models serve` on loopback answers 300 requests, 8 at a time, a quarter of them invalid
careers: no 5xx, no dropped connection, every invalid career a 400 with its reason. Timing is printed, never
asserted (figures belong in benchmarks/ and README)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from laborlm.models.registry import FitOverrides, create_model, fit_config
from laborlm.readers import read_panel
from laborlm.serving.load import LoadConfig, careers_from_panel, invalid_careers, run_load
from laborlm.serving.registry import promote, register_model
from laborlm.serving.serve import served_model
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset
from torch_threads import one_torch_thread  # noqa: F401  (autouse here)

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.timeout(400),
]  # ~15 s on an idle 2-core machine, 90 s on a loaded one
NAME = "load-career"


def test_served_career_model_under_concurrent_mixed_requests(tmp_path: Path) -> None:
    generate_panel(dataclasses.replace(load_preset("psid"), people=150, seed=4), tmp_path / "psid")
    read = read_panel(tmp_path / "psid")
    name = "career-tiny-two_stage"
    model = create_model(
        name, read.taxonomy, fit=fit_config(name, FitOverrides(max_epochs=1, patience=None, max_tokens=2000))
    )
    model.fit(select_split(read.table, "train"), select_split(read.table, "valid"))
    model.save(tmp_path / "career")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    promote(NAME, register_model(tmp_path / "career", NAME, uri), tracking_uri=uri)
    careers = careers_from_panel(read.table, 50)
    assert len(careers) == 50

    with served_model(f"models:/{NAME}@champion", uri, tmp_path / "serve") as url:
        report = run_load(
            url,
            careers,
            invalid_careers(careers[0]),
            LoadConfig(requests=300, concurrency=8, invalid_fraction=0.25, seed=1),
        )
    print(report.line())
    assert report.requests == 300 and report.invalid > 30
    assert not report.problems(), report.problems()
    assert set(report.status_counts) == {200, 400}
    assert report.status_counts[400] == report.invalid
