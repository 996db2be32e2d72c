"""Comparison tables: models x datasets, mean ± standard deviation over seeds (CAREER's Figure 2a format)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ComparisonTable:
    """Collects one number per (model, dataset, seed) and renders the table. Rows keep insertion order."""

    metric: str = "test perplexity"
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # model -> dataset -> per-seed values

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

    def to_markdown(self, decimals: int = 2) -> str:
        s = self.summary()
        cols = self.datasets
        lines = [f"| model ({self.metric}) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for model in self.values:
            cells = []
            for ds in cols:
                v = s[model].get(ds)
                cells.append("" if v is None or math.isnan(v["mean"]) else f"{v['mean']:.{decimals}f} ± {v['std']:.{decimals}f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "summary": self.summary(), "values": self.values}
