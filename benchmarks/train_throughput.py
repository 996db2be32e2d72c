"""Training tokens/s of a small LM: a plain single-process PyTorch loop vs Ray Train with 1 and 2 CPU workers.

    python benchmarks/train_throughput.py                        # llama-1m, 64-token blocks, 60 steps
    python benchmarks/train_throughput.py --size llama-10m --steps 40 --workers 1,2

One run measures every runner on the same model (same size, seed and tokenizer) and the same data (a
synthetic resume corpus packed into the same blocks): the plain loop packs the train split in memory and
steps ``torch.optim.AdamW`` on micro-batches of ``--micro`` blocks; Ray Train runs the real phase loop
(``laborlm.training``, DDP, Ray Data streaming the packed blocks) with ``--micro`` blocks per worker, so
2 workers process twice the tokens per step. Throughput is real (unpadded) training tokens per second over
the last two thirds of the steps (start-up, the Ray Data pipeline's first blocks and compilation of nothing
excluded); wall time covers everything (worker start, imports, evaluation, checkpoints). The plain loop uses
``--threads`` torch threads (default: --cpus); each Ray worker one. Figures go in reports, never in tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from laborlm.config import load_config
from laborlm.corpus.build import corpus_files, iter_texts
from laborlm.corpus.packing import pack_texts
from laborlm.corpus.tokenizer import load_tokenizer
from laborlm.training import TrainConfig
from laborlm.training.loop import decay_groups, seed_for
from laborlm.training.models import build_model
from laborlm.training.workflow import prepare_corpus, prepare_tokenizer, run_phase


def plain_loop(cfg: TrainConfig, corpus: Path, tokenizer: str, steps: int) -> tuple[float, float]:
    """tokens/s over the last 2/3 of ``steps``, and wall time, of a single-process loop on the same blocks."""
    start = time.perf_counter()
    tok = load_tokenizer(tokenizer)
    texts = [t for batch in iter_texts(corpus_files(corpus), "train", 4096) for t in batch]
    blocks = {k: torch.from_numpy(v) for k, v in pack_texts(texts, tok, cfg.block_size).items()}
    model = build_model(cfg.model, tok, block_size=cfg.block_size, seed=seed_for(cfg.seed, 0))
    opt = torch.optim.AdamW(
        decay_groups(model, cfg.optim.weight_decay), lr=cfg.pretrain.lr, betas=cfg.optim.betas
    )
    n, micro = len(blocks["input_ids"]), cfg.micro_batch_size
    timed_from = steps // 3
    tokens, seconds = 0, 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        lo = (step * micro) % max(n - micro, 1)
        batch = {k: v[lo : lo + micro] for k, v in blocks.items()}
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= timed_from:
            seconds += time.perf_counter() - t0
            tokens += int(batch["attention_mask"].sum())
    return tokens / seconds, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="llama-1m")
    parser.add_argument("--people", type=int, default=3000, help="synthetic resumes in the corpus")
    parser.add_argument("--block", type=int, default=64, help="tokens per block")
    parser.add_argument("--micro", type=int, default=8, help="blocks per micro-batch (per worker)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", default="1,2", help="Ray Train worker counts to measure")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads of the plain loop (default --cpus)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for k, v in {
        "RAY_AUTH_MODE": "disabled",
        "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
        "HF_HUB_OFFLINE": "1",
        "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
        "RAY_DATA_LOG_LEVEL": "WARNING",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(k, v)
    import ray

    def start_ray() -> None:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")

    start_ray()
    third = max(args.steps // 3, 1)
    with tempfile.TemporaryDirectory(prefix="laborlm-train-bench-") as tmp:
        overrides = [
            f"out_dir={tmp}",
            f"model.size={args.size}",
            f"block_size={args.block}",
            f"micro_batch_size={args.micro}",
            f"pretrain.synth_people={args.people}",
            f"pretrain.max_steps={args.steps}",
            f"pretrain.log_every_steps={third}",
            "pretrain.eval_every_steps=null",
            "pretrain.eval_at_start=false",
            "pretrain.eval_blocks=16",
            "pretrain.checkpoint_every_steps=null",
            "finetune.enabled=false",
            "tracking.enabled=false",
        ]
        cfg = load_config(TrainConfig, None, overrides)
        corpus = prepare_corpus(cfg, "pretrain", cfg.pretrain)
        tokenizer = prepare_tokenizer(cfg, [corpus])
        # The plain loop runs with Ray stopped: Ray's idle processes would otherwise compete for the cores.
        ray.shutdown()
        torch.set_num_threads(args.threads or args.cpus)
        base_tps, base_wall = plain_loop(cfg, corpus, tokenizer, args.steps)
        start_ray()
        print(
            f"{args.size}, blocks of {args.block} tokens, micro-batch {args.micro}, {args.steps} steps, "
            f"{args.cpus} CPUs; plain loop with {torch.get_num_threads()} torch threads"
        )
        print(f"{'plain PyTorch loop':>22}: {base_tps:8.0f} tokens/s  (x1.00)  {base_wall:6.1f} s wall")
        for workers in (int(w) for w in args.workers.split(",")):
            run_cfg = load_config(
                TrainConfig,
                None,
                [*overrides, f"strategy.num_workers={workers}", f"run_name=bench-w{workers}"],
            )
            start = time.perf_counter()
            result = run_phase(
                run_cfg, "pretrain", corpus, tokenizer, None, run_name=f"bench-w{workers}-pretrain"
            )
            wall = time.perf_counter() - start
            tps = result.metrics["throughput/tokens_per_s"]
            print(
                f"{f'Ray Train {workers} worker' + ('s' if workers > 1 else ''):>22}: {tps:8.0f} tokens/s  "
                f"(x{tps / base_tps:.2f})  {wall:6.1f} s wall"
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
