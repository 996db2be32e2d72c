"""Read speed of the panel readers: rows/s for a CSV and a Parquet panel (validation included).

    python benchmarks/read_panel.py --rows 1000000

Writes a synthetic-looking panel (10 years per person, every covariate) to a temporary folder, then times
``read_panel`` on it as CSV and as Parquet. The figures go in reports, never in tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from laborlm.occupations import Taxonomy
from laborlm.readers import read_panel, write_csv, write_panel


def make_panel(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    persons = np.arange(rows) // 10
    codes = np.array(Taxonomy.default().codes)
    return pa.table(
        {
            "person_id": pa.array([f"p{p:08d}" for p in persons]),
            "year": pa.array(1990 + np.arange(rows) % 10, pa.int32()),
            "occupation": pa.array(codes[rng.integers(0, len(codes), rows)]),
            "education": pa.array(np.full(rows, "high_school")),
            "wage": pa.array(rng.normal(2.5, 0.5, rows)),
            "region": pa.array(np.full(rows, "south")),
            "gender": pa.array(np.where(persons % 2 == 0, "female", "male")),
            "race": pa.array(np.full(rows, "white")),
            "birth_year": pa.array(1960 + persons % 20, pa.int32()),
            "source": pa.array(np.full(rows, "bench")),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many reads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        table = make_panel(args.rows)
        write_csv(table, Path(tmp) / "panel.csv")
        write_panel(table, Path(tmp) / "panel", Taxonomy.default())
        for name, path in (("csv", Path(tmp) / "panel.csv"), ("parquet", Path(tmp) / "panel")):
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                read = read_panel(path)
                best = min(best, time.perf_counter() - start)
            assert read.counts.rows_kept == args.rows
            print(f"{name:8s} {args.rows:>10,d} rows  {best:6.2f} s  {args.rows / best:>12,.0f} rows/s")


if __name__ == "__main__":
    main()
