from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from laborlm.config import apply_overrides, build, config_hash, flatten, load_config, to_dict
from laborlm.errors import ConfigError


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    schedule: Literal["cosine", "inverse_sqrt"] = "cosine"
    eval_every: int | None = None
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError("lr must be > 0")


@dataclass(frozen=True)
class Job:
    name: str
    out: Path = Path("runs")
    optim: Optim = field(default_factory=Optim)


def test_defaults_only_need_required_fields() -> None:
    job = build(Job, {"name": "a"})
    assert job == Job(name="a")
    assert job.optim.targets == ("q_proj", "v_proj")


def test_all_problems_reported_together_with_file_and_dotted_key(tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text("optim:\n  lr: fast\n  schedul: cosine\n  eval_every: 2.5\nextra: 1\n")
    with pytest.raises(ConfigError) as ei:
        load_config(Job, p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: ")
    assert "name: missing required value" in msg
    assert "optim.lr: expected float, got 'fast'" in msg
    assert "optim.schedul: unknown key (did you mean 'schedule'?)" in msg
    assert "optim.eval_every: expected int | null, got 2.5" in msg
    assert "extra: unknown key" in msg
    assert len(ei.value.problems) == 5


def test_post_init_checks_are_reported_with_their_section() -> None:
    with pytest.raises(ConfigError, match=r"optim: lr must be > 0"):
        build(Job, {"name": "a", "optim": {"lr": -1}})


def test_overrides_are_parsed_by_declared_type() -> None:
    data = apply_overrides(
        Job,
        {"name": "a"},
        ["optim.lr=3e-4", "optim.eval_every=null", "optim.targets=q_proj,o_proj", "out=/tmp/x", "name=123"],
    )
    job = build(Job, data)
    assert job.optim.lr == pytest.approx(3e-4)
    assert job.optim.eval_every is None
    assert job.optim.targets == ("q_proj", "o_proj")
    assert job.out == Path("/tmp/x")
    assert job.name == "123"  # a str field keeps the text, never guessed as an int


def test_bad_overrides_all_reported() -> None:
    with pytest.raises(ConfigError) as ei:
        apply_overrides(Job, {}, ["optim.lr=fast", "optimm.lr=1", "noequals", "optim.schedule=linear"])
    assert len(ei.value.problems) == 4
    assert "optimm.lr: unknown key (did you mean 'optim'?)" in str(ei.value)


def test_yaml_float_written_without_dot_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text("kind: demo\nname: x\noptim:\n  lr: 3e-4\n")
    assert load_config(Job, p).optim.lr == pytest.approx(3e-4)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("name: a\noptim: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: invalid YAML"):
        load_config(Job, p)


def test_flatten_hash_and_pickle() -> None:
    job = build(Job, {"name": "a"})
    flat = flatten(job)
    assert flat["optim.lr"] == 1e-3 and flat["out"] == "runs"
    assert config_hash(job) == config_hash(build(Job, to_dict(job)))
    assert config_hash(job) != config_hash(build(Job, {"name": "b"}))
    err = ConfigError(["a", "b"], source="x.yaml")
    again = pickle.loads(pickle.dumps(err))
    assert again.problems == ["a", "b"] and str(again) == str(err)


def test_duplicate_yaml_keys_are_errors_naming_file_line_and_key(tmp_path: Path) -> None:
    """Issue 16 defect 8: YAML keeps the last of two equal keys silently."""
    p = tmp_path / "job.yaml"
    p.write_text("name: a\noptim:\n  lr: 0.1\n  lr: 0.2\nname: b\n")
    with pytest.raises(ConfigError) as ei:
        load_config(Job, p)
    assert ei.value.source == str(p)
    assert ei.value.problems == [
        "line 4: duplicate key 'lr' (first on line 3)",
        "line 5: duplicate key 'name' (first on line 1)",
    ]


def test_an_override_problem_is_attributed_to_the_override_not_the_file(tmp_path: Path) -> None:
    p = tmp_path / "job.yaml"
    p.write_text("name: a\noptim:\n  schedule: cosine\n")
    with pytest.raises(ConfigError) as ei:
        load_config(Job, p, ["optim.lr=-1"])
    msg = str(ei.value)
    assert msg == f"{p} with override optim.lr=-1: optim: lr must be > 0", msg  # a check within the section
    p.write_text("name: a\nout: 3\nextra: 1\n")
    with pytest.raises(ConfigError) as ei:
        load_config(Job, p, ["optim.eval_every=2"])
    assert all(problem.startswith(f"{p}: ") for problem in ei.value.problems)  # the file's own problems

    @dataclass(frozen=True)
    class People:
        people: int = 1

        def __post_init__(self) -> None:
            if self.people < 1:
                raise ConfigError(f"people: expected >= 1, got {self.people}")

    with pytest.raises(ConfigError) as ei:
        load_config(People, None, ["people=-5"])
    assert str(ei.value) == "override people=-5: config: people: expected >= 1, got -5"
