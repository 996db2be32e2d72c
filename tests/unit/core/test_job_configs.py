"""Every job YAML under jobs/ loads strictly into its kind's config, and documents how to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from laborlm.cli import _JOBS, _job_class
from laborlm.config import load_config, load_yaml
from laborlm.errors import ConfigError

JOBS_DIR = Path(__file__).resolve().parents[3] / "jobs"
JOB_FILES = sorted(JOBS_DIR.glob("*.yaml"))


def test_there_are_job_configs() -> None:
    assert len(JOB_FILES) >= 5


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_job_yaml_loads_as_its_kind(path: Path) -> None:
    kind = load_yaml(path).get("kind")
    assert kind in _JOBS, f"{path.name}: kind {kind!r}"
    cfg = load_config(_job_class(kind, str(path)), path, [])
    assert type(cfg).__name__ == _JOBS[kind][1]
    header = path.read_text().splitlines()[0]
    assert header.startswith("#"), f"{path.name} needs a commented header"
    assert "laborlm " in path.read_text(), f"{path.name}: header should give the command that runs it"


def test_unknown_kind_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: nope\n")
    with pytest.raises(ConfigError, match="kind: expected one of"):
        _job_class(load_yaml(bad).get("kind"), str(bad))
