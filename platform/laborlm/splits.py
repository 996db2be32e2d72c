"""Deterministic person-level train/valid/test splits.

A person's split is a pure function of (person id, seed, fractions): a keyed hash of the id is mapped to
[0, 1) and cut at the cumulative fractions. It therefore does not depend on sharding, row order or which
other people are in the panel, so every worker of a Ray pipeline agrees without coordination. A panel's
``split`` column, when set (CAREER files fix the split by file), takes precedence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from laborlm.errors import ConfigError
from laborlm.schema import PERSON_ID, SPLIT, SPLITS


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.7  # both papers split people 70/10/20
    valid: float = 0.1
    test: float = 0.2
    seed: int = 0  # changing it reshuffles who is in which split

    def __post_init__(self) -> None:
        fr = (self.train, self.valid, self.test)
        if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
            raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {fr}")


def unit_hash(person_id: str, seed: int) -> float:
    """A uniform draw in [0, 1) keyed by (seed, person id); stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{seed}\x1f{person_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_of(person_id: str, config: SplitConfig = SplitConfig()) -> str:
    u = unit_hash(person_id, config.seed)
    if u < config.train:
        return "train"
    if u < config.train + config.valid:
        return "valid"
    return "test"


def split_array(person_ids: Sequence[str], config: SplitConfig = SplitConfig()) -> np.ndarray:
    """Split names for many ids (``[n]`` object array); hashes each distinct id once."""
    cache: dict[str, str] = {}
    out = np.empty(len(person_ids), dtype=object)
    for i, pid in enumerate(person_ids):
        s = cache.get(pid)
        if s is None:
            s = cache[pid] = split_of(pid, config)
        out[i] = s
    return out


def assign_splits(table: pa.Table, config: SplitConfig = SplitConfig()) -> pa.Table:
    """Fill the ``split`` column where it is null; fixed splits from the input are kept."""
    derived = pa.array(split_array(table.column(PERSON_ID).to_pylist(), config), pa.string())
    if SPLIT in table.column_names:
        merged = pc.coalesce(table.column(SPLIT), derived)
        return table.set_column(table.column_names.index(SPLIT), SPLIT, merged)
    return table.append_column(SPLIT, derived)


def select_split(table: pa.Table, split: str, config: SplitConfig = SplitConfig()) -> pa.Table:
    """Rows of one split (``train``, ``valid`` or ``test``)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    table = assign_splits(table, config)
    return table.filter(pc.equal(table.column(SPLIT), split))
