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
