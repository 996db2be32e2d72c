"""`laborlm benchmark careers --panel DIR [--resumes DIR]`: users' panels as table columns, the unigram floor in
every column, the oracle only where the data carry one, and every configuration problem (a preset name where a
path was meant, or the reverse) reported before the output folder or an MLflow run exists."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laborlm.cli import main
from laborlm.config import build
from laborlm.errors import ConfigError
from laborlm.synthetic import generate_panel, load_preset
from laborlm.workflows.benchmark_careers import CareersBenchmarkConfig, label, run_careers_benchmark
from torch_threads import one_torch_thread  # noqa: F401  (autouse)

UNIGRAM, ORACLE, MARKOV1 = label("unigram"), label("oracle"), label("markov1")


def _csv_panel(path: Path, codes: list[str], people: int = 60) -> Path:
    """A small survey with irregular waves (1968-72 annual, then every other year), as a user would have it."""
    rows = ["person_id,year,occupation,source"]
    for i in range(people):
        for t, year in enumerate((1968, 1969, 1970, 1972, 1974)):
            rows.append(f"p{i:03d},{year},{codes[(i // 3 + t * (i % 2)) % len(codes)]},survey")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench_panels") / "psid_small"
    generate_panel(replace(load_preset("psid"), people=1200, seed=3), folder)
    return folder


def _run(tmp_path: Path, *args: str) -> int:
    return main(
        [
            "-q",
            "benchmark",
            "careers",
            *args,
            f"out_dir={tmp_path / 'out'}",
            "tracking.enabled=false",
            "models=markov1",
            "seeds=0",
        ]
    )


def test_user_panels_get_unigram_rows_and_the_oracle_only_where_the_data_carry_one(
    synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    survey = _csv_panel(tmp_path / "survey.csv", ["a", "b", "c", "d"])
    # A synthetic panel exported without its synth.yaml: the oracle row comes from its oracle_logp column.
    exported = tmp_path / "exported"
    exported.mkdir()
    pq.write_table(pq.read_table(next(synthetic.glob("*.parquet"))), exported / "part-00000.parquet")
    (exported / "taxonomy.csv").write_text((synthetic / "taxonomy.csv").read_text())

    assert _run(tmp_path, "--panel", str(survey), "--panel", str(synthetic), "--panel", str(exported)) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    summary = data["table"]["summary"]
    assert (
        set(summary[UNIGRAM]) == set(summary[MARKOV1]) == {"survey", "psid_small", "exported"}
    )  # no psid column
    assert set(summary[ORACLE]) == {"psid_small", "exported"}  # a real survey has no oracle
    # The column's oracle agrees with the full oracle model to rounding (same persons, same split).
    assert summary[ORACLE]["exported"]["mean"] == pytest.approx(
        summary[ORACLE]["psid_small"]["mean"], rel=1e-6
    )
    assert data["metrics"]["exported"]["oracle"][0]["stay_auc"] is None  # needs the whole distribution
    for column in ("psid_small", "exported"):
        assert (
            summary[ORACLE][column]["mean"]
            < summary[MARKOV1][column]["mean"]
            < summary[UNIGRAM][column]["mean"]
        )
    assert summary[MARKOV1]["survey"]["mean"] < summary[UNIGRAM]["survey"]["mean"]
    assert data["table"]["flags"] == []
    assert printed.splitlines()[0] == "| model (test perplexity) | survey | psid_small | exported |"
    assert (tmp_path / "out" / "survey" / "unigram-s0" / "metrics.json").is_file()
    assert not (tmp_path / "out" / "data").exists()  # nothing generated


def test_pretrained_rows_pretrain_on_the_users_resume_panel(tmp_path: Path) -> None:
    survey = _csv_panel(tmp_path / "survey.csv", ["a", "b", "c", "d"])
    resumes = _csv_panel(tmp_path / "resumes.csv", ["d", "c", "b", "a"], people=90)  # same codes, other order
    cfg = build(
        CareersBenchmarkConfig,
        {
            "panels": [survey],
            "resumes": resumes,
            "models": ["career-tiny-two_stage+pretrain"],
            "seeds": [0],
            "fit": {"max_epochs": 1},
            "pretrain_epochs": 1,
            "out_dir": tmp_path / "out",
            "tracking": {"enabled": False},
        },
    )
    result = run_careers_benchmark(cfg)
    summary = result.table.summary()
    assert set(summary) == {UNIGRAM, label("career-tiny-two_stage+pretrain")}
    assert len(list((tmp_path / "out" / "pretrained").glob("career-tiny-two_stage-s0-*"))) == 1
    assert not (tmp_path / "out" / "data").exists()  # the user's resumes, not the synthetic corpus


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--panel", "psid"], "'psid' is a synthetic preset name, not a panel folder"),
        (["--preset", "runs/nlsw"], "'runs/nlsw' is a path, not a synthetic preset .* --panel runs/nlsw"),
        (["--preset", "nlsy2000"], "unknown synthetic preset 'nlsy2000'"),
        (
            ["--resumes", "resumes", "--panel", "{survey}"],
            "'resumes' is a synthetic preset name, not a resume panel",
        ),
        (
            ["--panel", "{survey}", "models=career-tiny-two_stage+pretrain"],
            r"needs a resume panel .*\(--resumes DIR\)",
        ),
        (["--panel", "{survey}", "--panel", "{tmp}/other/survey.csv"], "both be column 'survey'"),
        (["--panel", "{tmp}/nowhere"], "panels: .*/nowhere: no such file or folder"),
        (
            [
                "--panel",
                "{survey}",
                "--resumes",
                "{tmp}/resumes.csv",
                "models=career-tiny-two_stage+pretrain",
            ],
            "only in panel .*: c; only in resumes .*: z",
        ),
        (["presets=[]"], "nothing to compare"),
    ],
)
def test_configuration_problems_are_one_line_errors_before_anything_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    import re

    survey = _csv_panel(tmp_path / "survey.csv", ["a", "b", "c"], people=20)
    (tmp_path / "other").mkdir()
    _csv_panel(tmp_path / "other" / "survey.csv", ["a", "b", "c"], people=20)
    _csv_panel(tmp_path / "resumes.csv", ["a", "b", "z"], people=20)
    args = [a.format(survey=survey, tmp=tmp_path) for a in args]
    models = [] if any(a.startswith("models=") for a in args) else ["models=markov1"]
    assert main(["benchmark", "careers", *args, f"out_dir={tmp_path / 'out'}", *models]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # no output folder, so no MLflow store and no run


def test_datasets_and_rows_resolve_from_the_config() -> None:
    assert CareersBenchmarkConfig().datasets == ("psid",)
    cfg = build(CareersBenchmarkConfig, {"panels": ["runs/nlsw", "x/panel.parquet"], "models": ["markov1"]})
    assert cfg.datasets == ("nlsw", "panel") and cfg.rows == ("unigram", "markov1") and not cfg.generates_data
    both = build(
        CareersBenchmarkConfig, {"presets": ["nlsy79"], "panels": ["runs/nlsw"], "models": ["unigram"]}
    )
    assert both.datasets == ("nlsy79", "nlsw") and both.rows == ("unigram",) and both.generates_data
    with pytest.raises(ConfigError, match="may not be named 'data'"):
        build(CareersBenchmarkConfig, {"panels": ["runs/data"]})
