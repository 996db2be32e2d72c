"""Shared fixtures of the analysis tests: one small synthetic PSID panel (with its oracle) per session."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from laborlm.occupations.taxonomy import Taxonomy
from laborlm.readers import read_panel
from laborlm.splits import select_split
from laborlm.synthetic import generate_panel, load_preset


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
    return SmallPanel(folder, read.taxonomy, read.table, select_split(read.table, "train"), select_split(read.table, "test"))
