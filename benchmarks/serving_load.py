"""Serving under load: a registered CAREER model behind `mlflow models serve` on loopback, hit by a bounded
number of concurrent requests, valid and invalid careers mixed (issue 16).

    python benchmarks/serving_load.py                                 # 2,000 requests, 16 concurrent
    python benchmarks/serving_load.py --requests 500 --concurrency 4 --workers 2 --json out.json

Fits career-tiny-two_stage for one epoch on a synthetic PSID panel (the model's quality is not the point,
its inference cost is CAREER's), registers it in a SQLite registry, promotes it to @champion, serves
``models:/NAME@champion`` with ``--workers`` uvicorn workers, and sends the requests
(``laborlm.serving.load.run_load``). Prints p50/p99 latency, requests/s and the status counts; exits 1 if any
request got a 5xx or no answer, or an invalid career was not a 400 with its reason. Figures go in README,
never in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from laborlm.models.registry import FitOverrides, create_model, fit_config
from laborlm.readers import read_panel
from laborlm.serving.load import LoadConfig, careers_from_panel, invalid_careers, run_load
from laborlm.serving.registry import promote, register_model
from laborlm.serving.serve import served_model
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset

NAME = "load-career"


def registered_career_model(folder: Path, people: int = 300, seed: int = 0) -> tuple[str, str, list[dict]]:
    """(model URI, tracking URI, request careers): a one-epoch CAREER-tiny registered as NAME@champion."""
    generate_panel(dataclasses.replace(load_preset("psid"), people=people, seed=seed), folder / "psid")
    read = read_panel(folder / "psid")
    name = "career-tiny-two_stage"
    model = create_model(name, read.taxonomy, fit=fit_config(name, FitOverrides(max_epochs=1, patience=None)))
    model.fit(select_split(read.table, "train"), select_split(read.table, "valid"))
    model.save(folder / "career")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    promote(NAME, register_model(folder / "career", NAME, uri), tracking_uri=uri)
    return f"models:/{NAME}@champion", uri, careers_from_panel(select_split(read.table, "test"), 200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--invalid-fraction", type=float, default=0.25)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of mlflow models serve")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="serving-load-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        model_uri, tracking_uri, careers = registered_career_model(folder)
        t1 = time.perf_counter()
        with served_model(model_uri, tracking_uri, folder / "serve", workers=args.workers) as url:
            t2 = time.perf_counter()
            report = run_load(
                url,
                careers,
                invalid_careers(careers[0]),
                LoadConfig(
                    requests=args.requests,
                    concurrency=args.concurrency,
                    invalid_fraction=args.invalid_fraction,
                ),
            )
    print(
        f"model fit + registration {t1 - t0:.1f} s; server ready in {t2 - t1:.1f} s ({args.workers} worker(s))"
    )
    print(report.line())
    figures = {
        **report.to_dict(),
        "concurrency": args.concurrency,
        "workers": args.workers,
        "cpus": os.cpu_count(),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    for problem in report.problems():
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
