"""Every job YAML under jobs/ resolves its kind through the job registry and loads strictly into that kind's
config (nothing heavy runs); the registry is complete and consistent; and one real `laborlm run` of a YAML
that used to be refused (jobs/synth_psid.yaml, small) goes end to end."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laborlm import jobs
from laborlm.cli import build_parser, main
from laborlm.config import load_yaml
from laborlm.errors import ConfigError
from laborlm.jobs import JOBS, JobOutcome, RunOptions, get_job, load_job

JOBS_DIR = Path(__file__).resolve().parents[3] / "jobs"
JOB_FILES = sorted(JOBS_DIR.glob("*.yaml"))


def test_there_are_job_configs() -> None:
    assert len(JOB_FILES) >= 5


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_job_yaml_loads_as_its_kind(path: Path) -> None:
    kind = load_yaml(path).get("kind")
    job, cfg = load_job(path)  # what `laborlm run` does before it runs anything
    assert job is JOBS[kind] and job.kind == kind
    assert isinstance(cfg, job.config_class)
    header = path.read_text().splitlines()[0]
    assert header.startswith("#"), f"{path.name} needs a commented header"
    assert "laborlm " in path.read_text(), f"{path.name}: header should give the command that runs it"


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_laborlm_run_accepts_every_job_yaml(path: Path) -> None:
    """The `run` command line parses for the file, and the file's job has a runner and a Ray decision."""
    args = build_parser().parse_args(["run", f"jobs/{path.name}"])
    assert args.fn.__name__ == "_cmd_run"
    job, cfg = load_job(path)
    assert callable(job.runner) and callable(job.ray)
    needs = job.ray(cfg, RunOptions())  # cheap: reads the config only
    assert needs is None or needs.num_cpus is None or needs.num_cpus >= 1


def test_registry_is_consistent() -> None:
    for kind, job in JOBS.items():
        assert job.kind == kind
        assert dataclasses.is_dataclass(job.config_class), kind
        assert job.description and job.output_kind in ("file", "folder", "path"), kind
        # Runners are module-level functions of laborlm.jobs taking (config, options): no Namespace anywhere.
        assert job.runner.__module__ == "laborlm.jobs" and job.runner.__qualname__ == job.runner.__name__
        assert list(inspect.signature(job.runner).parameters) == ["cfg", "options"], kind
    assert jobs.ANALYSES == ("forecast", "wages", "subgroups", "rationale")
    shipped = {load_yaml(p).get("kind") for p in JOB_FILES}
    assert shipped <= set(JOBS)


def test_unknown_kind_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: nope\n")
    with pytest.raises(ConfigError, match="kind: expected one of") as info:
        load_job(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="kind: expected one of"):
        get_job(None)


def test_a_command_refuses_a_yaml_of_another_kind_but_analyses_share_theirs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected 'train', got 'sweep'"):
        load_job(JOBS_DIR / "sweep_scaling.yaml", kind="train")
    analysis = tmp_path / "a.yaml"
    analysis.write_text("kind: analyze_forecast\nmodels: [oracle]\n")
    job, cfg = load_job(analysis, kind="analyze_wages")  # one AnalyzeConfig YAML, any analysis
    assert job.kind == "analyze_wages" and cfg.models == ("oracle",)
    no_kind = tmp_path / "b.yaml"
    no_kind.write_text("pretrain:\n  max_steps: 3\n")
    assert load_job(no_kind, kind="train")[1].pretrain.max_steps == 3


def test_a_config_of_the_wrong_class_is_refused() -> None:
    _, train = load_job(JOBS_DIR / "train_tiny.yaml")
    with pytest.raises(TypeError, match="runs a SweepConfig"):
        JOBS["sweep"].run(train)


def test_synth_job_keys_stay_out_of_the_panel_config() -> None:
    job, cfg = load_job(JOBS_DIR / "synth_psid.yaml", ["workers=2"])
    assert cfg.panel_dir == Path("runs/psid") and job.ray(cfg, RunOptions()).num_cpus == 2
    panel = cfg.panel_config()
    assert type(panel).__name__ == "SynthConfig" and not hasattr(panel, "out_dir")
    assert job.ray(load_job(JOBS_DIR / "synth_psid.yaml")[1], RunOptions()) is None  # in-process: no Ray
    with pytest.raises(ConfigError, match="workers"):
        load_job(JOBS_DIR / "synth_psid.yaml", ["workers=0"])


def test_laborlm_run_synth_psid_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The YAML `laborlm run` used to refuse, run for real (in-process generation, 150 people, ~1 s)."""
    from laborlm.synthetic import load_synth_config

    out = tmp_path / "psid"
    assert main(["-q", "run", str(JOBS_DIR / "synth_psid.yaml"), "people=150", f"out_dir={out}"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{out}: 150 people") and "oracle perplexity" in line
    table = pq.read_table(sorted(out.glob("*.parquet")))
    assert len(set(table.column("person_id").to_pylist())) == 150
    recorded = load_synth_config(out)  # the panel records its own config, without the job's keys
    assert recorded is not None and recorded.people == 150 and recorded.source == "psid"
    assert "out_dir" not in (out / "synth.yaml").read_text()


def test_run_reports_a_bad_override_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "run", str(JOBS_DIR / "synth_psid.yaml"), "people=many"]) == 2
    assert "people" in capsys.readouterr().err


def test_job_outcome_sets_the_exit_status() -> None:
    assert JobOutcome("x").ok and not JobOutcome("x", ok=False).ok
