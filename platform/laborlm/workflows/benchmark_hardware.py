"""``laborlm benchmark hardware``: training tokens/s, step time, peak memory and MFU per model size and
strategy, and the scorer's person-years/s (fast vs naive), on CPU or GPU, in one command.

    laborlm benchmark hardware --device cpu --quick              # a first look: < 2 minutes on 2 cores
    laborlm benchmark hardware --device cuda                     # the GPU table (~8 minutes on one H100)
    laborlm benchmark hardware --device cuda --sizes llama-1b --strategies zero3,zero3_offload --lora

**Cells.** Each (size, strategy) cell trains a randomly initialised model of the Llama-style family
(``training.models``) through the training engines themselves (``training.loop.make_engine``: DDP, ZeRO-2,
ZeRO-3, ZeRO-3 with CPU offload; full, LoRA or QLoRA) on ``num_workers`` Ray Train workers, on synthetic
packed blocks: uniformly random token ids, every position a real token (no padding), labels = inputs. The sizes of a strategy run in ascending order in one Ray Train run
(``strategy_loop_per_worker``), each with its own model and engine; a failed cell ends that run and the
sizes after it continue in a new one. The first
``warmup_steps`` optimiser steps (allocator, DeepSpeed's buckets, kernel selection) are not timed; then steps
run until ``seconds`` have passed on the slowest rank (every rank stops at the same step). Measured per cell:

* tokens/s per device: tokens of the timed steps on all ranks / timed wall seconds / ranks;
* step time: mean wall time of a timed optimiser step (CUDA synchronised before the clock is read);
* peak memory per device: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak resident set size (RSS)
  of the worker process, sampled every 10 ms (libraries included: ~0.5 GB of it is torch + DeepSpeed);
  the largest over ranks;
* MFU (model FLOPs utilisation): FLOPs per token (:func:`flops_per_token`) x tokens/s per device / the
  device's peak (:func:`peak_flops`).

A cell that does not fit is reported as ``out of memory`` (CUDA OOM, Ray's memory monitor, ``MemoryError``; on
CPU also a cell whose estimated footprint exceeds the host's available memory, which is not run at all, so
the host's OOM killer never meets other users' processes), never as a crash of the command.

**Scorer.** ``llm.scoring.LlmScorer``'s fast path (``score``: prefix cache + label trie) against the naive
one (``score_naive``: a forward pass per label), the logic of ``benchmarks/llm_scoring.py``: random careers,
a byte-level BPE trained on them (multi-token titles, LABOR-LLM's setting) and a random model of
``scoring_size``, in one Ray task on the device.

Outputs under ``out_dir``: ``hardware.md``, ``hardware.json`` and ``hardware.png`` (tokens/s and MFU by size
and strategy), also logged to MLflow. Ray must be initialised by the caller (the CLI does it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from laborlm.errors import ConfigError, LaborLMError
from laborlm.tracking import metric_names as mn
from laborlm.tracking.mlflow_tracker import TrackingConfig

logger = logging.getLogger(__name__)

CELL_FILE = "cell.json"  # rank 0's figures, in the checkpoint a cell's run reports
# strategy name -> (StrategyConfig.kind, offload)
STRATEGIES: dict[str, tuple[str, bool]] = {
    "ddp": ("ddp", False),
    "zero2": ("zero2", False),
    "zero3": ("zero3", False),
    "zero3_offload": ("zero3", True),
}


@dataclass(frozen=True)
class CellLimits:
    """The cells a device runs by default: sized so the whole table takes the stated time."""

    sizes: tuple[str, ...]
    strategies: tuple[str, ...]
    seconds: float  # timed seconds per cell (after warm-up)
    warmup_steps: int
    block_size: int
    micro_batch_size: int
    scoring_people: int  # careers scored by the fast scorer
    scoring_naive_person_years: int  # person-years scored by the naive scorer


# (device, quick) -> defaults. CPU: ~15 s per cell on 2 shared cores (Ray Train worker start-up dominates),
# so the quick table (4 cells + scorer) fits in 2 minutes. CUDA: ~25 s per cell on one H100; 16 cells ~7 min.
LIMITS: dict[tuple[str, bool], CellLimits] = {
    ("cpu", True): CellLimits(("llama-400k", "llama-1m"), ("ddp", "zero2"), 3.0, 2, 64, 8, 6, 2),
    ("cpu", False): CellLimits(
        ("llama-400k", "llama-1m", "llama-10m"), ("ddp", "zero2", "zero3"), 4.0, 2, 64, 8, 12, 4
    ),
    ("cuda", True): CellLimits(("llama-150m", "llama-1b"), ("ddp", "zero3"), 5.0, 3, 1024, 8, 200, 20),
    ("cuda", False): CellLimits(
        ("llama-50m", "llama-150m", "llama-400m", "llama-1b"),
        ("ddp", "zero2", "zero3", "zero3_offload"),
        6.0,
        3,
        1024,
        8,
        400,
        40,
    ),
}

# Dense bf16 tensor-core peaks (no sparsity), FLOP/s, from the vendors' data sheets; matched in order against
# torch.cuda.get_device_name(). Unknown cards: set peak_tflops.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM (HBM3)
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


@dataclass(frozen=True)
class HardwareBenchmarkConfig:
    """``laborlm benchmark hardware``; null sizes / strategies / seconds take the device's ``LIMITS``."""

    device: Literal["cpu", "cuda"] = "cpu"
    quick: bool = False  # the small first-look set of the device
    sizes: tuple[str, ...] | None = None  # training.models.SIZES
    strategies: tuple[str, ...] | None = None  # ddp, zero2, zero3, zero3_offload
    mode: Literal["full", "lora", "qlora"] = (
        "full"  # train every weight, a LoRA adapter, or QLoRA (CUDA, ddp)
    )
    seconds: float | None = None  # timed seconds per cell after warm-up
    warmup_steps: int | None = None  # untimed optimiser steps first
    max_steps: int = 10_000  # cap on timed steps of a cell
    block_size: int | None = None  # tokens per packed block (the sequence length of the MFU formula)
    micro_batch_size: int | None = None  # blocks per device per step
    vocab_size: int = 4096  # the corpus tokenizer's default vocabulary
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on GPUs that have it, else fp32
    optim_impl: Literal["torch", "deepspeed"] = (
        "torch"  # deepspeed: FusedAdam (GPU) / DeepSpeedCPUAdam (offload)
    )
    #   on the ZeRO cells; DDP cells always use torch AdamW
    gradient_checkpointing: bool = False
    num_workers: int | None = None  # null: 2 on CPU, every GPU of the Ray cluster on CUDA
    cpus_per_worker: float | None = None  # null: 1 on CPU (one torch thread each), up to 8 per GPU worker
    peak_tflops: float | None = None  # the device's peak FLOP/s (x1e12) for MFU; null: the table (GPU) or a
    #   matmul measured once on this host with the workers' thread count (CPU)
    scoring: bool = True  # also measure the scorer (fast vs naive)
    scoring_size: str = "llama-1m"  # the random model the scorer runs
    seed: int = 0
    out_dir: Path = Path("runs/benchmark_hardware")
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        from laborlm.training.models import SIZES

        problems = []
        for size in (*(self.sizes or ()), self.scoring_size):
            if size not in SIZES:
                problems.append(f"sizes: unknown {size!r}; known: {', '.join(SIZES)}")
        for strategy in self.strategies or ():
            if strategy not in STRATEGIES:
                problems.append(f"strategies: unknown {strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.sizes is not None and not self.sizes:
            problems.append("sizes: at least one size")
        if self.strategies is not None and not self.strategies:
            problems.append("strategies: at least one strategy")
        for name in ("seconds", "peak_tflops", "cpus_per_worker"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                problems.append(f"{name}: must be > 0, got {value}")
        for name in ("warmup_steps",):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name}: must be >= 0, got {value}")
        for name in ("max_steps", "vocab_size", "block_size", "micro_batch_size", "num_workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name}: must be >= 1, got {value}")
        strategies = self.resolved().strategies
        if self.mode == "qlora" and any(s != "ddp" for s in strategies):
            problems.append("mode: QLoRA (4-bit base weights, bitsandbytes) runs with strategy ddp only")
        if self.device == "cpu":
            # GPU-only options, refused here rather than failing inside a worker (or silently doing nothing).
            if self.mode == "qlora":
                problems.append(
                    "mode: QLoRA needs CUDA (bitsandbytes 4-bit kernels); use --device cuda or --lora"
                )
            if self.precision == "fp16":
                problems.append(
                    "precision: fp16 needs CUDA (DeepSpeed's loss scaling); use bf16 or fp32 on CPU"
                )
            fused = [s for s in strategies if s in ("zero2", "zero3")]
            if self.optim_impl == "deepspeed" and fused:
                problems.append(
                    f"optim_impl: 'deepspeed' means FusedAdam on {', '.join(fused)}, a CUDA kernel; "
                    "on CPU use optim_impl=torch (or only zero3_offload, which uses DeepSpeedCPUAdam)"
                )
        if problems:
            raise ConfigError(problems)

    def resolved(self) -> CellLimits:
        """The device's limits with this config's explicit choices applied."""
        base = LIMITS[(self.device, self.quick)]
        return replace(
            base,
            sizes=self.sizes if self.sizes is not None else base.sizes,
            strategies=self.strategies if self.strategies is not None else base.strategies,
            seconds=self.seconds if self.seconds is not None else base.seconds,
            warmup_steps=self.warmup_steps if self.warmup_steps is not None else base.warmup_steps,
            block_size=self.block_size if self.block_size is not None else base.block_size,
            micro_batch_size=self.micro_batch_size
            if self.micro_batch_size is not None
            else base.micro_batch_size,
        )


# --- the FLOPs model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """Parameter counts of a family size at a vocabulary (counted on the meta device: no memory, no time)."""

    parameters: int  # everything
    non_embedding: int  # Kaplan's N: all but the input embedding and the output head (sweeps.scaling's count)
    head: int  # the output projection (vocab x hidden; untied in this family)
    layers: int
    hidden: int


def model_shape(size: str, vocab_size: int) -> ModelShape:
    import torch
    from transformers import LlamaForCausalLM

    from laborlm.training.models import SIZES, llama_config

    model: Any
    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(size, vocab_size=vocab_size, max_positions=2048))
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings().weight.numel()
    shape = SIZES[size]
    return ModelShape(total, total - embed - head, head, shape["num_hidden_layers"], shape["hidden_size"])


def flops_per_token(
    non_embedding: int, head: int, layers: int, hidden: int, seq: int, trainable: int | None = None
) -> float:
    """Training FLOPs per token (forward + backward) of a decoder at sequence length ``seq``.

    Matrix multiplies: each weight costs 2 FLOPs per token forward, 2 for the gradient of its input and 2 for
    its own gradient, which frozen weights (LoRA's base, the head under LoRA) skip::

        matmul = 4 x (N + head) + 2 x trainable        (= 6 x (N + head) when every weight trains)

    where N is the non-embedding parameters (Kaplan et al.; the input embedding is a lookup, no FLOPs) and
    ``head`` the output projection (vocab x hidden, a real matmul; llm-foundry counts it too). Attention scores
    and the weighted sum, 2 x 2 x hidden x seq forward per token and layer, twice that backward::

        attention = 12 x layers x hidden x seq         (PaLM, appendix B; full, not causal, attention)

    Args:
        trainable: matmul parameters that get gradients (LoRA: the adapters); None: N + head (full training).
    """
    trained = non_embedding + head if trainable is None else trainable
    return 4.0 * (non_embedding + head) + 2.0 * trained + 12.0 * layers * hidden * seq


def mfu(tokens_per_s_per_device: float, flops_per_tok: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s of one device over its peak FLOP/s."""
    return tokens_per_s_per_device * flops_per_tok / peak_flops_per_s


def gpu_peak_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU by name (``PEAK_BF16_TFLOPS``), None when the card is not listed."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def measure_cpu_peak_flops(threads: int, dtype: str = "fp32", seconds: float = 1.0, n: int = 512) -> float:
    """Best FLOP/s of an ``n x n`` matmul with ``threads`` torch threads over ~``seconds`` (this process).

    The CPU has no data-sheet figure here: the best of repeated matmuls is the attainable peak of these
    cores at this moment (a shared, loaded machine measures lower, and then MFU reads higher).
    """
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        kind = torch.bfloat16 if dtype == "bf16" else torch.float32
        a, b = torch.randn(n, n, dtype=kind), torch.randn(n, n, dtype=kind)
        for _ in range(3):
            a @ b  # warm-up
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            for _ in range(4):
                a @ b
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start))
        return best
    finally:
        torch.set_num_threads(saved)


# --- one cell: the per-worker loop ----------------------------------------------------------------------


@dataclass(frozen=True)
class StrategyJob:
    """What every worker of a strategy's run needs; small and picklable (``train_loop_config={"job": ...}``).

    The sizes of one strategy run one after the other in the same worker group (ascending), which spares the
    Ray Train start-up per cell (~10 s of worker processes importing torch); each cell builds its own model
    and engine and frees them before the next.
    """

    cells: tuple[
        tuple[str, Any], ...
    ]  # (size, training.TrainConfig): model, strategy, precision, optimizer, LoRA
    strategy: str
    mode: str
    vocab_size: int
    warmup_steps: int
    seconds: float
    max_steps: int


class _RssSampler:
    """Peak resident set size of this process, sampled every ``interval_s`` on a daemon thread (Linux /proc)."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the high-water mark (KiB on Linux, bytes on macOS)
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def _build_model(job: StrategyJob, size: str, cfg: Any, device: Any) -> Any:
    """The cell's random model (same weights on every rank: ZeRO-3 partitions each rank's copy), LoRA applied."""
    import torch
    from transformers import LlamaForCausalLM

    from laborlm.training.models import apply_lora, llama_config
    from laborlm.training.session import seed_for

    config = llama_config(size, vocab_size=job.vocab_size, max_positions=cfg.block_size)
    model: Any
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(cfg.seed, 0))
        model = LlamaForCausalLM(config)
    if job.mode == "qlora":
        model = _quantize_4bit(model, device)
    if cfg.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    if job.mode in ("lora", "qlora"):
        model = apply_lora(model, cfg.lora)
    return model


def _quantize_4bit(model: Any, device: Any) -> Any:
    """QLoRA's base: the random model saved in bf16 and reloaded with 4-bit NF4 weights (bitsandbytes)."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig, LlamaForCausalLM

    bnb: Any = BitsAndBytesConfig  # untyped in transformers' stubs
    prepare: Any = prepare_model_for_kbit_training
    with tempfile.TemporaryDirectory(prefix="laborlm-qlora-") as tmp:
        model.to(torch.bfloat16).save_pretrained(tmp)
        quantized = LlamaForCausalLM.from_pretrained(
            tmp,
            local_files_only=True,
            device_map={"": device},
            quantization_config=bnb(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            ),
        )
    return prepare(quantized, use_gradient_checkpointing=False)


def strategy_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """What Ray Train runs on every worker: each cell in turn, its figures reported (rank 0's) as it ends.

    Every report carries all the cells finished so far in a checkpoint: when a cell fails (out of memory) and
    the run with it, the driver reads the finished cells back from the last checkpoint.
    """
    import ray.train
    import torch

    job: StrategyJob = loop_config["job"]
    rank = ray.train.get_context().get_world_rank()
    if not job.cells[0][1].strategy.use_gpu:
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # silence DeepSpeed's accelerator probe on CPU
        torch.set_num_threads(max(1, int(job.cells[0][1].strategy.cpus_per_worker)))
    done: list[dict[str, Any]] = []
    for size, train in job.cells:
        done.append({"size": size, **_measure_cell(job, size, train)})
        # Ray Train V2 keeps only the metrics that come with a checkpoint: rank 0 hands its figures in one.
        with tempfile.TemporaryDirectory(prefix="laborlm-hw-") as tmp:
            checkpoint = None
            if rank == 0:
                (Path(tmp) / CELL_FILE).write_text(json.dumps(done))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({"cells_done": len(done)}, checkpoint=checkpoint)


def _measure_cell(job: StrategyJob, size: str, cfg: Any) -> dict[str, Any]:
    """Build the cell's model and engine, warm up, time steps for ``job.seconds``; free everything again."""
    import gc

    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from laborlm.training.loop import Engine, make_engine, resolve_precision
    from laborlm.training.session import all_reduce, seed_for

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if cfg.strategy.use_gpu else torch.device("cpu")
    cuda = device.type == "cuda"
    precision = resolve_precision(cfg.strategy.precision, device)
    sampler = None if cuda else _RssSampler()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    model = _build_model(job, size, cfg, device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    parameters = sum(p.numel() for p in model.parameters())
    torch.manual_seed(seed_for(cfg.seed, 1, rank))
    # The engine of the training loop, with the pretrain phase's optimizer and schedule.
    engine = make_engine(model, cfg, cfg.pretrain, device, precision, world)
    engine.train_mode(True)

    generator = torch.Generator(device=device).manual_seed(seed_for(cfg.seed, 2, rank))
    shape = (cfg.micro_batch_size, cfg.block_size)
    mask = torch.ones(shape, dtype=torch.long, device=device)

    def step(engine: Engine) -> None:
        for micro in range(cfg.grad_accum_steps):
            ids = torch.randint(0, job.vocab_size, shape, device=device, generator=generator)
            engine.micro_step(
                {"input_ids": ids, "attention_mask": mask, "labels": ids},
                last=micro == cfg.grad_accum_steps - 1,
            )
        engine.optimizer_step()
        if cuda:
            torch.cuda.synchronize(device)

    distributed = dist.is_available() and dist.is_initialized() and world > 1

    def largest(value: float) -> float:
        """The largest value over ranks (a collective), so that every rank takes the same decision."""
        if not distributed:
            return value
        return float(all_reduce(torch.tensor([value], dtype=torch.float64), device, op="max").item())

    for _ in range(job.warmup_steps):
        step(engine)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < job.max_steps:
        t0 = time.perf_counter()
        step(engine)
        times.append(time.perf_counter() - t0)
        if largest(time.perf_counter() - started) >= job.seconds and len(times) >= 2:
            break
    elapsed = largest(time.perf_counter() - started)
    peak = int(
        largest(float(torch.cuda.max_memory_allocated(device) if cuda else sampler.stop() if sampler else 0))
    )
    tokens = len(times) * cfg.grad_accum_steps * cfg.micro_batch_size * cfg.block_size * world
    engine.close()  # DeepSpeed's hooks and buffers, before the next cell's engine
    del engine, model  # the last references: the next cell starts from free memory
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {
        "tokens_per_s": tokens / elapsed,
        "tokens_per_s_per_device": tokens / elapsed / world,
        "step_time_s": statistics.fmean(times),
        "step_time_median_s": statistics.median(times),
        "timed_steps": len(times),
        "timed_seconds": elapsed,
        "peak_memory_bytes": peak,
        "parameters": parameters,
        "trainable_parameters": trainable,
        "world_size": world,
        "precision": precision,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
    }


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class CellResult:
    size: str
    strategy: str
    mode: str
    status: str  # ok | out of memory | error
    metrics: dict[str, Any] = field(default_factory=dict)  # the worker's report, plus flops_per_token and mfu
    reason: str | None = None  # why not ok


@dataclass
class HardwareBenchmarkResult:
    device: str  # the card's name, or "cpu (N threads per worker)"
    cells: list[CellResult]
    scoring: dict[str, Any] | None
    markdown_path: Path
    json_path: Path
    plot_path: Path | None
    run_id: str | None

    @property
    def failed(self) -> list[CellResult]:
        """Cells that failed for another reason than memory (the CLI exits 1 when there are any)."""
        return [c for c in self.cells if c.status == "error"]


def run_hardware_benchmark(cfg: HardwareBenchmarkConfig) -> HardwareBenchmarkResult:
    """Run every cell and the scorer, write ``hardware.{md,json,png}`` and log them to MLflow.

    Raises:
        LaborLMError: Ray not initialised, or no GPU in the Ray cluster for ``device: cuda``.
        ConfigError: a cell's training config is invalid (checked for every cell before any runs).
    """
    import ray

    from laborlm import jsonsafe
    from laborlm.config import config_hash, flatten, to_dict
    from laborlm.tracking.mlflow_tracker import MlflowTracker
    from laborlm.tracking.tracker import NullTracker, Tracker

    if not ray.is_initialized():
        raise LaborLMError(
            "the hardware benchmark needs Ray initialised by the caller (ray.init or --address)"
        )
    if cfg.mode == "qlora":
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("mode: QLoRA needs bitsandbytes on the GPU hosts (pip install bitsandbytes)")
    limits = cfg.resolved()
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    workers, cpus_per_worker = _workers(cfg, resources)
    plans = {
        strategy: [
            (size, _train_config(cfg, limits, size, strategy, workers, cpus_per_worker))
            for size in limits.sizes
        ]
        for strategy in limits.strategies
    }  # a bad combination is a ConfigError here, before any run
    out = Path(cfg.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_name = f"benchmark-hardware-{cfg.device}-{config_hash(cfg, 6)}"
    tracker: Tracker = (
        MlflowTracker(cfg.tracking, run_name=run_name, run_dir=out, tags={"laborlm.kind": "benchmark"})
        if cfg.tracking.enabled
        else NullTracker()
    )
    tracker.log_params(
        {
            **flatten(cfg),
            "resolved.sizes": ",".join(limits.sizes),
            "resolved.strategies": ",".join(limits.strategies),
            "resolved.seconds": limits.seconds,
            "resolved.num_workers": workers,
            "resolved.block_size": limits.block_size,
            "resolved.micro_batch_size": limits.micro_batch_size,
        }
    )
    try:
        peak, peak_source = _peak(cfg, cpus_per_worker)
        cells = []
        started = time.monotonic()
        for strategy in limits.strategies:
            for cell in _run_strategy(cfg, limits, strategy, plans[strategy], out, run_name):
                _add_mfu(cell, cfg, limits, peak)
                cells.append(cell)
                logger.info("%s %s %s: %s", cell.size, strategy, cfg.mode, _cell_line(cell))
                if cell.status == "ok":
                    tracker.log_metrics(
                        {f"{cell.size}/{strategy}/{k}": float(v) for k, v in _cell_metrics(cell).items()}
                    )
        order = {
            (s, t): i for i, (s, t) in enumerate((s, t) for s in limits.sizes for t in limits.strategies)
        }
        cells.sort(key=lambda c: order[(c.size, c.strategy)])  # the table: by size, then strategy
        card = next((str(c.metrics["device_name"]) for c in cells if c.metrics.get("device_name")), None)
        if peak is None and card is not None:
            peak = gpu_peak_flops(card)
            peak_source = (
                f"{card}: {peak / 1e12:g} TFLOP/s dense bf16 (data sheet, PEAK_BF16_TFLOPS)"
                if peak
                else f"{card}: not in the peak table (PEAK_BF16_TFLOPS); set peak_tflops for MFU"
            )
        scoring = _run_scoring(cfg, limits) if cfg.scoring else None
        if scoring is not None:
            tracker.log_metrics(
                {
                    mn.SCORING_FAST_PERSON_YEARS_PER_S: scoring["fast_person_years_per_s"],
                    mn.SCORING_NAIVE_PERSON_YEARS_PER_S: scoring["naive_person_years_per_s"],
                }
            )
        device_name = (
            card
            if cfg.device == "cuda" and card
            else f"CPU ({max(1, int(cpus_per_worker))} thread(s) per worker)"
        )
        md = _markdown(
            cfg, limits, workers, device_name, peak, peak_source, cells, scoring, time.monotonic() - started
        )
        md_path, json_path = out / "hardware.md", out / "hardware.json"
        md_path.write_text(md)
        json_path.write_text(
            jsonsafe.dumps(
                {
                    "config": to_dict(cfg),
                    "device": device_name,
                    "num_workers": workers,
                    "peak_flops_per_s": peak,
                    "peak_source": peak_source,
                    "formula": FORMULA,
                    "block_size": limits.block_size,
                    "micro_batch_size": limits.micro_batch_size,
                    "seconds_per_cell": limits.seconds,
                    "warmup_steps": limits.warmup_steps,
                    "cells": [vars(c) for c in cells],
                    "scoring": scoring,
                },
                indent=2,
                default=str,
            )
        )
        plot_path = _plot(cells, limits, out / "hardware.png", device_name)
        for path in (md_path, json_path, plot_path):
            if path is not None:
                tracker.log_artifact(path)
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish()
    return HardwareBenchmarkResult(
        device_name, cells, scoring, md_path, json_path, plot_path, getattr(tracker, "run_id", None)
    )


FORMULA = (
    "MFU = tokens/s per device x FLOPs per token / peak FLOP/s of the device; FLOPs per token = "
    "4 x (N + head) + 2 x trainable + 12 x layers x hidden x seq, i.e. 6 x (N + head) + 12 x layers x hidden "
    "x seq when every weight trains (N: non-embedding parameters; head: the vocab x hidden output "
    "projection; trainable: matmul parameters with gradients, the adapters under LoRA; seq: block size)"
)


def _workers(cfg: HardwareBenchmarkConfig, resources: dict[str, float]) -> tuple[int, float]:
    cpus = float(resources.get("CPU", 1.0))
    if cfg.device == "cuda":
        gpus = int(resources.get("GPU", 0))
        if gpus < 1:
            raise LaborLMError(
                "device cuda: the Ray cluster has no GPU (use --device cpu, or --address a GPU cluster)"
            )
        workers = cfg.num_workers or gpus
        per = cfg.cpus_per_worker or max(1.0, min(8.0, math.floor(cpus / workers)))
        return workers, per
    workers = cfg.num_workers or 2
    return workers, cfg.cpus_per_worker or 1.0


def _train_config(
    cfg: HardwareBenchmarkConfig,
    limits: CellLimits,
    size: str,
    strategy: str,
    workers: int,
    cpus_per_worker: float,
) -> Any:
    """The training config of one cell (its own validation runs here: a bad combination is a ConfigError)."""
    from laborlm.training.config import (
        FinetuneConfig,
        ModelConfig,
        OptimConfig,
        PhaseConfig,
        StrategyConfig,
        TrainConfig,
    )

    kind, offload = STRATEGIES[strategy]
    deepspeed_optim = cfg.optim_impl == "deepspeed" and kind != "ddp"
    return TrainConfig(
        out_dir=Path(cfg.out_dir),
        seed=cfg.seed,
        block_size=limits.block_size,
        micro_batch_size=limits.micro_batch_size,
        model=ModelConfig(size=size, gradient_checkpointing=cfg.gradient_checkpointing),
        optim=OptimConfig(impl="deepspeed" if deepspeed_optim else "torch"),
        strategy=StrategyConfig(
            kind=kind,  # type: ignore[arg-type]
            offload=offload,
            precision=cfg.precision,
            num_workers=workers,
            use_gpu=cfg.device == "cuda",
            cpus_per_worker=cpus_per_worker,
        ),
        # A flat, small learning rate: throughput does not depend on it, and random tokens must not diverge.
        pretrain=PhaseConfig(
            lr=1e-4,
            schedule="constant",
            warmup_steps=0,
            lora=cfg.mode != "full",
            max_steps=cfg.max_steps + limits.warmup_steps,
        ),
        finetune=FinetuneConfig(enabled=False),
        tracking=TrackingConfig(enabled=False),
    )


def _peak(cfg: HardwareBenchmarkConfig, cpus_per_worker: float) -> tuple[float | None, str]:
    """The device's peak FLOP/s and where the figure comes from (for the table's notes)."""
    if cfg.peak_tflops is not None:
        return cfg.peak_tflops * 1e12, f"{cfg.peak_tflops:g} TFLOP/s (peak_tflops, given)"
    if cfg.device == "cuda":
        return None, "dense bf16 peak of the card (PEAK_BF16_TFLOPS)"
    threads = max(1, int(cpus_per_worker))
    dtype = "bf16" if cfg.precision == "bf16" else "fp32"
    peak = measure_cpu_peak_flops(threads, dtype)
    return peak, (
        f"{peak / 1e9:.1f} GFLOP/s: the best {dtype} 512x512 matmul measured once on this host with "
        f"{threads} torch thread(s), a worker's share (no data-sheet peak for CPUs)"
    )


def _run_strategy(
    cfg: HardwareBenchmarkConfig,
    limits: CellLimits,
    strategy: str,
    plan: list[tuple[str, Any]],
    out: Path,
    run_name: str,
) -> list[CellResult]:
    """Every size of one strategy: one Ray Train run for all of them, another after a cell that failed.

    A failed cell (out of memory, or an error) ends its run; the cells finished before it come back from the
    run's last checkpoint, and the sizes after it run again in a new run, except that once a size does not fit
    the larger ones of the same strategy are reported out of memory without being run.
    """
    import ray.train
    import ray.train.torch

    results: list[CellResult] = []
    pending: list[tuple[str, Any]] = []
    for size, train in plan:
        reason = _cpu_memory_check(cfg, limits, size, strategy, train) if cfg.device == "cpu" else None
        if reason is not None:
            results.append(CellResult(size, strategy, cfg.mode, "out of memory", reason=reason))
        else:
            pending.append((size, train))
    attempt = 0
    while pending:
        job = StrategyJob(
            cells=tuple(pending),
            strategy=strategy,
            mode=cfg.mode,
            vocab_size=cfg.vocab_size,
            warmup_steps=limits.warmup_steps,
            seconds=limits.seconds,
            max_steps=cfg.max_steps,
        )
        s = pending[0][1].strategy
        resources: dict[str, float] = {"CPU": s.cpus_per_worker}
        if s.use_gpu:
            resources["GPU"] = 1
        name = f"{run_name}-{strategy}-{cfg.mode}-{attempt}"
        shutil.rmtree(out / "ray" / name, ignore_errors=True)  # a previous invocation's checkpoints
        trainer = ray.train.torch.TorchTrainer(
            strategy_loop_per_worker,
            train_loop_config={"job": job},
            scaling_config=ray.train.ScalingConfig(
                num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=resources
            ),
            run_config=ray.train.RunConfig(
                name=name,
                storage_path=str(out / "ray"),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
                failure_config=ray.train.FailureConfig(max_failures=0),
            ),
        )
        logger.info(
            "%s (%s): %s on %d worker(s), each %.0f s timed after %d warm-up steps",
            strategy,
            cfg.mode,
            ", ".join(size for size, _ in pending),
            s.num_workers,
            limits.seconds,
            limits.warmup_steps,
        )
        failure: BaseException | None = None
        try:
            trainer.fit()
        except ray.train.TrainingFailedError as exc:
            failure = exc
        done = _finished_cells(out / "ray" / name)
        results += [CellResult(m.pop("size"), strategy, cfg.mode, "ok", metrics=m) for m in done]
        pending = pending[len(done) :]
        if failure is None or not pending:
            if pending:  # a run that ended without reporting every cell
                results += [
                    CellResult(size, strategy, cfg.mode, "error", reason="no figures reported")
                    for size, _ in pending
                ]
            break
        size, _ = pending.pop(0)
        if _is_oom(failure):
            results.append(CellResult(size, strategy, cfg.mode, "out of memory", reason=_first_line(failure)))
            results += [
                CellResult(
                    larger,
                    strategy,
                    cfg.mode,
                    "out of memory",
                    reason=f"not run: {size} did not fit with {strategy}",
                )
                for larger, _ in pending
            ]
            break
        logger.warning("%s %s failed: %s", size, strategy, failure)
        results.append(CellResult(size, strategy, cfg.mode, "error", reason=_first_line(failure)))
        attempt += 1
    return results


def _finished_cells(folder: Path) -> list[dict[str, Any]]:
    """The cells a strategy's run finished: the longest list among its checkpoints' ``cell.json``."""
    found = [json.loads(p.read_text()) for p in folder.glob(f"checkpoint_*/{CELL_FILE}")]
    return max(found, key=len) if found else []


_OOM_MARKERS = ("out of memory", "outofmemoryerror", "memoryerror", "cannot allocate memory")


def _is_oom(exc: BaseException) -> bool:
    failures = getattr(exc, "worker_failures", None) or {}
    texts = [f"{type(e).__name__}: {e}" for e in failures.values()] + [str(exc)]
    return any(m in t.lower() for t in texts for m in _OOM_MARKERS)


def _first_line(exc: BaseException) -> str:
    failures = getattr(exc, "worker_failures", None) or {}
    for error in failures.values():
        lines = [ln for ln in str(error).splitlines() if ln.strip()]
        return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:300]
    return str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__


def _cpu_memory_check(
    cfg: HardwareBenchmarkConfig, limits: CellLimits, size: str, strategy: str, train: Any
) -> str | None:
    """A reason to skip a CPU cell whose estimated footprint (all workers share this host) exceeds the memory
    available now; None when it fits. Deliberately rough: weights, gradients and Adam's two moments in fp32
    (16 bytes a parameter, ZeRO's partitioned share divided by the workers), the logits (3 float copies of
    micro x block x vocab) and ~1 GB of libraries per worker."""
    import psutil

    shape = model_shape(size, cfg.vocab_size)
    w = train.strategy.num_workers
    per_param = {
        "ddp": 16.0,
        "zero2": 4.0 + 4.0 + 8.0 / w,
        "zero3": 16.0 / w + 4.0,
        "zero3_offload": 16.0 / w + 4.0,
    }
    trainable_share = 1.0 if cfg.mode == "full" else 0.02
    states = shape.parameters * (4.0 + (per_param[strategy] - 4.0) * trainable_share)
    logits = 3 * 4 * limits.micro_batch_size * limits.block_size * cfg.vocab_size
    need = w * (states + logits + 1e9)
    available = float(psutil.virtual_memory().available)
    if need > 0.8 * available:
        return f"estimated {need / 2**30:.1f} GiB over {w} workers > 80% of the {available / 2**30:.1f} GiB available"
    return None


def _add_mfu(cell: CellResult, cfg: HardwareBenchmarkConfig, limits: CellLimits, peak: float | None) -> None:
    if cell.status != "ok":
        return
    shape = model_shape(cell.size, cfg.vocab_size)
    # Under LoRA the adapters (all of the trainable weights) are matmuls on top of the frozen ones.
    trainable = None if cfg.mode == "full" else int(cell.metrics.get("trainable_parameters", 0))
    per_token = flops_per_token(
        shape.non_embedding + (trainable or 0),
        shape.head,
        shape.layers,
        shape.hidden,
        limits.block_size,
        trainable=trainable,
    )
    device_peak = peak if peak is not None else gpu_peak_flops(str(cell.metrics.get("device_name", "")))
    # The peak is per device: one GPU, or on CPU one worker's share of the cores (its torch threads).
    cell.metrics.update(
        {
            "non_embedding_parameters": shape.non_embedding,
            "flops_per_token": per_token,
            "peak_flops_per_s": device_peak,
            "mfu": mfu(float(cell.metrics["tokens_per_s_per_device"]), per_token, device_peak)
            if device_peak
            else None,
        }
    )


def _cell_metrics(cell: CellResult) -> dict[str, float]:
    m = cell.metrics
    out = {
        mn.THROUGHPUT_TOKENS_PER_S: m["tokens_per_s"],
        mn.THROUGHPUT_TOKENS_PER_S_PER_DEVICE: m["tokens_per_s_per_device"],
        mn.THROUGHPUT_STEP_TIME_S: m["step_time_s"],
        mn.MEMORY_PEAK_BYTES_PER_DEVICE: m["peak_memory_bytes"],
    }
    if m.get("mfu") is not None:
        out[mn.THROUGHPUT_MFU] = m["mfu"]
    return out


def _cell_line(cell: CellResult) -> str:
    if cell.status != "ok":
        return f"{cell.status} ({cell.reason})"
    m = cell.metrics
    mfu_text = f"{100 * m['mfu']:.1f}%" if m.get("mfu") is not None else "n/a"
    return (
        f"{m['tokens_per_s_per_device']:,.0f} tokens/s per device, step {1000 * m['step_time_s']:.0f} ms, "
        f"peak {m['peak_memory_bytes'] / 2**20:,.0f} MiB, MFU {mfu_text}"
    )


# --- the scorer -----------------------------------------------------------------------------------------


def _run_scoring(cfg: HardwareBenchmarkConfig, limits: CellLimits) -> dict[str, Any]:
    import ray

    options: dict[str, Any] = {"num_cpus": 1}
    if cfg.device == "cuda":
        options["num_gpus"] = 1
    task = ray.remote(score_throughput).options(**options)
    return dict(
        ray.get(
            task.remote(
                cfg.scoring_size,
                cfg.device,
                limits.scoring_people,
                limits.scoring_naive_person_years,
                cfg.seed,
            )
        )
    )


def score_throughput(
    size: str,
    device: str,
    people: int,
    naive_person_years: int,
    seed: int,
    years: int = 5,
    vocab: int = 2048,
    tokenizer_people: int = 300,
) -> dict[str, Any]:
    """Person-years/s of ``LlmScorer.score`` (fast) and ``score_naive`` on random careers (module docstring).

    Both methods score the same whole people (the naive one the first ``naive_person_years`` of them), after
    one untimed warm-up call each; the largest difference of their log-probabilities on the person-years both
    scored is reported as the agreement check.
    """
    import numpy as np
    import torch
    from transformers import LlamaForCausalLM

    from laborlm.corpus.template import load_template
    from laborlm.corpus.tokenizer import load_tokenizer
    from laborlm.llm.scoring import LlmScorer, ScoringConfig
    from laborlm.occupations import Taxonomy
    from laborlm.training.models import llama_config

    torch.set_num_threads(1 if device == "cpu" else 4)
    taxonomy, template = Taxonomy.default(), load_template("labor-llm")
    with tempfile.TemporaryDirectory(prefix="laborlm-score-") as tmp:
        panel = random_panel(tokenizer_people, years, "t", seed + 1, source="psid")
        tokenizer = load_tokenizer(tokenizer_on(panel, taxonomy, vocab, Path(tmp)))
    model: Any
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(
            llama_config(
                size, vocab_size=len(tokenizer), max_positions=2048, pad_token_id=tokenizer.pad_token_id
            )
        )
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = model.to(device=device, dtype=dtype).eval()
    scorer = LlmScorer(model, tokenizer, template, taxonomy, ScoringConfig())
    careers = scorer.encode_panel(random_panel(people, years, "s", seed + 2, source="psid"))
    naive = careers[: max(1, math.ceil(naive_person_years / years))]
    scorer.score(careers[:2])  # warm-up: allocator, kernels
    scorer.score_naive(naive[:1])

    def timed(fn: Any, items: list[Any]) -> tuple[np.ndarray, float]:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        scores = fn(items)
        if device == "cuda":
            torch.cuda.synchronize()
        return scores, time.perf_counter() - start

    fast, fast_s = timed(scorer.score, careers)
    slow, slow_s = timed(scorer.score_naive, naive)
    both = fast[: len(slow)]  # the same person-years, in the same order
    return {
        "model": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype),
        "labels": len(taxonomy),
        "fast_person_years": len(fast),
        "naive_person_years": len(slow),
        "fast_person_years_per_s": len(fast) / fast_s,
        "naive_person_years_per_s": len(slow) / slow_s,
        "speedup": (len(fast) / fast_s) / (len(slow) / slow_s),
        "max_abs_diff": float(np.abs(both - slow).max()),
    }


def random_panel(people: int, years: int, prefix: str, seed: int, source: str = "bench") -> Any:
    """``people`` random careers of ``years`` consecutive years from 2000 over every occupation (a 70% chance of
    staying each year), sorted by (person, year): data of the right shape and size, not a labour market
    (``laborlm data synth`` is). The benchmarks under ``benchmarks/`` use it too."""
    import numpy as np
    import pyarrow as pa

    from laborlm.occupations import Taxonomy
    from laborlm.schema import EDUCATION_LEVELS, GENDERS, RACES, REGIONS, conform

    rng = np.random.default_rng(seed)
    codes = np.array(Taxonomy.default().codes)
    occ = rng.integers(0, len(codes), size=(people, years))
    stay = rng.random((people, years)) < 0.7
    for t in range(1, years):
        occ[:, t] = np.where(stay[:, t], occ[:, t - 1], occ[:, t])
    n = people * years
    person = np.repeat(np.arange(people), years)
    return conform(
        pa.table(
            {
                "person_id": [f"{prefix}{p:07d}" for p in person],
                "year": pa.array(np.tile(np.arange(2000, 2000 + years), people), pa.int32()),
                "occupation": codes[occ.ravel()],
                "education": np.array(EDUCATION_LEVELS)[np.minimum(np.arange(n) % years // 3, 7)],
                "region": np.array(REGIONS)[person % len(REGIONS)],
                "gender": np.array(GENDERS)[person % len(GENDERS)],
                "race": np.array(RACES)[person % len(RACES)],
                "birth_year": pa.array(1975 + person % 10, pa.int32()),
                "source": [source] * n,
            }
        )
    )


def tokenizer_on(panel: Any, taxonomy: Any, vocab: int, root: Path) -> Path:
    """A byte-level BPE trained on ``panel``'s rendered texts (a one-shard corpus folder, no Ray), titles left
    multi-token so the scorer's trie path is what is timed; ``benchmarks/llm_scoring.py`` uses it too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from laborlm.corpus.manifest import CorpusManifest, OutputShard
    from laborlm.corpus.render import render_table
    from laborlm.corpus.template import load_template
    from laborlm.corpus.tokenizer import TokenizerConfig, train_tokenizer

    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    rendered = render_table(panel, taxonomy, load_template("labor-llm"))
    rendered = rendered.set_column(
        rendered.schema.get_field_index("split"),
        "split",
        pa.array(["train"] * rendered.num_rows, pa.string()),
    )
    pq.write_table(rendered, corpus / "part-00000.parquet")
    CorpusManifest(
        config_hash="bench",
        config={},
        template={"name": "labor-llm"},
        taxonomy={"name": taxonomy.name},
        inputs=(),
        rows_in=panel.num_rows,
        rows_kept=panel.num_rows,
        rows_rejected=0,
        people={"psid": {"train": rendered.num_rows}},
        chars=0,
        files=(
            OutputShard(
                "part-00000.parquet", rendered.num_rows, (corpus / "part-00000.parquet").stat().st_size
            ),
        ),
    ).write(corpus)
    return train_tokenizer(corpus, root / "tokenizer", TokenizerConfig(vocab_size=vocab, label_tokens=False))


# --- outputs --------------------------------------------------------------------------------------------


def _markdown(
    cfg: HardwareBenchmarkConfig,
    limits: CellLimits,
    workers: int,
    device_name: str,
    peak: float | None,
    peak_source: str,
    cells: list[CellResult],
    scoring: dict[str, Any] | None,
    seconds: float,
) -> str:
    lines = [
        (
            f"**Training throughput on {device_name}**, {workers} worker(s), {cfg.mode} training, "
            f"blocks of {limits.block_size} random tokens x {limits.micro_batch_size} per device per step, "
            f"{limits.warmup_steps} warm-up steps then ~{limits.seconds:g} s timed per cell"
        ),
        "",
        (
            "| size | parameters | N (non-emb.) | strategy | precision | tokens/s per device | tokens/s (all) "
            "| step time (ms) | peak memory per device (MiB) | MFU |"
        ),
        "|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        m = c.metrics
        if c.status != "ok":
            shape = model_shape(c.size, cfg.vocab_size)
            lines.append(
                f"| {c.size} | {shape.parameters:,} | {shape.non_embedding:,} | {c.strategy} | | "
                f"**{c.status}** | | | | |"
            )
            continue
        mfu_text = f"{100 * m['mfu']:.2f}%" if m.get("mfu") is not None else "n/a"
        lines.append(
            f"| {c.size} | {m['parameters']:,} | {m['non_embedding_parameters']:,} | {c.strategy} | {m['precision']} "
            f"| {m['tokens_per_s_per_device']:,.0f} | {m['tokens_per_s']:,.0f} | {1000 * m['step_time_s']:,.1f} "
            f"| {m['peak_memory_bytes'] / 2**20:,.0f} | {mfu_text} |"
        )
    notes = [f"- {c.size} {c.strategy}: {c.status}: {c.reason}" for c in cells if c.status != "ok"]
    lines += [
        "",
        f"Peak: {peak_source}.",
        f"{FORMULA}.",
        "Memory: "
        + (
            "torch.cuda.max_memory_allocated, the largest over devices."
            if cfg.device == "cuda"
            else "peak RSS of each worker process (libraries included), the largest over workers."
        ),
        *notes,
    ]
    if scoring is not None:
        s = scoring
        lines += [
            "",
            (
                f"**Scorer** ({s['model']}, {s['parameters']:,} parameters, {s['dtype']}, K = {s['labels']} labels, "
                "multi-token titles)"
            ),
            "",
            "| method | person-years | person-years/s |",
            "|---|---:|---:|",
            f"| fast (prefix cache + label trie) | {s['fast_person_years']} | {s['fast_person_years_per_s']:,.1f} |",
            f"| naive (a forward pass per label) | {s['naive_person_years']} | {s['naive_person_years_per_s']:,.2f} |",
            "",
            f"Speed-up {s['speedup']:.0f}x; max |fast - naive| log p = {s['max_abs_diff']:.1e}.",
        ]
    lines += ["", f"_{seconds:.0f} s on this machine (cells and scorer)_"]
    return "\n".join(lines) + "\n"


def _plot(cells: list[CellResult], limits: CellLimits, path: Path, device_name: str) -> Path | None:
    """Grouped bars: tokens/s per device (log scale) and MFU, by size (groups) and strategy (bars)."""
    ok = [c for c in cells if c.status == "ok"]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes, strategies = list(limits.sizes), list(limits.strategies)
    width = 0.8 / len(strategies)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, key, title in (
        (axes[0], "tokens_per_s_per_device", "tokens/s per device"),
        (axes[1], "mfu", "MFU (%)"),
    ):
        for j, strategy in enumerate(strategies):
            xs, ys = [], []
            for i, size in enumerate(sizes):
                cell = next((c for c in ok if c.size == size and c.strategy == strategy), None)
                if cell is not None and cell.metrics.get(key) is not None:
                    xs.append(i + (j - (len(strategies) - 1) / 2) * width)
                    ys.append(float(cell.metrics[key]) * (100 if key == "mfu" else 1))
            ax.bar(xs, ys, width, label=strategy)
        ax.set_xticks(range(len(sizes)), sizes)
        ax.set_title(title)
        if key != "mfu":
            ax.set_yscale("log")
    axes[0].legend(title="strategy")
    fig.suptitle(f"Training throughput on {device_name}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
