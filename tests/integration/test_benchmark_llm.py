"""A shortened `laborlm benchmark llm`: arms train through the training engine and land in one table with the
Markov chain and the oracle, all scored on the same test persons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laborlm.config import load_config
from laborlm.workflows.benchmark_llm import LlmBenchmarkConfig, run_llm_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def test_titles_and_codes_arms_share_the_table_with_the_oracle(tmp_path: Path) -> None:
    cfg = load_config(
        LlmBenchmarkConfig,
        None,
        [
            f"out_dir={tmp_path}",
            "survey_people=300",
            "resume_people=600",
            "arms=fine-tuned,not-fine-tuned,codes",
            "careers_models=markov1",
            "pretrain_steps=8",
            "finetune_steps=8",
            "block_size=128",
            "test_people=15",
            "tracking.enabled=false",
            (
                "train_overrides=pretrain.eval_every_steps=4,finetune.eval_every_steps=4,pretrain.eval_blocks=16,"
                "finetune.eval_blocks=16,pretrain.warmup_steps=2,finetune.warmup_steps=2"
            ),
        ],
    )
    result = run_llm_benchmark(cfg)
    summary = result.table.summary()
    oracle = summary["Oracle (exact DGP)"]["psid"]["mean"]
    llm = {k: v["psid"]["mean"] for k, v in summary.items() if k.startswith("LLM ")}
    assert len(llm) == 3 and any("numeric codes" in k for k in llm)
    assert all(v > oracle for v in llm.values())
    assert len(list((tmp_path / "arms").iterdir())) == 2  # fine-tuned and not-fine-tuned share one training
    metrics = json.loads(result.json_path.read_text())["metrics"]["psid"]
    assert len({m[0]["person_years"] for m in metrics.values()}) == 1  # every row on the same person-years
