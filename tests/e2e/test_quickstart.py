"""`laborlm quickstart` end to end on a shortened configuration: local Ray, a real loopback MLflow server
(started and stopped by the command), data -> corpora -> LM pretrain + fine-tune -> baselines and CAREER ->
one table against the oracle -> the registered model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from laborlm.cli import main

ORACLE = "Oracle (exact DGP)"
pytestmark = pytest.mark.timeout(1200)  # the whole pipeline: ~3 min on an idle 2-core machine


def _perplexities(report: str) -> dict[str, float]:
    rows = re.finditer(r"^\| ([^|]+?) \| ([\d.]+) ± [\d.]+ \|$", report, re.MULTILINE)
    return {m.group(1): float(m.group(2)) for m in rows}


def test_quickstart_runs_the_pipeline_and_every_model_sits_above_the_oracle(
    ray_session: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "qs"
    args = [
        "-q",
        "quickstart",
        f"out_dir={out}",
        "survey_people=600",
        "resume_people=1500",
        "test_people=30",
        "models=unigram,markov1,two_stage",
        (
            "train_overrides=pretrain.max_steps=30,finetune.max_steps=30,"
            "pretrain.eval_every_steps=20,finetune.eval_every_steps=15,pretrain.eval_blocks=64,finetune.eval_blocks=64"
        ),
    ]
    assert main(args) == 0
    report = capsys.readouterr().out
    assert (out / "report.md").read_text().strip() in report
    for name in ("psid", "resumes"):
        assert (out / f"{name}.rejects.jsonl").read_text() == ""  # synthetic data validates cleanly
        assert (out / "corpus" / name / "manifest.json").exists()
    assert "| Percent college graduates |" in report

    ppl = _perplexities(report)
    llm = {k: v for k, v in ppl.items() if k.startswith("LLM ")}
    assert len(llm) == 2 and {"Markov chain, order 1", "CAREER-small (two-stage)"} <= set(ppl)
    assert any(k.startswith("Control: the same head on a random") for k in ppl), ppl
    assert all(v > ppl[ORACLE] for k, v in ppl.items() if k != ORACLE), ppl
    finetuned = next(v for k, v in llm.items() if k.endswith("fine-tuned on psid") and "embedding" not in k)
    assert finetuned < 345, llm  # even 60 steps put the LM far below a uniform guess over the K labels
    assert "not scored here" in report  # the not-fine-tuned row is dropped with its reason

    assert "models:/laborlm-quickstart@champion" in report
    assert "mlflow ui --backend-store-uri sqlite:///" in report  # the server was ours and is stopped
    from mlflow import MlflowClient

    store = f"sqlite:///{out / 'mlflow.db'}"  # the server is gone; its SQLite store stays
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias("laborlm-quickstart", "champion").version) == "1"
