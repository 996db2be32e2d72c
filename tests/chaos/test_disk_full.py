"""A disk that fills up, or is read-only, while a writer runs (issue 16, faults): one clear ``LaborLMError``
naming the output and the reason, and nothing left that looks complete (no manifest, no truncated Parquet under
a final name), so a re-run neither reuses nor trips over it."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laborlm.errors import LaborLMError
from laborlm.synthetic import generate_panel, load_preset

from .conftest import remount_read_only

pytestmark = pytest.mark.chaos

BIG = dataclasses.replace(load_preset("psid"), people=4000, shard_size=500)  # ~0.6 MB of Parquet: > the disk


def _assert_nothing_looks_complete(folder: Path) -> None:
    for path in folder.rglob("*.parquet"):
        pq.read_metadata(path)  # any Parquet under a final name is whole (a truncated one has no footer)
    assert not list(folder.rglob("manifest.json"))


def test_synthetic_panel_on_a_full_disk(small_disk: Path) -> None:
    start = time.monotonic()
    with pytest.raises(LaborLMError, match=r"no space left on device"):
        generate_panel(BIG, small_disk / "panel")
    assert list(small_disk.iterdir()) == []  # the half-written folder is gone, nothing was swapped in
    assert time.monotonic() - start < 60


def test_synthetic_panel_on_a_full_disk_with_ray_workers(ray_session: object, small_disk: Path) -> None:
    with pytest.raises(LaborLMError, match=r"no space left on device"):
        generate_panel(BIG, small_disk / "panel", num_workers=2)
    assert list(small_disk.iterdir()) == []


def test_corpus_build_on_a_full_disk(ray_session: object, tmp_path: Path, small_disk: Path) -> None:
    from laborlm.corpus import CorpusConfig, build_corpus, read_manifest

    panel = tmp_path / "panel"
    generate_panel(BIG, panel)
    out = small_disk / "corpus"
    with pytest.raises(LaborLMError, match=r"no space left on device"):
        build_corpus(CorpusConfig(inputs=(panel,), out_dir=out, rows_per_shard=200))
    assert read_manifest(out) is None
    _assert_nothing_looks_complete(small_disk)
    assert not [p for p in out.iterdir() if p.name.startswith("corpus-")]  # completed shards discarded too

    # The same build elsewhere (space freed) succeeds, and a re-run into the full folder starts afresh.
    ok = build_corpus(CorpusConfig(inputs=(panel,), out_dir=tmp_path / "corpus", rows_per_shard=200))
    assert ok.documents == 4000


def test_writers_on_a_read_only_disk(ray_session: object, tmp_path: Path, small_disk: Path) -> None:
    from laborlm.corpus import CorpusConfig, build_corpus

    panel = tmp_path / "panel"
    generate_panel(dataclasses.replace(BIG, people=200), panel)
    (small_disk / "corpus").mkdir()
    remount_read_only(small_disk)
    with pytest.raises(LaborLMError, match=r"(?i)read-only file system"):
        generate_panel(BIG, small_disk / "panel")
    with pytest.raises(LaborLMError, match=r"(?i)read-only file system"):
        build_corpus(CorpusConfig(inputs=(panel,), out_dir=small_disk / "corpus"))
