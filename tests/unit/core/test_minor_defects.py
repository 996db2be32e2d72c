"""Issue 16 defect 8, the minor ones, each through the real command line (``laborlm.cli.main``).

Duplicate YAML keys are tested in ``test_config.py::test_duplicate_yaml_keys_are_errors_naming_file_line_and_key``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from laborlm import cli

REPO = Path(__file__).resolve().parents[3]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
COMMAND = re.compile(r"`laborlm ([a-z]+)(?: ([a-z]+))?([^`]*)`")


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("person_id,year,occupation,source\n" + "\n".join(rows) + "\n")
    return path


def _panel(path: Path, people: int) -> Path:
    return _csv(
        path,
        [
            f"p{i:03d},{2000 + t},{('4', '7', '889')[(i + t) % 3]},psid"
            for i in range(people)
            for t in range(2)
        ],
    )


def _options(*command: str) -> set[str]:
    parser = cli.build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {o for a in parser._actions for o in a.option_strings}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- an override's problem names the override ------------------------------------------------------------------


def test_an_override_problem_names_the_override_not_the_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`data synth --config X.yaml people=-3` blamed X.yaml (it built the config itself)."""
    yaml = REPO / "jobs" / "synth_psid.yaml"
    for argv in (
        ["data", "synth", "--config", str(yaml), "--out", str(tmp_path / "o"), "people=-3"],
        ["run", str(yaml), f"out_dir={tmp_path / 'o'}", "people=-3"],
    ):
        assert cli.main(["-q", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err == "laborlm: error: override people=-3: config: people: expected >= 1, got -3", argv
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: synth\npeople: -2\n")  # the YAML's own problem still names the YAML
    assert (
        cli.main(["-q", "data", "synth", "--config", str(bad), "--out", str(tmp_path / "o"), "seed=1"]) == 2
    )
    assert f"error: {bad}: config: people: expected >= 1, got -2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- evaluate's messages name only flags that exist ------------------------------------------------------------


def test_every_flag_evaluate_names_exists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each failure of `laborlm evaluate` (and its --help): a bare --flag must be one of evaluate's; one inside
    a quoted `laborlm CMD ...` must be one of CMD's. Before: `use --rejects`, `pass --two-digit-years`,
    `pass --taxonomy`, `tracking.enabled=false` (evaluate has none of these)."""
    model = tmp_path / "unigram"
    assert (
        cli.main(
            [
                "-q",
                "fit",
                "unigram",
                "--panel",
                str(_panel(tmp_path / "big.csv", 60)),
                "--out",
                str(model),
                "--no-mlflow",
            ]
        )
        == 0
    )
    capsys.readouterr()
    two_digit = _csv(
        tmp_path / "years.csv", ["p1,2000,4,psid", "p1,05,4,psid", "p2,2001,4,psid", "p2,07,4,psid"]
    )
    code = _csv(tmp_path / "code.csv", ["p1,2000,4,psid", "p1,2001,XYZ,psid"])
    columns = tmp_path / "columns.csv"
    columns.write_text("idcode,year,occ\np1,2000,4\n")
    base = ["evaluate", "--model", str(model), "--split", "all"]
    runs = {
        "two-digit years, more problems": [*base, "--panel", str(two_digit), "--no-mlflow"],
        "an unknown code": [*base, "--panel", str(code), "--no-mlflow"],
        "unknown columns": [*base, "--panel", str(columns), "--no-mlflow"],
        "no tracking server": [
            *base,
            "--panel",
            str(_panel(tmp_path / "p.csv", 3)),
            "--tracking-uri",
            f"http://127.0.0.1:{_free_port()}",
        ],
        "no model": ["evaluate", "--model", str(tmp_path / "none"), "--panel", str(code)],
        "unwritable --out": [*base, "--panel", str(code), "--out", "/proc/self/x/metrics.json"],
        "empty split": [
            "evaluate",
            "--model",
            str(model),
            "--panel",
            str(_panel(tmp_path / "one.csv", 1)),
            "--split",
            "valid",
            "--no-mlflow",
        ],
    }
    texts = {}
    for what, argv in runs.items():
        assert cli.main(["-q", *argv]) == 2, what
        texts[what] = capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    texts["--help"] = capsys.readouterr().out
    assert (
        "two-digit years?" in texts["two-digit years, more problems"]
        and "more problem" in texts["two-digit years, more problems"]
    )
    assert "another coding scheme" in texts["an unknown code"]
    own = _options("evaluate")
    named = 0
    for what, text in texts.items():
        for command, sub, rest in COMMAND.findall(text):
            path = (command, sub) if sub else (command,)
            for flag in FLAG.findall(rest):
                assert flag in _options(*path), f"{what}: `laborlm {' '.join(path)}` has no {flag}: {text}"
                named += 1
        for flag in FLAG.findall(COMMAND.sub("", text)):
            assert flag in own, f"{what}: evaluate has no {flag}: {text}"
            named += 1
        assert "tracking.enabled" not in text and "tracking.tracking_uri" not in text, (what, text)
    assert named >= 6  # the walk saw flags to check


# --- predict: a year that is NaN, null or missing -------------------------------------------------------------


def test_predict_says_what_is_wrong_with_a_year(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`{"year": NaN}` said "is required"."""
    model = tmp_path / "unigram"
    assert (
        cli.main(
            [
                "-q",
                "fit",
                "unigram",
                "--panel",
                str(_panel(tmp_path / "big.csv", 30)),
                "--out",
                str(model),
                "--no-mlflow",
            ]
        )
        == 0
    )
    capsys.readouterr()
    cases = {
        '{"year": NaN, "occupation": "4"}': "'history[0].year': nan is not a finite number (an integer year",
        '{"year": Infinity, "occupation": "4"}': "'history[0].year': inf is not a finite number",
        '{"year": null, "occupation": "4"}': "'history[0].year': is null: an integer year is required",
        '{"occupation": "4"}': "'history[0].year': is required",
    }
    for entry, message in cases.items():
        careers = tmp_path / "c.jsonl"
        careers.write_text(f'{{"history": [{entry}]}}\n')
        assert cli.main(["-q", "predict", "--model", str(model), "--input", str(careers)]) == 2
        assert message in capsys.readouterr().err, entry


# --- a failed models:/ lookup writes nothing -------------------------------------------------------------------


def test_a_failed_registry_lookup_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no tracking URI, MLflow's default created ./mlflow.db (and a down server was retried for minutes)."""
    work = tmp_path / "work"
    work.mkdir()
    careers = work / "c.jsonl"
    careers.write_text('{"history": [{"year": 2001, "occupation": "4"}]}\n')
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{store}").search_registered_models()  # an existing, empty registry
    capsys.readouterr()
    cases = {
        (): "no MLflow tracking URI: pass --tracking-uri",
        ("--tracking-uri", "sqlite:///mlflow.db"): "no MLflow database at mlflow.db",
        ("--tracking-uri", f"http://127.0.0.1:{_free_port()}"): "does not answer",
        ("--tracking-uri", f"sqlite:///{store}"): "Registered Model with name=nope not found",
    }
    for flags, message in cases.items():
        start = time.monotonic()
        assert (
            cli.main(["-q", "predict", "--model", "models:/nope@champion", "--input", str(careers), *flags])
            == 2
        )
        assert time.monotonic() - start < 30, flags
        err = capsys.readouterr().err
        assert err.startswith("laborlm: error: models:/nope@champion: ") and message in err, (flags, err)
        assert sorted(p.name for p in work.iterdir()) == ["c.jsonl"], flags


# --- stale temporary folders of killed runs are removed --------------------------------------------------------


def _synth(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "laborlm",
            "data",
            "synth",
            "--preset",
            "psid",
            "--people",
            "5",
            "--out",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_killed_writer_leaves_a_temp_folder_that_the_next_run_removes(tmp_path: Path) -> None:
    """SIGKILL mid-write leaves `.NAME.tmp-PID-*` beside the output; the next run of the command removes it and
    says so, but never the temporary folder of a writer that is still running."""
    out = tmp_path / "synth"
    script = (
        "import sys, time; from pathlib import Path; from laborlm.readers.layout import replace_folder; "
        "replace_folder(Path(sys.argv[1]), lambda name: True, lambda tmp: time.sleep(120))"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(out)])  # stopped mid-write by SIGKILL below
    live = None
    try:
        for _ in range(300):
            live = next(iter(tmp_path.glob(".synth.tmp-*")), None)
            if live is not None:
                break
            time.sleep(0.1)
        assert live is not None and live.name.startswith(f".synth.tmp-{writer.pid}-"), list(
            tmp_path.iterdir()
        )
        # A run while that writer is alive leaves its folder alone.
        proc = _synth(out)
        assert proc.returncode == 0, proc.stderr
        assert live.exists()
    finally:
        writer.kill()
        writer.wait()
    assert live.exists()  # SIGKILL: nothing cleaned up
    proc = _synth(out)  # a fresh process, as a user's next run
    assert proc.returncode == 0, proc.stderr
    assert not live.exists()
    assert f"removed {live}, left by an interrupted run (process {writer.pid})" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]


def test_stale_temps_of_every_writer_are_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """data import (a folder swapped in), data export --format csv (a file renamed into place), and the step of
    corpus build that clears its folder (shards renamed into place; the build itself needs Ray, see
    tests/chaos): a leftover of a dead process, older than this one, is removed and logged; a recent one or a
    live process's is kept."""
    from laborlm.corpus.build import _clear

    panel = _panel(tmp_path / "in.csv", 20)
    dead, old = _dead_pid(), time.time() - 3600
    imported, csv, corpus = tmp_path / "imported", tmp_path / "export.csv", tmp_path / "corpus"
    corpus.mkdir()
    stale = [
        tmp_path / f".imported.tmp-{dead}-0badc0de",
        tmp_path / f".export.csv.tmp-{dead}-0badc0de",
        corpus / f".corpus-0-000.parquet.tmp-{dead}",
    ]
    kept = [
        tmp_path / f".imported.tmp-{os.getppid()}-00000001",  # a live process's (pytest's parent)
        tmp_path / f".imported.tmp-{dead}-00000002",
    ]  # newer than this process: not a leftover of a killed run
    for path in stale + kept:
        path.mkdir() if "imported" in path.name else path.write_text("half")
    for path in [*stale, kept[0]]:
        os.utime(path, (old, old))
    caplog.set_level(logging.INFO, logger="laborlm")
    assert cli.main(["data", "import", str(panel), "--out", str(imported)]) == 0
    assert cli.main(["data", "export", str(imported), "--format", "csv", "--out", str(csv)]) == 0
    _clear(corpus)
    capsys.readouterr()
    for path in stale:
        assert not path.exists(), path
        assert f"removed {path}, left by an interrupted" in caplog.text, path
    assert all(path.exists() for path in kept)
