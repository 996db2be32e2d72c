"""The hardware benchmark's FLOPs model on a hand-computed case, the GPU peak table, and the CPU refusals."""

from __future__ import annotations

import pytest

from laborlm.cli import main
from laborlm.errors import ConfigError
from laborlm.workflows.benchmark_hardware import (
    HardwareBenchmarkConfig,
    flops_per_token,
    gpu_peak_flops,
    mfu,
    model_shape,
)


def test_llama_200k_shape_counted_by_hand() -> None:
    # hidden 24, 2 layers, 2 heads of 12 (as many KV heads), MLP 96, vocabulary 4096, untied head.
    per_layer = 4 * 24 * 24 + 3 * 24 * 96 + 2 * 24  # q,k,v,o + gate,up,down + two RMSNorm weights = 9,264
    n = 2 * per_layer + 24  # + the final norm = 18,552
    shape = model_shape("llama-200k", 4096)
    assert (shape.non_embedding, shape.head, shape.layers, shape.hidden) == (n, 4096 * 24, 2, 24)
    assert shape.parameters == n + 2 * 4096 * 24 == 215_160


def test_flops_per_token_and_mfu_on_a_known_case() -> None:
    # Full training of llama-200k on 64-token blocks:
    #   6 x (N + head)        = 6 x (18,552 + 98,304) = 701,136
    #   12 x layers x hidden x seq = 12 x 2 x 24 x 64 =  36,864
    #                                          total  = 738,000 FLOPs per token
    assert flops_per_token(18_552, 98_304, 2, 24, 64) == 738_000
    # 1,000 tokens/s on a 1 GFLOP/s device is 7.38e8 FLOP/s: MFU 73.8%.
    assert mfu(1_000, 738_000, 1e9) == pytest.approx(0.738)
    # LoRA: every matmul weight costs 4 FLOPs per token (forward, input gradient), only the 5,000 adapter
    # weights 2 more: 4 x (116,856 + 5,000) + 2 x 5,000 + 36,864 = 534,288.
    assert flops_per_token(18_552 + 5_000, 98_304, 2, 24, 64, trainable=5_000) == 534_288


def test_gpu_peaks_by_card_name() -> None:
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_peak_flops("NVIDIA H200") == 989e12
    assert gpu_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert gpu_peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_peak_flops("Some Future GPU") is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "qlora", "strategies": ("ddp",)}, "QLoRA needs CUDA"),
        ({"precision": "fp16"}, "fp16 needs CUDA"),
        ({"optim_impl": "deepspeed", "strategies": ("ddp", "zero2")}, "FusedAdam on zero2"),
    ],
)
def test_cuda_only_options_are_refused_on_cpu(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HardwareBenchmarkConfig(device="cpu", **fields)  # type: ignore[arg-type]
    HardwareBenchmarkConfig(device="cuda", **fields)  # type: ignore[arg-type]  # the same is fine on a GPU


def test_cpu_offload_adam_is_not_refused_on_cpu() -> None:
    # DeepSpeedCPUAdam (optim_impl=deepspeed with zero3_offload) is a CPU kernel.
    HardwareBenchmarkConfig(device="cpu", optim_impl="deepspeed", strategies=("zero3_offload",))


def test_qlora_runs_with_ddp_only() -> None:
    with pytest.raises(ConfigError, match="QLoRA .* ddp only"):
        HardwareBenchmarkConfig(device="cuda", mode="qlora", strategies=("zero3",))


def test_cli_refuses_qlora_on_cpu_with_rc_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "hardware", "--device", "cpu", "--qlora", "--no-mlflow"]) == 2
    assert "QLoRA needs CUDA" in capsys.readouterr().err
