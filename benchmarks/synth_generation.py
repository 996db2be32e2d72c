"""Generation speed of the synthetic labour market: people/s in-process and on 1 and 2 Ray Data workers.

    python benchmarks/synth_generation.py --people 200000
    python benchmarks/synth_generation.py --people 1000000 --modes ray2

Times ``generate_panel`` on the resumes preset (sampling + exact oracle + Parquet writing) into a temporary
folder and prints people/s, person-years/s and the speed-up over one Ray worker. Measured on the 2-core
project machine (2026-11-23, other jobs running, so treat as a lower bound): see the report of issue 3 and
``platform/laborlm/synthetic/generate.py``. The figures go in reports, never in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
from pathlib import Path

from laborlm.synthetic import generate_panel, load_preset

MODES = ("inprocess", "ray1", "ray2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--preset", default="resumes")
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated subset of {', '.join(MODES)}"
    )
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; expected {', '.join(MODES)}")
    cfg = dataclasses.replace(load_preset(args.preset), people=args.people)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if any(m.startswith("ray") for m in modes):
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
            import ray

            ray.init(
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _temp_dir=str(Path(tmp) / "ray"),
            )
        for mode in modes:
            workers = None if mode == "inprocess" else int(mode[3:])
            s = generate_panel(cfg, Path(tmp) / mode, num_workers=workers)
            results[mode] = s.people_per_s
            print(
                f"{mode:10s} {s.people:>10,d} people {s.rows:>12,d} person-years {s.elapsed_s:8.1f} s "
                f"{s.people_per_s:>9,.0f} people/s {s.rows / s.elapsed_s:>11,.0f} rows/s  "
                f"oracle ppl {s.oracle_perplexity:.3f}",
                flush=True,
            )
    if "ray1" in results:
        for mode, rate in results.items():
            print(f"{mode:10s} x{rate / results['ray1']:.2f} vs 1 Ray worker")


if __name__ == "__main__":
    main()
