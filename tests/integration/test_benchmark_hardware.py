"""``laborlm benchmark hardware`` on CPU: two tiny sizes x DDP and ZeRO-2 on 2 Ray Train workers (gloo, torch
AdamW), and the scorer's fast-vs-naive speed on a tiny random model. Figures are checked for being computed
(finite, positive), never against timing targets (those belong in benchmarks/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from laborlm.tracking.mlflow_tracker import TrackingConfig
from laborlm.workflows.benchmark_hardware import (
    HardwareBenchmarkConfig,
    run_hardware_benchmark,
    score_throughput,
)

pytestmark = pytest.mark.usefixtures("ray_session")


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_cpu_table_has_throughput_memory_and_mfu_for_every_cell(tmp_path: Path) -> None:
    cfg = HardwareBenchmarkConfig(
        device="cpu",
        sizes=("llama-200k", "llama-400k"),
        strategies=("ddp", "zero2"),
        seconds=1.0,
        warmup_steps=1,
        scoring=False,
        out_dir=tmp_path / "hw",
        tracking=TrackingConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="hw"),
    )
    result = run_hardware_benchmark(cfg)

    report = json.loads(result.json_path.read_text())
    assert report["formula"].startswith("MFU = ") and _positive(report["peak_flops_per_s"])
    cells = {(c["size"], c["strategy"]): c for c in report["cells"]}
    assert set(cells) == {(s, t) for s in ("llama-200k", "llama-400k") for t in ("ddp", "zero2")}
    for cell in cells.values():
        m = cell["metrics"]
        assert cell["status"] == "ok", cell
        for key in (
            "tokens_per_s_per_device",
            "tokens_per_s",
            "step_time_s",
            "peak_memory_bytes",
            "mfu",
            "flops_per_token",
        ):
            assert _positive(m[key]), (cell["size"], cell["strategy"], key, m[key])
        assert m["world_size"] == 2 and m["timed_steps"] >= 2 and m["mfu"] < 1.0
        assert m["tokens_per_s"] == pytest.approx(2 * m["tokens_per_s_per_device"])
        assert m["peak_memory_bytes"] > 50 * 2**20  # a worker's RSS holds torch at least
    # Markdown table, plot and MLflow run with per-cell metrics and the artifacts.
    assert "| llama-400k |" in result.markdown_path.read_text() and result.plot_path is not None
    assert result.plot_path.stat().st_size > 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(str(result.run_id))
    assert _positive(run.data.metrics["llama-200k/zero2/throughput/mfu"])
    assert {a.path for a in client.list_artifacts(str(result.run_id))} >= {
        "hardware.md",
        "hardware.json",
        "hardware.png",
    }


def test_scorer_fast_and_naive_agree_and_both_have_a_speed() -> None:
    s = score_throughput("llama-200k", "cpu", people=3, naive_person_years=2, seed=0, tokenizer_people=60)
    assert s["fast_person_years"] == 15 and s["naive_person_years"] == 5  # whole people: 1 of 5 years
    assert _positive(s["fast_person_years_per_s"]) and _positive(s["naive_person_years_per_s"])
    assert s["max_abs_diff"] < 1e-4
