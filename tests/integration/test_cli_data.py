"""The `laborlm data ...` commands end to end, through cli.main (no subprocess), on real and fixture files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.cli import main
from laborlm.readers import read_panel


def test_career_sample_in_onet_codes_imports_with_inferred_taxonomy(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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


def test_validate_with_rejects_reports_counts_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    assert main(["-q", "data", "synth", "--preset", "psid", "--people", "300", "--seed", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["people"] == 300 and stats["special_states_available"] and stats["demographics_available"]
    assert main(["data", "stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| Number of individuals | 300 |" in text and "| year | occupation-change share |" in text
