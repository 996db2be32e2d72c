"""Epoch time of the neural occupation models: in-process training vs Ray Train (DDP) workers.

    python benchmarks/neural_fit.py                                  # career-small, 10k person-years
    python benchmarks/neural_fit.py --model nemo-two_stage --rows 50000 --workers 0,2

Generates a random panel over occ1990dd (K = 344 with the special states; 10 years per person, sticky
careers, every covariate present), fits ``--epochs`` epochs with each runner and prints, per runner, the
training time of one epoch (training steps only: person-years / throughput of the last epoch) and the wall
time of the whole fit (start-up, evaluation and checkpoints included). ``--workers`` lists the runners:
``-`` is in-process without Ray, ``0`` Ray Train local mode, ``n`` Ray Train with n CPU workers. Ray is
started here with ``--cpus`` CPUs; in-process training uses ``--threads`` torch threads (default: as many as CPUs; Ray
workers use one each). Figures go in reports,
never in tests.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import ray
import torch
from random_panels import random_panel

from laborlm.models.fitting import EPOCH, TOKENS_PER_S, FitConfig, fit_network, init_network
from laborlm.models.neural import NeuralOccupationModel
from laborlm.models.registry import create_model
from laborlm.occupations import Taxonomy


def make_panel(rows: int, prefix: str, seed: int) -> pa.Table:
    """``rows`` person-years, 10 per person."""
    return random_panel(-(-rows // 10), 10, prefix, seed).slice(0, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="career-small-two_stage")
    parser.add_argument("--rows", type=int, default=10_000, help="training person-years")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", default="-,2", help="runners: '-' in-process, 0 local mode, n workers")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads in-process (default: --cpus)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    torch.set_num_threads(args.threads or args.cpus)
    taxonomy = Taxonomy.default()
    train, valid = make_panel(args.rows, "t", 0), make_panel(args.rows // 5, "v", 1)
    model = create_model(args.model, taxonomy)
    assert isinstance(model, NeuralOccupationModel), "only neural models train with the loop"
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    print(
        f"{args.model}: {train.num_rows} train / {valid.num_rows} valid person-years, K={len(taxonomy)}, "
        f"{sum(p.numel() for p in model.network.parameters()):,} parameters, {args.cpus} CPUs, "
        f"{torch.get_num_threads()} torch threads in-process"
    )
    for runner in args.workers.split(","):
        fit = FitConfig(
            max_epochs=args.epochs, patience=None, num_workers=None if runner == "-" else int(runner)
        )
        config = replace(model.config, fit=fit)
        with tempfile.TemporaryDirectory() as tmp:
            config = replace(config, fit=replace(fit, storage_path=Path(tmp)))
            start = time.perf_counter()
            result = fit_network(
                config, taxonomy, train, valid, init_network(config, len(taxonomy)).state_dict()
            )
            wall = time.perf_counter() - start
        epoch = train.num_rows / result.metrics[TOKENS_PER_S]
        name = {"-": "in-process", "0": "Ray local mode"}.get(runner, f"Ray Train {runner} workers")
        print(
            f"{name:>22}: {epoch:6.2f} s/epoch (training steps), {wall:6.1f} s wall for "
            f"{int(result.metrics[EPOCH])} epochs incl. start-up, evaluation, checkpoints"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
