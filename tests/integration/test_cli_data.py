"""The `laborlm data ...` commands end to end, through cli.main (no subprocess), on real and fixture files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.cli import main
from laborlm.readers import read_panel


def test_career_sample_in_onet_codes_imports_with_inferred_taxonomy(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "panel"
    assert main(["data", "import", str(shared_data / "career_sample_data"), "--out", str(out)]) == 0
    assert "kept" in capsys.readouterr().out
    read = read_panel(out)
    assert read.taxonomy.name != "occ1990dd" and "31-2021" in read.taxonomy
    assert len(set(read.table.column("person_id").to_pylist())) == 5
    assert sorted(set(read.table.column("split").to_pylist())) == ["test", "train", "valid"]
    # ... and exports back to CAREER files that re-import to the same panel.
    assert main(["data", "export", str(out), "--format", "career", "--out", str(tmp_path / "career")]) == 0
    assert read_panel(tmp_path / "career").table.equals(read.table)


def test_validate_with_rejects_reports_counts_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("person_id,year,occupation,source\na,2000,4,psid\na,2001,9999,psid\nb,2000,889,psid\n")
    rejects = tmp_path / "rejects.jsonl"
    assert main(["data", "validate", str(bad), "--rejects", str(rejects)]) == 1
    assert "rows in 3 = kept 2 + rejected 1" in capsys.readouterr().out  # only the bad row goes
    rec = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert any(r["field"] == "occupation" and r["row"] == 3 and r["value"] == "9999" for r in rec)
    assert main(["data", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: field 'occupation': '9999'" in err


def test_synth_then_stats_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "psid"
    assert (
        main(["-q", "data", "synth", "--preset", "psid", "--people", "300", "--seed", "3", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert main(["data", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["people"] == 300 and stats["special_states_available"] and stats["demographics_available"]
    assert main(["data", "stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| Number of individuals | 300 |" in text and "| year | occupation-change share |" in text


NLSW_IMPORT = [  # README "Command line": the real NLS Young Women panel, imported as it is
    "--source",
    "nlsw",
    "--taxonomy",
    "jobs/data/nlsw_occupations.csv",
    "--columns",
    "person_id=idcode,occupation=occ_code,birth_year=birth_yr,education=grade,wage=ln_wage",
    "--ignore-columns",
    "*",
    "--two-digit-years",
    "1900",
    "--map",
    "race:1=white,2=black,3=other",
    "--map",
    "education:0-11=less_than_high_school,12=high_school,13-15=some_college,16=bachelors,17-18=masters",
]


def test_the_real_nls_panel_imports_with_maps(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the README command runs from the repo root
    source = shared_data / "nlsyw_young_women_1968_1988_nlswork.csv"
    out, rejects = tmp_path / "nlsw", tmp_path / "nlsw.rejects.jsonl"
    assert (
        main(["data", "import", str(source), "--out", str(out), "--rejects", str(rejects), *NLSW_IMPORT]) == 0
    )
    text = capsys.readouterr().out
    assert "rows in 28,534 = kept 28,413 + rejected 121 (4,699 people, taxonomy nlsw_occupations)" in text
    assert "recoded race (--map), rows: '1' -> white: 20,180; '2' -> black: 8,051; '3' -> other: 303" in text
    assert "recoded year (--two-digit-years): two-digit years -> 1968..1988 on 28,534 rows" in text
    reasons = {json.loads(line)["reason"] for line in rejects.read_text().splitlines()}
    assert reasons == {"missing occupation"}  # the 121 rows without an occ_code, and nothing else
    read = read_panel(out)
    assert len(read.taxonomy) == 13 + 3 and read.taxonomy.title("12") == "Private household workers"
    t = read.table
    assert set(t.column("source").to_pylist()) == {"nlsw"} and t.column("wage").null_count < 100
    assert (min(t.column("year").to_pylist()), max(t.column("year").to_pylist())) == (1968, 1988)
    assert set(t.column("race").to_pylist()) == {"white", "black", "other"}
