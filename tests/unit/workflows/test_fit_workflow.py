"""`laborlm fit`: a registry model fitted on a user panel's train split, saved as a folder every model command
takes (evaluate, predict, registry register, analyze's loader); everything checked before MLflow is touched."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from laborlm.cli import main
from laborlm.config import build
from laborlm.errors import ConfigError
from laborlm.models.neural import NeuralOccupationModel
from laborlm.models.registry import load_model
from laborlm.synthetic import generate_panel, load_preset
from laborlm.workflows.fit import FitJobConfig, run_fit
from torch_threads import one_torch_thread  # noqa: F401  (autouse)


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fit_panels")
    out = {}
    for preset, people in (("psid", 300), ("resumes", 200)):
        generate_panel(replace(load_preset(preset), people=people, seed=1), root / preset)
        out[preset] = root / preset
    return out


def _csv_panel(path: Path, codes: list[str]) -> Path:
    rows = ["person_id,year,occupation,source"]
    for i in range(40):
        for t in range(3):
            rows.append(f"p{i:03d},{2000 + t},{codes[(i + t) % len(codes)]},x")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fit_unigram_then_every_model_command_takes_the_folder(
    panels: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "unigram"
    # Overrides after the options, as the README writes them.
    assert (
        main(["-q", "fit", "unigram", "--panel", str(panels["psid"]), "--out", str(out), "split_seed=0"]) == 0
    )
    line = capsys.readouterr().out
    assert "unigram fitted on" in line and "valid perplexity" in line
    record = json.loads((out / "fit.json").read_text())
    assert record["model"] == "unigram" and record["train_person_years"] > 0 and record["mlflow_run_id"]
    assert (out / "metrics-valid.json").is_file()
    assert (tmp_path / "models" / "mlflow.db").is_file() and not (
        out / "mlflow.db"
    ).exists()  # beside, not inside

    assert main(["-q", "evaluate", "--model", str(out), "--panel", str(panels["psid"]), "--no-mlflow"]) == 0
    assert "perplexity" in capsys.readouterr().out
    careers = tmp_path / "careers.jsonl"
    careers.write_text(json.dumps({"history": [{"year": 2001, "occupation": "229"}]}) + "\n")
    assert main(["-q", "predict", "--model", str(out), "--input", str(careers), "--top-k", "3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert len(answer["top_k"]) == 3
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    assert main(["-q", "registry", "register", str(out), "floor", "--tracking-uri", uri]) == 0
    assert "registered floor version 1" in capsys.readouterr().out


def test_fit_career_pretrained_on_resumes(panels: dict[str, Path], tmp_path: Path) -> None:
    cfg = build(
        FitJobConfig,
        {
            "model": "career-tiny-two_stage",
            "panel": panels["psid"],
            "out": tmp_path / "career",
            "pretrain_panel": panels["resumes"],
            "fit": {"max_epochs": 1},
            "pretrain": {"max_epochs": 1},
            "tracking": {"enabled": False},
        },
    )
    result = run_fit(cfg)
    assert result.valid is not None and np.isfinite(result.valid.perplexity)
    assert json.loads((tmp_path / "career" / "fit.json").read_text())["pretrain_person_years"] > 0
    assert isinstance(load_model(tmp_path / "career"), NeuralOccupationModel)


def test_pretraining_on_another_taxonomy_names_the_codes_before_any_run(tmp_path: Path) -> None:
    survey = _csv_panel(tmp_path / "survey.csv", ["a", "b", "c"])
    resumes = _csv_panel(tmp_path / "resumes.csv", ["a", "b", "d"])
    out = tmp_path / "runs" / "career"
    cfg = build(
        FitJobConfig,
        {"model": "career-tiny-two_stage", "panel": survey, "out": out, "pretrain_panel": resumes},
    )
    with pytest.raises(ConfigError, match=r"only in panel .*: c; only in pretrain panel .*: d"):
        run_fit(cfg)
    assert not (tmp_path / "runs").exists()  # no model folder, no MLflow store, no run


def test_fit_config_errors_are_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown model 'career-huge'"):
        build(FitJobConfig, {"model": "career-huge", "panel": tmp_path, "out": tmp_path / "m"})
    with pytest.raises(ConfigError, match="counted, not trained"):
        build(
            FitJobConfig,
            {"model": "markov1", "panel": tmp_path, "out": tmp_path / "m", "pretrain_panel": tmp_path},
        )
    assert (
        main(["fit", "unigram", "--panel", str(tmp_path), "--out", str(tmp_path / "m"), "fit.bogus=1"]) == 2
    )
    assert "fit.bogus" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "mlflow.db").exists()
