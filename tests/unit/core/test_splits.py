from __future__ import annotations

import pyarrow as pa

from laborlm.splits import SplitConfig, assign_splits, split_array, split_of


def test_split_is_a_function_of_id_and_seed_only() -> None:
    ids = [f"p{i}" for i in range(20000)]
    a = split_array(ids)
    b = split_array(list(reversed(ids)))[::-1]
    assert (a == b).all()
    shares = {s: float((a == s).mean()) for s in ("train", "valid", "test")}
    assert (
        abs(shares["train"] - 0.7) < 0.015
        and abs(shares["valid"] - 0.1) < 0.01
        and abs(shares["test"] - 0.2) < 0.015
    )
    other = split_array(ids, SplitConfig(seed=1))
    assert (other != a).mean() > 0.3


def test_fixed_splits_win_over_hash() -> None:
    t = pa.table({"person_id": ["a", "b"], "split": pa.array(["test", None], pa.string())})
    out = assign_splits(t).column("split").to_pylist()
    assert out == ["test", split_of("b")]
