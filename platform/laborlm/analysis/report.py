"""Tables as Markdown and CSV, and the small figures of the analyses (matplotlib, Agg backend).

One ``Table`` is written both ways from the same cells, so the Markdown in a report and the CSV beside it
can never disagree.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Table:
    """A titled table; cells are numbers or strings (numbers are formatted when rendered)."""

    name: str  # file stem of the CSV
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    decimals: int = 2

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.name}: {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(list(cells))

    def _fmt(self, v: Any) -> str:
        if isinstance(v, bool) or v is None:
            return "" if v is None else str(v)
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.{self.decimals}f}"
        if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, float) for x in v):
            mean, se = v
            return "—" if math.isnan(mean) else f"{mean:.{self.decimals}f} ± {se:.{self.decimals}f}"
        return str(v)

    def to_markdown(self) -> str:
        lines = [
            f"**{self.title}**",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += ["| " + " | ".join(self._fmt(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def write_csv(self, folder: Path) -> Path:
        """``<folder>/<name>.csv``; a ``mean ± se`` cell becomes two columns ``<col>`` and ``<col>_se``."""
        path = Path(folder) / f"{self.name}.csv"
        pairs = [any(isinstance(r[i], tuple) for r in self.rows) for i in range(len(self.columns))]
        header: list[str] = []
        for col, pair in zip(self.columns, pairs):
            header += [col, f"{col}_se"] if pair else [col]
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            for row in self.rows:
                out: list[Any] = []
                for v, pair in zip(row, pairs):
                    if pair:
                        out += list(v) if isinstance(v, tuple) else [v, ""]
                    else:
                        out.append(v)
                w.writerow(out)
        return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def line_figure(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """One line per series ``label -> (x, y, error bars or None)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for label, (x, y, err) in series.items():
        ax.errorbar(
            list(x), list(y), yerr=None if err is None else list(err), marker="o", capsize=3, label=label
        )
    ticks = sorted({float(v) for x, _, _ in series.values() for v in x})
    if 0 < len(ticks) <= 12:
        ax.set_xticks(ticks)
    ax.set_xlabel(xlabel)
    return _finish(plt, fig, ax, path, ylabel, title, legend_size=8)


def bar_figure(path: Path, groups: list[str], bars: dict[str, list[float]], ylabel: str, title: str) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series of ``bars`` (NaN bars are left out)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(len(bars), 1) / 2), 4.0))
    width = 0.8 / max(len(bars), 1)
    for i, (label, values) in enumerate(bars.items()):
        x = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(x, [0.0 if math.isnan(v) else v for v in values], width=width, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    return _finish(plt, fig, ax, path, ylabel, title, legend_size=7)


def _finish(plt: Any, fig: Any, ax: Any, path: Path, ylabel: str, title: str, *, legend_size: int) -> Path:
    """Label, lay out, save (110 dpi) and close a figure; every analysis figure ends the same way."""
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
