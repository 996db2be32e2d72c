from __future__ import annotations

import pytest

from laborlm.evaluation.compare import ComparisonTable


def test_mean_and_sample_std_over_seeds() -> None:
    t = ComparisonTable()
    for v in (10.0, 12.0, 14.0):
        t.add("career", "psid", v)
    t.add("oracle", "psid", 8.0)
    t.add("oracle", "nlsy79", 7.5)
    s = t.summary()
    assert s["career"]["psid"] == {"mean": 12.0, "std": pytest.approx(2.0), "n": 3}
    md = t.to_markdown()
    assert md.splitlines()[0] == "| model (test perplexity) | psid | nlsy79 |"
    assert "| career | 12.00 ± 2.00 |  |" in md
    assert "| oracle | 8.00 ± 0.00 | 7.50 ± 0.00 |" in md


def test_sanity_flags_figures_worse_than_uniform_or_unigram_and_below_the_oracle(caplog) -> None:
    t = ComparisonTable(labels=10, floor_row="unigram", oracle_row="oracle")
    for model, value in {
        "oracle": 4.0,
        "unigram": 8.0,
        "good": 5.0,
        "worse than unigram": 9.0,
        "worse than uniform": 250.8,
        "too good": 3.0,
    }.items():
        t.add(model, "psid", value)
    flags = t.sanity()
    assert len(flags) == 3
    assert any("worse than uniform" in f and "exceeds the 10 labels" in f for f in flags)
    assert any(f.startswith("worse than unigram") and "unigram's 8" in f for f in flags)
    assert any(f.startswith("too good") and "below the oracle" in f for f in flags)
    assert "Implausible figures" in t.to_markdown() and t.to_json()["flags"] == flags
    assert "implausible figure" in caplog.text
    fine = ComparisonTable(labels=10, floor_row="unigram", oracle_row="oracle")
    for model, value in {"oracle": 4.0, "unigram": 8.0, "good": 5.0}.items():
        fine.add(model, "psid", value)
    assert fine.sanity() == [] and "Implausible" not in fine.to_markdown()
