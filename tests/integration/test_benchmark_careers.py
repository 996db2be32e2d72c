"""A shortened `laborlm benchmark careers`: every model is scored by the shared harness and sits above the
oracle, the table and per-model artifacts are written, and the MLflow run holds the metrics."""

from __future__ import annotations

import json
from pathlib import Path

from laborlm.config import apply_overrides, build
from laborlm.models.registry import load_model
from laborlm.workflows.benchmark_careers import CareersBenchmarkConfig, run_careers_benchmark


def test_quick_benchmark_every_model_above_the_oracle(tmp_path: Path) -> None:
    cfg = build(
        CareersBenchmarkConfig,
        apply_overrides(
            CareersBenchmarkConfig,
            {},
            [
                f"out_dir={tmp_path}",
                "survey_people=400",
                "resume_people=600",
                "seeds=0,1",
                "workers=0",
                "models=markov1,regression-two_stage,career-tiny-two_stage,career-tiny-two_stage+pretrain",
                "fit.max_epochs=3",
                "pretrain_epochs=2",
            ],
        ),
    )
    result = run_careers_benchmark(cfg)
    summary = result.table.summary()
    oracle = summary["Oracle (exact DGP)"]["psid"]["mean"]
    others = {m: v["psid"] for m, v in summary.items() if m != "Oracle (exact DGP)"}
    assert len(others) == 5 and "Unigram (occupation frequencies)" in others  # the floor row is always there
    for model, v in others.items():
        assert v["mean"] > oracle, f"{model} went below the oracle"
    assert others["CAREER-tiny (two-stage)"]["n"] == 2 and others["Markov chain, order 1"]["n"] == 1
    md = result.markdown_path.read_text()
    assert "| Oracle (exact DGP) |" in md and "stay AUC" in md
    data = json.loads(result.json_path.read_text())
    assert data["metrics"]["psid"]["career-tiny-two_stage+pretrain"][0]["person_years"] > 0
    # Each fitted model is saved and reproduces its numbers when loaded back.
    saved = tmp_path / "psid" / "markov1-s0"
    assert (
        json.loads((saved / "metrics.json").read_text())["perplexity"]
        == data["metrics"]["psid"]["markov1"][0]["perplexity"]
    )
    assert load_model(saved / "model").name == "markov1"
    # `laborlm evaluate` on a saved pretrained-then-fine-tuned CAREER reproduces the benchmark's number.
    from laborlm.cli import main

    panel = next((tmp_path / "data").glob("psid-*"))
    neural = tmp_path / "psid" / "career-tiny-two_stage+pretrain-s0"
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(neural / "model"),
                "--panel",
                str(panel),
                "--out",
                str(out),
                "--no-mlflow",
            ]
        )
        == 0
    )
    expected = data["metrics"]["psid"]["career-tiny-two_stage+pretrain"][0]["perplexity"]
    assert abs(json.loads(out.read_text())["perplexity"] - expected) < 1e-6 * expected
    import mlflow

    runs = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
        [
            mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
            .get_experiment_by_name("laborlm")
            .experiment_id
        ]
    )
    assert runs and any(k.endswith("/test/perplexity") for k in runs[0].data.metrics)
