"""`laborlm quickstart` end to end on a shortened configuration, on the session's local Ray."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from laborlm.cli import main


def test_quickstart_runs_and_every_model_sits_above_the_oracle(ray_session: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "qs"
    assert main(["-q", "quickstart", f"out_dir={out}", "survey_people=800", "resume_people=1500"]) == 0
    report = capsys.readouterr().out
    assert (out / "report.md").read_text().strip() in report
    for name in ("psid", "resumes"):
        assert (out / name / "taxonomy.csv").exists()
        assert (out / f"{name}.rejects.jsonl").read_text() == ""  # synthetic data validates cleanly
    assert (out / "models" / "markov1" / "model.json").exists()
    ppl = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\| (oracle \(exact DGP\)|Markov order \d) \| ([\d.]+) \|$", report, re.MULTILINE)}
    assert set(ppl) == {"oracle (exact DGP)", "Markov order 1", "Markov order 2"}
    assert all(v > ppl["oracle (exact DGP)"] for k, v in ppl.items() if k.startswith("Markov"))
    assert "| Percent college graduates |" in report
