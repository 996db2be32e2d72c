"""Comparison tables: models x datasets, mean ± standard deviation over seeds (CAREER's Figure 2a format).

A table also checks its own figures (``sanity``): a perplexity above the number of labels is worse than a
uniform guess, one above the unigram row's is worse than ignoring the career altogether, and one below the
oracle row's beats the data-generating process, which no model can. Each such cell is logged as a warning
and listed under the Markdown table, so a broken model is never read as a result.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass
class ComparisonTable:
    """Collects one number per (model, dataset, seed) and renders the table. Rows keep insertion order."""

    metric: str = "test perplexity"
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=dict
    )  # model -> dataset -> per-seed values
    labels: int | None = None  # K, the number of labels: a perplexity above it is worse than uniform
    floor_row: str | None = None  # the unigram row: every model must beat it
    oracle_row: str | None = None  # the exact DGP's row: no model can beat it (beyond noise)

    def add(self, model: str, dataset: str, value: float) -> None:
        self.values.setdefault(model, {}).setdefault(dataset, []).append(float(value))

    @property
    def datasets(self) -> list[str]:
        seen: dict[str, None] = {}
        for per in self.values.values():
            seen.update(dict.fromkeys(per))
        return list(seen)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """model -> dataset -> {mean, std, n}; std is the sample standard deviation (0 for one seed)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for model, per in self.values.items():
            for ds, vals in per.items():
                arr = np.asarray(vals)
                std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
                out.setdefault(model, {})[ds] = {"mean": float(arr.mean()), "std": std, "n": len(arr)}
        return out

    def sanity(self, tolerance: float = 0.01) -> list[str]:
        """Cells that make no sense as perplexities (module docstring), one message each.

        ``tolerance`` is relative: a model within 1% of the oracle is within the noise of a test split.
        """
        s = self.summary()
        problems = []
        for model in self.values:
            if model in (self.floor_row, self.oracle_row):
                continue
            for ds, v in s[model].items():
                value = v["mean"]
                floor = s.get(self.floor_row or "", {}).get(ds, {}).get("mean")
                oracle = s.get(self.oracle_row or "", {}).get(ds, {}).get("mean")
                if not math.isfinite(value):
                    problems.append(f"{model} on {ds}: perplexity {value} is not a number")
                elif self.labels is not None and value > self.labels:
                    problems.append(
                        f"{model} on {ds}: perplexity {value:.4g} exceeds the {self.labels} labels "
                        "(worse than a uniform guess)"
                    )
                elif floor is not None and value > floor:
                    problems.append(
                        f"{model} on {ds}: perplexity {value:.4g} exceeds the unigram's {floor:.4g} "
                        "(worse than ignoring the career)"
                    )
                if oracle is not None and math.isfinite(value) and value < oracle * (1 - tolerance):
                    problems.append(
                        f"{model} on {ds}: perplexity {value:.4g} is below the oracle's {oracle:.4g}"
                    )
        for message in problems:
            logger.warning("implausible figure: %s", message)
        return problems

    def to_markdown(self, decimals: int = 2) -> str:
        s = self.summary()
        cols = self.datasets
        lines = [f"| model ({self.metric}) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for model in self.values:
            cells = []
            for ds in cols:
                v = s[model].get(ds)
                cells.append(
                    ""
                    if v is None or math.isnan(v["mean"])
                    else f"{v['mean']:.{decimals}f} ± {v['std']:.{decimals}f}"
                )
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        flags = self.sanity()
        if flags:
            lines += [
                "",
                "**Implausible figures** (a model worse than uniform or the unigram, or below the oracle):",
            ]
            lines += [f"- {message}" for message in flags]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "summary": self.summary(),
            "values": self.values,
            "flags": self.sanity(),
        }
