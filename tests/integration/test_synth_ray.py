"""Synthetic generation on Ray Data: the same seed gives the same panel on any number of workers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from laborlm.synthetic import generate_panel, load_preset


def _read(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("part-*.parquet"))])


def test_same_panel_in_process_and_on_1_or_2_ray_workers(ray_session: object, tmp_path: Path) -> None:
    cfg = dataclasses.replace(load_preset("nlsy97"), people=500, shard_size=120)  # 5 shards
    local = generate_panel(cfg, tmp_path / "local")
    reference = _read(tmp_path / "local")
    for workers in (1, 2):
        out = tmp_path / f"ray{workers}"
        summary = generate_panel(cfg, out, num_workers=workers)
        assert (summary.people, summary.rows, summary.files) == (local.people, local.rows, 5)
        assert summary.oracle_perplexity == local.oracle_perplexity
        assert _read(out).equals(reference)
        for name in ("taxonomy.csv", "synth.yaml"):
            assert (out / name).read_text() == (tmp_path / "local" / name).read_text()
