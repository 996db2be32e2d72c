"""Are a model's predictions representative of each subpopulation? (LABOR-LLM's representativeness analyses)

    laborlm analyze subgroups [--config YAML] [subgroups.columns=education,gender ...]

A model can have a good overall perplexity and still be wrong about whole groups: LABOR-LLM compares, by
education, gender and race, the predicted and observed rates of the outcomes labour economists care about,
and checks that predicted probabilities are calibrated. For every held-out person-year (rows of the test
split) and four events:

============  ======================================  =================================  ====================
event         predicted probability                   observed                           rows counted
============  ======================================  =================================  ====================
stay          ``p(y_t = y_{t-1})``                    the state did not change           rows with a previous
move          ``1 - p(y_t = y_{t-1})``                the state changed                  rows with a previous
unemployed    ``p(y_t = unemployed)``                 unemployed in year t               every row
out_of_labor  ``p(y_t = out_of_labor_force)``         out of the labour force in year t  every row
============  ======================================  =================================  ====================

The predicted rate of a group is the mean predicted probability over its rows, the observed rate the
share of its rows where the event happened: for a calibrated model they agree in every group up to
sampling noise (the standard error ``sqrt(r (1 - r) / n)`` is reported beside them). Perplexity by group
uses the shared metric (``evaluation.metrics.perplexity``; every person-year counts, first years
included). The reliability diagram bins each event's predicted probabilities (``evaluation.metrics.
calibration_bins``) and plots the observed frequency per bin against the mean prediction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from laborlm.errors import ConfigError
from laborlm.evaluation.metrics import calibration_bins, perplexity, target_log_probs
from laborlm.occupations.taxonomy import OUT_OF_LABOR_FORCE, UNEMPLOYED, Taxonomy
from laborlm.schema import EDUCATION, GENDER, RACE, REGION, region_of
from laborlm.sequences import panel_arrays

if TYPE_CHECKING:
    from laborlm.baselines.base import NextOccupationModel

logger = logging.getLogger(__name__)

EVENTS: tuple[str, ...] = ("stay", "move", "unemployed", "out_of_labor_force")
SUBGROUP_COLUMNS: tuple[str, ...] = (EDUCATION, GENDER, RACE, REGION)
MISSING = "missing"


@dataclass(frozen=True)
class SubgroupConfig:
    columns: tuple[str, ...] = (EDUCATION, GENDER, RACE)  # panel columns defining the subgroups
    bins: int = 10  # equal-width probability bins of the reliability diagram
    min_rows: int = 20  # groups with fewer person-years are left out of the tables (too noisy to read)

    def __post_init__(self) -> None:
        unknown = [c for c in self.columns if c not in SUBGROUP_COLUMNS]
        problems = [
            f"columns: {c!r} is not a subgroup column ({', '.join(SUBGROUP_COLUMNS)})" for c in unknown
        ]
        if self.bins < 2:
            problems.append(f"bins: expected >= 2, got {self.bins}")
        if self.min_rows < 1:
            problems.append(f"min_rows: expected >= 1, got {self.min_rows}")
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class Events:
    """Per-row predicted probability and observed outcome of every event, with the rows each counts."""

    predicted: dict[str, np.ndarray]  # event -> [n] model probability
    observed: dict[str, np.ndarray]  # event -> [n] bool
    counted: dict[str, np.ndarray]  # event -> [n] bool: rows where the event is defined


def events(log_probs: np.ndarray, panel: pa.Table, taxonomy: Taxonomy) -> Events:
    """The four events of the module docstring for every row of ``panel`` (``log_probs``: ``[n, K]``)."""
    arr = panel_arrays(panel, taxonomy)
    n = len(arr)
    rows = np.arange(n)
    has_prev = arr.prev >= 0
    p_stay = np.where(has_prev, np.exp(log_probs[rows, np.maximum(arr.prev, 0)]), np.nan)
    stayed = has_prev & (arr.occ == arr.prev)
    every = np.ones(n, dtype=bool)
    u, o = taxonomy.index(UNEMPLOYED), taxonomy.index(OUT_OF_LABOR_FORCE)
    return Events(
        predicted={
            "stay": p_stay,
            "move": 1.0 - p_stay,
            "unemployed": np.exp(log_probs[:, u]),
            "out_of_labor_force": np.exp(log_probs[:, o]),
        },
        observed={
            "stay": stayed,
            "move": has_prev & ~stayed,
            "unemployed": arr.occ == u,
            "out_of_labor_force": arr.occ == o,
        },
        counted={"stay": has_prev, "move": has_prev, "unemployed": every, "out_of_labor_force": every},
    )


def group_values(panel: pa.Table, column: str) -> np.ndarray:
    """``[n]`` the row's value of ``column`` as a string (``missing`` for null; regions pooled from states)."""
    values = panel.column(column).to_pylist()
    if column == REGION:
        values = [region_of(v) for v in values]
    return np.asarray([MISSING if v is None else str(v) for v in values], dtype=object)


@dataclass(frozen=True)
class RateRow:
    """Predicted vs observed rate of one event in one group."""

    column: str
    group: str
    event: str
    rows: int
    predicted: float
    observed: float
    observed_se: float  # binomial standard error of the observed rate

    @property
    def gap(self) -> float:
        return self.predicted - self.observed


def subgroup_rates(ev: Events, panel: pa.Table, columns: tuple[str, ...], min_rows: int = 1) -> list[RateRow]:
    """Predicted vs observed rates of every event, overall (column ``all``) and in every group of ``columns``."""
    groups: list[tuple[str, str, np.ndarray]] = [("all", "all", np.ones(panel.num_rows, dtype=bool))]
    for column in columns:
        values = group_values(panel, column)
        groups += [(column, str(v), values == v) for v in sorted(set(values.tolist()))]
    out = []
    for column, group, mask in groups:
        for event in EVENTS:
            sel = mask & ev.counted[event]
            n = int(sel.sum())
            if n < min_rows:
                continue
            rate = float(ev.observed[event][sel].mean())
            out.append(
                RateRow(
                    column,
                    group,
                    event,
                    n,
                    float(ev.predicted[event][sel].mean()),
                    rate,
                    float(np.sqrt(rate * (1.0 - rate) / n)),
                )
            )
    return out


def subgroup_perplexity(
    log_probs: np.ndarray, panel: pa.Table, taxonomy: Taxonomy, columns: tuple[str, ...], min_rows: int = 1
) -> list[tuple[str, str, int, float]]:
    """``(column, group, person-years, perplexity)`` overall and per group (every person-year counts)."""
    lp = target_log_probs(log_probs, panel_arrays(panel, taxonomy).occ)
    out = [("all", "all", len(lp), perplexity(lp))]
    for column in columns:
        values = group_values(panel, column)
        for v in sorted(set(values.tolist())):
            mask = values == v
            if int(mask.sum()) >= min_rows:
                out.append((column, str(v), int(mask.sum()), perplexity(lp, mask)))
    return out


def calibration(ev: Events, bins: int = 10) -> dict[str, list[dict[str, float]]]:
    """Reliability table of every event: per probability bin, mean prediction, observed frequency, count."""
    return {
        e: calibration_bins(
            ev.predicted[e][ev.counted[e]], ev.observed[e][ev.counted[e]].astype(np.float64), bins
        )
        for e in EVENTS
    }


def plot_calibration(
    curves: dict[str, dict[str, list[dict[str, float]]]], path: Path, title: str = ""
) -> Path:
    """Reliability diagram (PNG): one panel per event, one line per model, the diagonal for reference.

    ``curves``: model -> event -> bins (``calibration``). Point areas grow with the bin's row count.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(EVENTS), figsize=(4.0 * len(EVENTS), 4.0), squeeze=False)
    for ax, event in zip(axes[0], EVENTS):
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        for model, per_event in curves.items():
            b = per_event.get(event, [])
            if not b:
                continue
            x = [r["mean_predicted"] for r in b]
            y = [r["observed"] for r in b]
            sizes = [10.0 + 90.0 * r["count"] / max(c["count"] for c in b) for r in b]
            (line,) = ax.plot(x, y, marker="", linewidth=1.2, label=model)
            ax.scatter(x, y, s=sizes, color=line.get_color(), alpha=0.7)
        ax.set_title(event.replace("_", " "))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted probability")
        ax.set_aspect("equal")
    axes[0][0].set_ylabel("observed frequency")
    axes[0][0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def subgroup_study(
    models: dict[str, NextOccupationModel], panel: pa.Table, taxonomy: Taxonomy, cfg: SubgroupConfig
) -> tuple[
    dict[str, list[RateRow]],
    dict[str, list[tuple[str, str, int, float]]],
    dict[str, dict[str, list[dict[str, float]]]],
]:
    """Rates, perplexities and calibration bins of every model on ``panel``: ``(rates, ppl, curves)`` by model."""
    rates, ppl, curves = {}, {}, {}
    for name, model in models.items():
        lp = model.log_probs(panel)
        ev = events(lp, panel, taxonomy)
        rates[name] = subgroup_rates(ev, panel, cfg.columns, cfg.min_rows)
        ppl[name] = subgroup_perplexity(lp, panel, taxonomy, cfg.columns, cfg.min_rows)
        curves[name] = calibration(ev, cfg.bins)
        logger.info("subgroups: %s scored on %d person-years", name, panel.num_rows)
    return rates, ppl, curves
