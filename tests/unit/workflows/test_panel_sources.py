"""A workflow's data from a synthetic preset or a user's panel (workflows/panels.py), checked the same way by
`laborlm quickstart`, `benchmark llm` and `sweep`: a preset name where a path is meant or the reverse, a missing
path and a folder that is not a panel are one-line errors (rc 2) when the config is loaded, before Ray starts or
anything is written; splits and taxonomies are checked before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from laborlm.cli import main
from laborlm.config import load_config
from laborlm.errors import ConfigError, InputDataError
from laborlm.sweeps.scaling import SweepConfig
from laborlm.workflows.benchmark_llm import LlmBenchmarkConfig
from laborlm.workflows.panels import prepare_panels
from laborlm.workflows.quickstart import QuickstartConfig

CONFIGS = [QuickstartConfig, LlmBenchmarkConfig, SweepConfig]


def _panel(folder: Path, codes: tuple[str, ...] = ("a", "b", "c"), people: int = 40) -> Path:
    """A small canonical panel folder (one CSV shard), as `laborlm data import` leaves one."""
    folder.mkdir(parents=True)
    rows = ["person_id,year,occupation,source"]
    for i in range(people):
        for t, year in enumerate((1970, 1971, 1973)):
            rows.append(f"p{i:03d},{year},{codes[(i + t * (i % 2)) % len(codes)]},survey")
    (folder / "part-00000.csv").write_text("\n".join(rows) + "\n")
    return folder


def _error(cls: type, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(cls, None, overrides)
    return str(info.value)


@pytest.mark.parametrize("cls", CONFIGS)
def test_a_preset_name_where_a_path_is_meant_and_the_reverse_are_clear_errors(
    cls: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no folder named psid or resumes here
    panel = _panel(tmp_path / "nlsw")
    assert "'psid' is a synthetic preset name, not a panel" in _error(cls, ["survey_panel=psid"])
    assert "survey=NAME" in _error(cls, ["survey_panel=psid"])
    assert "'resumes' is a synthetic preset name" in _error(cls, ["resume_panel=resumes"])
    message = _error(cls, [f"survey={panel}"])
    assert (
        f"survey: '{panel}' is a path, not a synthetic preset" in message
        and f"survey_panel={panel}" in message
    )
    assert "unknown synthetic preset 'psdi'" in _error(cls, ["survey=psdi"])
    assert "no such file or folder" in _error(cls, [f"survey_panel={tmp_path / 'missing'}"])
    (tmp_path / "empty").mkdir()
    assert "not a panel" in _error(cls, [f"survey_panel={tmp_path / 'empty'}"])
    (tmp_path / "notes.txt").write_text("x")
    assert "not a panel" in _error(cls, [f"resume_panel={tmp_path / 'notes.txt'}"])
    both = _error(cls, ["survey_panel=psid", f"resume_panel={tmp_path / 'missing'}"])
    assert "survey_panel" in both and "resume_panel" in both  # every problem in one error
    extra = ["arms=survey-only", "careers_models=markov1"] if cls is LlmBenchmarkConfig else []
    cfg = load_config(cls, None, [f"survey_panel={panel}", *extra])
    assert cfg.survey_panel == panel


def test_benchmark_llm_on_a_user_survey_names_the_arms_that_need_resumes() -> None:
    message = _error(LlmBenchmarkConfig, ["survey_panel=tests/fixtures/panels"])
    assert "fine-tuned" in message and "resume_panel=DIR" in message and "arms=survey-only" in message
    assert "pooled pool the synthetic surveys" in message
    assert "career-small-two_stage+pretrain" in message


def test_the_command_line_refuses_before_ray_starts_or_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.chdir(tmp_path)
    started = ray.is_initialized()
    for args in (
        ["quickstart", "survey_panel=psid"],
        ["benchmark", "llm", "survey_panel=nlsw"],
        [
            "run",
            str(Path(__file__).resolve().parents[3] / "jobs" / "sweep_scaling.yaml"),
            "resume_panel=resumes",
        ],
    ):
        out = tmp_path / "out"
        assert main(["-q", *args, f"out_dir={out}"]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("laborlm: error:") and (
            "synthetic preset name" in err or "no such file" in err
        ), err
        assert not out.exists()
    assert ray.is_initialized() == started


def test_prepare_panels_checks_splits_and_codes_before_writing(tmp_path: Path) -> None:
    survey = _panel(tmp_path / "survey")
    resumes = _panel(tmp_path / "resumes", codes=("a", "b", "z"))
    out = tmp_path / "out"
    args: dict[str, Any] = {
        "survey": "psid",
        "survey_panel": survey,
        "survey_people": None,
        "resumes": True,
        "resume_panel": resumes,
        "resume_people": None,
        "seed": 0,
        "out": out,
    }
    with pytest.raises(ConfigError, match="only in survey .*: c; only in resumes .*: z"):
        prepare_panels(**args, same_codes=True)
    prepared = prepare_panels(**args)  # other codes are fine where nothing reads the resumes' codes
    assert prepared.survey_name == "survey" and prepared.user_survey and prepared.resumes == resumes.resolve()
    assert not out.exists()  # a user's panels are read, never copied
    tiny = _panel(tmp_path / "tiny", people=1)
    with pytest.raises(InputDataError, match="no person in the (train|test) split"):
        prepare_panels(**{**args, "survey_panel": tiny})
