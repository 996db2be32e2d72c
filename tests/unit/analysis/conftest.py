"""Shared fixtures of the analysis tests: one small synthetic PSID panel (with its oracle) per session, and
one BLAS (and torch) thread per test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from threadpoolctl import threadpool_limits

from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset
from torch_threads import one_torch_thread  # noqa: F401  (autouse in this package)


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """The regressions and the oracle's products are small: one BLAS thread is fastest, and OpenBLAS's spinning
    threads slow them about 100x (measured: 0.3 s vs 30 s) when other processes hold the cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@dataclass(frozen=True)
class SmallPanel:
    folder: Path  # written by generate_panel: taxonomy.csv, synth.yaml (the oracle) and the shards
    taxonomy: Taxonomy
    table: pa.Table
    train: pa.Table
    test: pa.Table


@pytest.fixture(scope="session")
def small_psid(tmp_path_factory: pytest.TempPathFactory) -> SmallPanel:
    """600 synthetic PSID persons (~3,000 person-years), generated in-process in well under a second."""
    folder = tmp_path_factory.mktemp("analysis") / "psid"
    generate_panel(dataclasses.replace(load_preset("psid"), people=600, seed=3), folder)
    read = read_panel(folder)
    return SmallPanel(
        folder, read.taxonomy, read.table, select_split(read.table, "train"), select_split(read.table, "test")
    )
