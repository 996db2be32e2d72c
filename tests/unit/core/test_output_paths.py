"""Unwritable outputs are one-line errors with exit code 2, never tracebacks (issue 16 defect 6).

The test walks the parser: every command with an output flag must be in ``cli._OUTPUT_FLAGS``, and each such
flag given an impossible path (inside /proc, under a file, a folder where a file is meant) fails before any
work, naming the path. Job configs' ``out_dir`` goes the same way through ``laborlm run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from laborlm import cli
from laborlm.errors import LaborLMError
from laborlm.occupations import Taxonomy
from laborlm.paths import check_output, ensure_writable_dir, open_output_file
from laborlm.readers import write_panel
from laborlm.schema import empty_panel

OUTPUT_LIKE = {"out", "rejects", "out_dir", "output"}  # option names that always mean "written here"
REPO = Path(__file__).resolve().parents[3]


def leaf_parsers() -> dict[tuple[str, str | None], argparse.ArgumentParser]:
    """(command, subcommand) -> its parser, for every command of ``laborlm``."""
    out: dict[tuple[str, str | None], argparse.ArgumentParser] = {}

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    for name, parser in subcommands(cli.build_parser()).items():
        children = subcommands(parser)
        if not children:
            out[(name, None)] = parser
        for child, child_parser in children.items():
            out[(name, child)] = child_parser
    return out


def argv_for(
    command: tuple[str, str | None], parser: argparse.ArgumentParser, dest: str, value: str
) -> list[str]:
    """A command line with placeholder inputs (outputs are checked before inputs are read) and ``dest=value``."""
    argv = [command[0]] + ([command[1]] if command[1] else [])
    for action in parser._actions:
        if action.dest == dest:
            argv += [action.option_strings[0], value]
        elif not action.option_strings and action.nargs not in ("*", "?", argparse.REMAINDER):
            argv.append(str(action.choices and next(iter(action.choices)) or "placeholder"))
        elif action.option_strings and action.required:
            argv += [action.option_strings[0], str(action.choices and next(iter(action.choices)) or "1")]
    return argv


def test_every_output_flag_is_checked() -> None:
    missing = [
        (command, action.dest)
        for command, parser in leaf_parsers().items()
        for action in parser._actions
        if action.dest in OUTPUT_LIKE and action.dest not in cli._OUTPUT_FLAGS.get(command, {})
    ]
    assert not missing, f"output flags that main() does not check; add them to cli._OUTPUT_FLAGS: {missing}"


def test_unwritable_output_flags_fail_with_rc_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    parsers = leaf_parsers()
    checked = 0
    for command, flags in cli._OUTPUT_FLAGS.items():
        if command not in parsers:
            continue
        for dest, kind in flags.items():
            bad = ["/proc/self/laborlm-x", f"{a_file}/sub"] + ([str(tmp_path)] if kind == "file" else [])
            if kind == "folder":
                bad.append(str(a_file))
            for value in bad:
                argv = argv_for(command, parsers[command], dest, value)
                assert cli.main(argv) == 2, argv
                err = capsys.readouterr().err
                assert err.startswith("laborlm: error: ") and err.count("\n") == 1, err
                assert value.rsplit("/", 1)[0] in err and "Traceback" not in err, err
                checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    "job",
    [
        "quickstart.yaml",
        "build_corpus.yaml",
        "benchmark_careers.yaml",
        "train_tiny.yaml",
        "sweep_scaling.yaml",
    ],
)
def test_a_job_out_dir_that_cannot_be_written_fails_before_any_work(
    job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", str(REPO / "jobs" / job), "out_dir=/proc/self/laborlm-x"]) == 2
    assert "/proc/self/laborlm-x: cannot write the out_dir there" in capsys.readouterr().err


def test_library_helpers(tmp_path: Path) -> None:
    assert ensure_writable_dir(tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "c").exists() and check_output(tmp_path / "c", "folder", "--out") == tmp_path / "c"
    with open_output_file(tmp_path / "d" / "r.jsonl") as f:
        f.write("x\n")
    with open_output_file(tmp_path / "d" / "r.jsonl"):
        pass  # written afresh
    assert (tmp_path / "d" / "r.jsonl").read_text() == ""
    with pytest.raises(LaborLMError, match="is a file, not a folder"):
        check_output(tmp_path / "d" / "r.jsonl", "folder", "--out")
    with pytest.raises(LaborLMError, match="cannot write the folder here"):  # the writers say so too
        write_panel(empty_panel(), "/proc/self/laborlm-x", Taxonomy.default())
